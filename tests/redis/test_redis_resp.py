"""The hand-written RESP of the fast paths (``_io.resp``) is byte for byte
what redis-py's ``Connection.pack_command`` writes: it is only a faster copy
(see the benchmark its module cites)."""

from __future__ import annotations

import pytest
import redis
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis._io import resp
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
