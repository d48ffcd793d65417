"""The one RESP reader on its own (no server): every RESP2 and RESP3 shape.

Random replies, nested, encoded the way Redis does and split at random
points: the reader returns exactly them, in order. Hostile shapes (deep
brackets, unclosed bulk strings, header lines without end, counts that never
arrive) raise or wait in bounded memory, and a reply fed one byte at a time
costs work linear in its size (the old reader parsed an incomplete reply
again from its start at every read).
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis._io.resp_reader import (
    Error,
    RespReader,
    UnexpectedReply,
)

# -- a model of RESP values and their encoding --------------------------------


class Push(list[Any]):
    """A RESP3 push frame (decoded as a list)."""


class Verbatim(bytes):
    """A RESP3 verbatim string (decoded without its ``txt:`` prefix)."""


scalars2 = st.one_of(
    st.binary(max_size=30), st.integers(-(1 << 70), 1 << 70), st.none()
)
scalars3 = st.one_of(
    scalars2,
    st.booleans(),
    st.floats(allow_nan=False, width=64),
    st.binary(max_size=10).map(Verbatim),
)


def values(resp3: bool) -> st.SearchStrategy[Any]:
    leaves = scalars3 if resp3 else scalars2

    def extend(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
        lists = st.lists(children, max_size=4)
        if not resp3:
            return lists
        maps = st.dictionaries(st.binary(max_size=8), children, max_size=3)
        return st.one_of(lists, maps)

    return st.recursive(leaves, extend, max_leaves=20)


def encode(value: Any, resp3: bool) -> bytes:
    if value is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if isinstance(value, bool):
        return b"#t\r\n" if value else b"#f\r\n"
    if isinstance(value, int):
        big = resp3 and abs(value) >= 1 << 63
        return b"%s%d\r\n" % (b"(" if big else b":", value)
    if isinstance(value, float):
        return b",%s\r\n" % repr(value).encode()
    if isinstance(value, Error):
        return b"-%s\r\n" % value.encode()
    if isinstance(value, Verbatim):
        return b"=%d\r\ntxt:%s\r\n" % (len(value) + 4, value)
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if isinstance(value, dict):
        return b"%%%d\r\n" % len(value) + b"".join(
            encode(k, resp3) + encode(v, resp3) for k, v in value.items()
        )
    head = b">" if isinstance(value, Push) else b"*"
    return b"%s%d\r\n" % (head, len(value)) + b"".join(encode(v, resp3) for v in value)


def expected(value: Any) -> Any:
    if isinstance(value, Verbatim):
        return bytes(value)
    if isinstance(value, dict):
        return {k: expected(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expected(v) for v in value]
    return value


def read_in_pieces(reader: RespReader, data: bytes, cuts: list[int]) -> list[Any]:
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    out: list[Any] = []
    for start, end in itertools.pairwise(points):
        reader.feed(data[start:end])
        out += reader.replies()
    return out


def same(a: Any, b: Any) -> bool:
    """Equality that tells 1 from True and -0.0 from 0.0, like the wire does."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return math.copysign(1, a) == math.copysign(1, b) and a == b
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return bool(a == b)


# -- the properties ------------------------------------------------------------


@given(st.data(), st.booleans(), st.lists(st.integers(0, 2000), max_size=12))
def test_any_replies_come_out_whole_and_in_order_however_split(
    data: st.DataObject, resp3: bool, cuts: list[int]
) -> None:
    replies = data.draw(st.lists(values(resp3), max_size=6))
    errors = data.draw(st.lists(st.sampled_from(["ERR x", "NOGROUP no"]), max_size=2))
    sent = replies + [Error(e) for e in errors]
    wire = b"".join(encode(v, resp3) for v in sent)
    reader = RespReader(1 << 20)
    out = read_in_pieces(reader, wire, cuts)
    assert same(out, [expected(v) for v in sent])
    assert reader.idle


@given(st.lists(values(resp3=True), min_size=1, max_size=4), st.integers(0, 3))
def test_push_frames_are_dropped_when_asked(replies: list[Any], at: int) -> None:
    push = Push([b"invalidate", [b"key"]])
    sent = [*replies[:at], push, *replies[at:]]
    wire = b"".join(encode(v, True) for v in sent)
    reader = RespReader(skip_pushes=True)
    reader.feed(wire)
    assert same(reader.replies(), [expected(v) for v in replies])
    keeping = RespReader()
    keeping.feed(wire)
    assert same(keeping.replies(), [expected(v) for v in sent])


def test_the_empty_aggregates_and_the_nulls() -> None:
    reader = RespReader()
    reader.feed(b"*0\r\n%0\r\n*-1\r\n$-1\r\n_\r\n>0\r\n")
    assert reader.replies() == [[], {}, None, None, None, []]
    skipping = RespReader(skip_pushes=True)
    skipping.feed(b">0\r\n:1\r\n")
    assert skipping.replies() == [1]


def test_a_blob_error_is_an_error() -> None:
    reader = RespReader()
    reader.feed(b"!21\r\nSYNTAX invalid syntax\r\n")
    assert reader.replies() == [Error("SYNTAX invalid syntax")]


# -- hostile shapes --------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"*1\r\n" * 17 + b":1\r\n",  # nested deeper than allowed
        b"*x\r\n",  # a count that is no number
        b"$abc\r\n",
        b":1.5\r\n",
        b",notafloat\r\n",
        b"$99999999999\r\n",  # longer than allowed
        b"?what\r\n",  # no such type
        b"*2\r\n" + b"9" * 5000,  # a header line without end
    ],
)
def test_garbage_raises(garbage: bytes) -> None:
    reader = RespReader(1 << 20, max_depth=16)
    reader.feed(garbage)
    with pytest.raises(UnexpectedReply):
        reader.replies()


def test_deep_brackets_are_refused_before_they_are_all_read() -> None:
    # A million opening brackets: refused at the 17th, in constant memory.
    reader = RespReader(max_depth=16)
    reader.feed(b"*1\r\n" * 1_000_000)
    with pytest.raises(UnexpectedReply, match="nested"):
        reader.replies()


def test_an_unclosed_bulk_string_waits_and_never_parses_twice() -> None:
    # A 512 KiB bulk string fed one 1 KiB piece at a time: nothing until the
    # last piece, then the whole string once; the same value in one piece.
    body = bytes(range(256)) * 2048
    wire = b"*2\r\n$%d\r\n%s\r\n:7\r\n" % (len(body), body)
    reader = RespReader(1 << 20)
    got: list[Any] = []
    for start in range(0, len(wire), 1024):
        assert got == []
        reader.feed(wire[start : start + 1024])
        got = reader.replies()
    assert got == [[body, 7]]


def test_a_count_that_never_arrives_holds_only_what_came() -> None:
    reader = RespReader()
    reader.feed(b"*4294967296\r\n:1\r\n")  # 2**32 elements announced, one sent
    assert reader.replies() == []
    assert not reader.idle
    refused = RespReader(max_count=64)
    refused.feed(b"*65\r\n")
    with pytest.raises(UnexpectedReply, match="elements"):
        refused.replies()


def test_a_long_reply_fed_byte_by_byte_is_linear() -> None:
    # 20,000 elements, one byte per read (about 150,000 reads): a reader that
    # parsed the incomplete reply again at each read would take about 10**9
    # steps here and hit the test timeout; this one resumes where it stopped.
    items = [b"%05d" % i for i in range(20_000)]
    wire = encode(items, resp3=False)
    reader = RespReader()
    out: list[Any] = []
    for byte in range(len(wire)):
        reader.feed(wire[byte : byte + 1])
        out += reader.replies()
    assert out == [items]
    assert reader.idle


@pytest.mark.parametrize("top", [b"$3\r\nabc\r\n", b"%1\r\n+a\r\n+b\r\n", b":1\r\n"])
def test_top_level_types_can_be_restricted(top: bytes) -> None:
    reader = RespReader(top_markers=b"*>+-")
    reader.feed(top)
    with pytest.raises(UnexpectedReply):
        reader.replies()


def test_a_short_piece_after_a_long_string_is_not_held_back() -> None:
    # The wait for the rest of a long bulk string ends with it: the short
    # header that follows it, completed by a few bytes, is parsed at once.
    long = b"y" * 5000
    reader = RespReader()
    reader.feed(b"*2\r\n$5000\r\n" + long[:100])
    assert reader.replies() == []
    reader.feed(long[100:] + b"\r\n:4")  # the string, and half a header
    assert reader.replies() == []
    reader.feed(b"2\r\n")
    assert reader.replies() == [[long, 42]]


def test_a_map_keyed_by_an_aggregate_is_refused() -> None:
    reader = RespReader()
    reader.feed(b"%1\r\n*0\r\n:1\r\n")
    with pytest.raises(UnexpectedReply, match="map key"):
        reader.replies()


def test_error_replies_are_made_by_the_given_factory_wherever_they_stand() -> None:
    reader = RespReader(error=lambda text: ("error", text))
    reader.feed(b"-ERR top\r\n*2\r\n-ERR inside\r\n!5\r\nBLOB!\r\n")
    assert reader.replies() == [
        ("error", "ERR top"),
        [("error", "ERR inside"), ("error", "BLOB!")],
    ]


def test_values_of_a_large_read_are_bytes_like_the_others() -> None:
    # Past 64 KiB the reader parses its buffer in place (no copy of it).
    items = [bytes([i % 256]) * 1000 for i in range(200)]
    reader = RespReader()
    reader.feed(encode(items, resp3=False) + b"+OK\r\n")
    got = reader.replies()
    assert got == [items, b"OK"]
    assert all(type(item) is bytes for item in got[0])
    assert type(got[1]) is bytes
