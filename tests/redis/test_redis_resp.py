"""The hand-written RESP of the fast paths (``_io.resp``) is byte for byte
what redis-py's ``Connection.pack_command`` (``pack_commands``) writes: it is
only a faster copy (see the benchmarks its module cites)."""

from __future__ import annotations

from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis._io import resp
from eventspype.broker.redis._io.aio_pipeline import packer_for
from eventspype.broker.redis._io.resp import CommandPacker, pack_publish


def redis_py(*arguments: object) -> bytes:
    return b"".join(redis.Connection().pack_command(*arguments))


@pytest.mark.parametrize("size", [0, 1, 100, 70_000])
def test_pack_publish_writes_what_redis_py_would(size: int) -> None:
    channel, message = "chännel:X".encode(), bytes(range(256)) * (size // 256 + 1)
    message = message[:size]
    assert pack_publish(channel, message) == redis_py("PUBLISH", channel, message)


@given(st.binary(max_size=64), st.lists(st.binary(max_size=300), max_size=4))
def test_a_packer_writes_what_redis_py_would_on_every_call(
    key: bytes, messages: list[bytes]
) -> None:
    # Each call after the first reuses the cached front of the command.
    packer = CommandPacker((b"XADD",), (b"MAXLEN", b"~", b"1000", b"*", b"event"))
    for message in messages:
        expected = redis_py("XADD", key, "MAXLEN", "~", 1000, "*", "event", message)
        assert packer.pack(key, message) == expected


def test_an_xadd_without_trimming(monkeypatch: pytest.MonkeyPatch) -> None:
    packer = CommandPacker((b"XADD",), (b"*", b"event"))
    assert packer.pack(b"s", b"m") == redis_py("XADD", b"s", "*", "event", b"m")


def test_the_cache_of_fronts_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    # Channel names may be generated: a packer never holds more than the bound.
    monkeypatch.setattr(resp, "_MAX_KEYS", 3)
    packer = CommandPacker((b"PUBLISH",))
    for i in range(10):
        key = b"channel:%d" % i
        assert packer.pack(key, b"m") == redis_py("PUBLISH", key, b"m")
    assert len(packer._fronts) == 3


# --- PipelinePacker: the stream consumer's pipelines -----------------------------

_NAMES = st.one_of(
    st.sampled_from(["XACK", "XREADGROUP", b"XACK", "CLIENT ID", b"CLIENT ID"]),
    st.text(max_size=6),  # whitespace, control characters, non-ASCII, ""
    st.binary(max_size=6),
)
_ARGUMENTS = st.one_of(
    st.binary(max_size=40),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=False),
    st.binary(min_size=6001, max_size=7000),  # left to redis-py, uncopied
    st.builds(memoryview, st.binary(max_size=10)),
)
_COMMANDS = st.lists(
    st.tuples(_NAMES).flatmap(
        lambda name: st.lists(_ARGUMENTS, max_size=6).map(lambda rest: (*name, *rest))
    ),
    min_size=1,
    max_size=4,
)


def asyncio_connection(**options: Any) -> Any:
    return redis.asyncio.Connection(**options)


@given(_COMMANDS)
def test_a_pipeline_is_packed_as_redis_py_packs_it(
    commands: list[tuple[Any, ...]],
) -> None:
    connection = asyncio_connection()
    packer = packer_for(connection, repeated=("XREADGROUP", "XACK"))
    expected = b"".join(connection.pack_commands(commands))
    assert b"".join(packer.pack(commands)) == expected
    assert b"".join(packer.pack(commands)) == expected  # kept ones too


@pytest.mark.parametrize(
    "name",
    ["CLIENT ID", "XACK\t", "X\x1cACK", "\nXACK", "", b"CLIENT ID", b"XA\tCK"],
)
def test_names_redis_py_splits_or_trims(name: str | bytes) -> None:
    # redis-py cuts a str name at any whitespace (\x1c included), a bytes
    # one at spaces only.
    connection = asyncio_connection()
    commands = [(name, b"a", 1)]
    packed = b"".join(packer_for(connection).pack(commands))
    assert packed == b"".join(connection.pack_commands(commands))


def test_the_clients_encoding_is_used_but_not_for_names() -> None:
    # redis-py encodes a str command name as UTF-8 whatever the encoding.
    connection = asyncio_connection(encoding="latin-1")
    commands = [("XACK", "strëam", "g", "0-1"), ("NAMË", "ë")]
    packed = b"".join(packer_for(connection).pack(commands))
    assert packed == b"".join(connection.pack_commands(commands))
    assert "strëam".encode("latin-1") in packed
    assert "NAMË".encode() in packed


def test_refused_arguments_are_refused_as_redis_py_refuses_them() -> None:
    connection = asyncio_connection()
    with pytest.raises(redis.exceptions.DataError):
        connection.pack_commands([("XACK", True)])
    with pytest.raises(redis.exceptions.DataError):
        packer_for(connection).pack([("XACK", True)])


def test_a_large_value_stays_a_chunk_of_its_own() -> None:
    big = b"x" * 70_000
    chunks = packer_for(asyncio_connection()).pack([("XACK", b"s"), ("SET", b"k", big)])
    assert any(chunk is big for chunk in chunks)  # sent as it is, not copied


def test_repeated_commands_are_kept_and_the_rest_are_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resp, "_MAX_KEYS", 2)
    packer = packer_for(asyncio_connection(), repeated=("XREADGROUP",))
    for i in range(5):
        packer.pack([("XACK", b"s", b"g", b"%d-0" % i), ("XREADGROUP", b"%d" % i)])
    assert sorted(packer._kept) == [("XREADGROUP", b"0"), ("XREADGROUP", b"1")]
