"""The asyncio listener's reply cutter on its own (no server): RESP2 and RESP3.

Random replies, encoded the way Redis does, split at random points: the
reader returns exactly them, in order; garbage raises, never hangs or buffers
without bound.
"""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis._io.push_reader import Error, PushReader, UnexpectedReply

Value = list[bytes | int | None] | bytes | Error

bulk = st.binary(max_size=40)
element = st.one_of(bulk, st.integers(-5, 1 << 40), st.none())


def encode_element(item: bytes | int | None, resp3: bool) -> bytes:
    if item is None:
        return b"_\r\n" if resp3 else b"$-1\r\n"
    if isinstance(item, int):
        return b":%d\r\n" % item
    return b"$%d\r\n%s\r\n" % (len(item), item)


replies = st.one_of(
    st.lists(element, min_size=1, max_size=4),
    st.sampled_from([b"PONG", b"OK"]),
    st.sampled_from([Error("NOPERM no"), Error("ERR unknown command")]),
)


def encode(value: Value, resp3: bool) -> bytes:
    if isinstance(value, Error):
        return b"-%s\r\n" % value.encode()
    if isinstance(value, bytes):
        return b"+%s\r\n" % value
    head = b">" if resp3 else b"*"
    return b"%s%d\r\n" % (head, len(value)) + b"".join(
        encode_element(item, resp3) for item in value
    )


@given(
    st.lists(replies, max_size=12),
    st.booleans(),
    st.lists(st.integers(0, 400), max_size=10),
)
def test_replies_come_out_whole_and_in_order_however_split(
    values: list[Value], resp3: bool, cuts: list[int]
) -> None:
    data = b"".join(encode(value, resp3) for value in values)
    points = sorted({min(cut, len(data)) for cut in cuts} | {0, len(data)})
    reader = PushReader(1 << 20)
    out: list[Value] = []
    for start, end in itertools.pairwise(points):
        reader.feed(data[start:end])
        out += reader.replies()
    out += reader.replies()
    assert out == values


@pytest.mark.parametrize(
    "garbage",
    [
        b"%1\r\n+a\r\n+b\r\n",  # a map
        b"*1\r\n*1\r\n:1\r\n",  # nested
        b"*x\r\n",
        b"*100000\r\n",
        b"$5\r\nhello\r\n",  # a bulk string alone is no Pub/Sub reply
        b"*1\r\n$99999999999\r\n",  # longer than allowed
        b"*1\r\n" + b"9" * 5000,  # a header line without end
    ],
)
def test_garbage_raises(garbage: bytes) -> None:
    reader = PushReader(1 << 20)
    reader.feed(garbage)
    with pytest.raises(UnexpectedReply):
        reader.replies()


def test_a_big_message_in_small_pieces_is_cut_once_complete() -> None:
    payload = b"x" * 200_000
    data = encode([b"message", b"ch", payload], resp3=False)
    reader = PushReader(1 << 20)
    for start in range(0, len(data), 1000):
        reader.feed(data[start : start + 1000])
        got = reader.replies()
        if start + 1000 < len(data):
            assert got == []
    assert got == [[b"message", b"ch", payload]]
