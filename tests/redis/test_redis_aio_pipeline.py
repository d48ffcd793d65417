"""``_io.aio_pipeline`` against redis-py's own pipeline, on the real server.

The asyncio stream consumer reads its batches' replies with the one RESP
reader instead of redis-py's parser. The same batch (every command the
consumer sends, errors, nulls, maps, a value that arrives in many reads) run
both ways, RESP2 and RESP3, must give the same values; a connection that
breaks the rules fails like a lost one.
"""

from __future__ import annotations

import asyncio
import importlib.util
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import redis.asyncio
import redis.exceptions
from _redis_support import REDIS_URL, close_client

from eventspype.broker.redis._io.aio_pipeline import (
    packer_for,
    read_replies,
    read_replies_slow,
    reads_faster,
    send,
)

#: Whether redis-py parses with hiredis here (the tests_hiredis session).
HIREDIS = importlib.util.find_spec("hiredis") is not None


@pytest.fixture
def prefix(real: tuple[redis.Redis, str]) -> str:
    """A unique key prefix on the real server (its keys deleted after)."""
    return real[1]


def queue_batch(pipe: Any, prefix: str) -> None:
    """What the stream consumer sends, and shapes it does not, with errors."""
    stream, text = f"{prefix}s", f"{prefix}text"
    pipe.xgroup_create(stream, "g", id="0", mkstream=True)
    pipe.xgroup_create(stream, "g", id="0")  # BUSYGROUP: an error in place
    pipe.xreadgroup("g", "c", {stream: ">"}, count=10)
    pipe.xpending_range(stream, "g", "-", "+", 10, "c")
    pipe.execute_command("XAUTOCLAIM", stream, "g", "c", 0, "0-0", "COUNT", 10)
    pipe.xclaim(stream, "g", "c", 0, ["0-1"], justid=True)
    pipe.execute_command("XACK", stream, "g", "0-1", "0-2")
    pipe.eval("return {1, {'a', {2}}, redis.status_reply('OK')}", 0)
    pipe.eval("return redis.error_reply('NOGROUP made up')", 0)
    pipe.set(text, "x")
    pipe.xadd(text, {"a": "b"})  # WRONGTYPE
    pipe.get(f"{prefix}missing")
    pipe.hgetall(f"{prefix}missing")
    pipe.xinfo_stream(stream)


async def both_ways(prefix: str, protocol: int) -> tuple[list[Any], list[Any]]:
    client = redis.asyncio.Redis.from_url(REDIS_URL, protocol=protocol)
    stream = f"{prefix}s"
    big = b"\x00\r\n" * 150_000  # 450 kB: arrives in many reads
    try:
        await client.xadd(stream, {"event": b"one"}, id="0-1")
        await client.xadd(stream, {"event": big, "more": b""}, id="0-2")
        expected = await _run(client, prefix, fast=False)
        await client.delete(stream, f"{prefix}text")
        await client.xadd(stream, {"event": b"one"}, id="0-1")
        await client.xadd(stream, {"event": big, "more": b""}, id="0-2")
        got = await _run(client, prefix, fast=True)
    finally:
        await close_client(client)
    return expected, got


async def _run(client: Any, prefix: str, *, fast: bool) -> list[Any]:
    connection = client.connection_pool.make_connection()
    await connection.connect()
    try:
        pipe = client.pipeline(transaction=False)
        queue_batch(pipe, prefix)
        # Fast: packed as the consumer packs (by hand, XREADGROUP kept), and
        # read by the RESP reader whichever parser redis-py would use.
        packer = packer_for(connection, repeated=("XREADGROUP",)) if fast else None
        await send(connection, pipe, packer)
        if fast:
            return await read_replies(connection, pipe)
        return await read_replies_slow(connection, pipe)
    finally:
        await connection.disconnect()


def comparable(values: list[Any]) -> list[Any]:
    """Exceptions by class and text; figures that change with the clock
    (XINFO's, XPENDING's idle times) left out."""
    out: list[Any] = []
    for value in values:
        if isinstance(value, Exception):
            out.append((type(value), str(value)))
        elif isinstance(value, dict) and (b"length" in value or "length" in value):
            out.append(sorted(value))
        elif isinstance(value, list) and value and isinstance(value[0], dict):
            out.append([{**v, "time_since_delivered": None} for v in value])
        else:
            out.append(value)
    return out


@pytest.mark.parametrize("protocol", [2, 3])
def test_the_replies_are_redis_pys(prefix: str, protocol: int) -> None:
    expected, got = asyncio.run(both_ways(prefix, protocol))
    assert comparable(got) == comparable(expected)
    # The batch did what it says: a read entry, errors in place.
    assert isinstance(got[1], redis.exceptions.ResponseError)
    assert "BUSYGROUP" in str(got[1])
    assert isinstance(got[10], redis.exceptions.ResponseError)
    assert got[11] is None


def test_decoding_clients_take_redis_pys_way(prefix: str) -> None:
    async def scenario() -> bool:
        client = redis.asyncio.Redis.from_url(REDIS_URL, decode_responses=True)
        connection = client.connection_pool.make_connection()
        try:
            return reads_faster(connection)
        finally:
            await close_client(client)

    assert asyncio.run(scenario()) is False


async def _one_command(client: Any, *args: Any) -> Any:
    connection = client.connection_pool.make_connection()
    await connection.connect()
    try:
        pipe = client.pipeline(transaction=False)
        pipe.execute_command(*args)
        await send(connection, pipe)
        return await read_replies(connection, pipe)
    finally:
        await connection.disconnect()


def test_no_reply_within_the_timeout_is_a_timeout(prefix: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL, socket_timeout=0.2)
        try:
            with pytest.raises(redis.exceptions.TimeoutError):
                await _one_command(client, "BLPOP", f"{prefix}never", 5)
        finally:
            await close_client(client)

    asyncio.run(scenario())


def test_a_connection_closed_under_the_batch_is_a_connection_error(
    prefix: str,
) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        name = f"{prefix}victim"
        killer = redis.asyncio.Redis.from_url(REDIS_URL)
        try:
            connection = client.connection_pool.make_connection()
            await connection.connect()
            await connection.send_command("CLIENT", "SETNAME", name)
            await connection.read_response()
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("BLPOP", f"{prefix}never", 5)
            await send(connection, pipe)
            reading = asyncio.ensure_future(read_replies(connection, pipe))
            await asyncio.sleep(0.2)
            for info in await killer.client_list():
                if info.get("name") == name:
                    await killer.client_kill_filter(_id=info["id"])
            with pytest.raises(redis.exceptions.ConnectionError):
                await asyncio.wait_for(reading, 10)
            await connection.disconnect()
        finally:
            await close_client(client)
            await close_client(killer)

    asyncio.run(scenario())


def test_more_replies_than_commands_is_a_broken_connection(prefix: str) -> None:
    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        connection = client.connection_pool.make_connection()
        await connection.connect()
        try:
            # Two commands written, one announced: the second reply is extra.
            await connection.send_packed_command(
                b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPING\r\n", check_health=False
            )
            pipe = client.pipeline(transaction=False)
            pipe.execute_command("PING")
            await asyncio.sleep(0.2)  # both replies are in
            with pytest.raises(redis.exceptions.ConnectionError, match="more"):
                await read_replies(connection, pipe)
        finally:
            await connection.disconnect()
            await close_client(client)

    asyncio.run(scenario())


def test_hiredis_and_other_streams_keep_redis_pys_parser() -> None:
    # hiredis's parser (C) reads a batch faster than the RESP reader does.
    class _AsyncHiredisParser:
        pass

    class _AsyncRESP3Parser:
        pass

    def connection(parser: object, stream: object) -> object:
        encoder = SimpleNamespace(decode_responses=False)
        return SimpleNamespace(_parser=parser, _reader=stream, encoder=encoder)

    stream = asyncio.StreamReader
    assert reads_faster(connection(_AsyncRESP3Parser(), stream.__new__(stream)))
    assert not reads_faster(connection(_AsyncHiredisParser(), stream.__new__(stream)))
    assert not reads_faster(connection(_AsyncRESP3Parser(), object()))  # fakeredis


@pytest.mark.parametrize("protocol", [2, 3])
def test_errors_inside_arrays_are_redis_pys_too(prefix: str, protocol: int) -> None:
    """An error inside an array is redis-py's exception, as redis-py makes
    it; one that means the connection is unusable is raised from anywhere."""

    async def scenario() -> tuple[list[Any], list[Any]]:
        client = redis.asyncio.Redis.from_url(REDIS_URL, protocol=protocol)

        async def both(script: str) -> list[list[Any]]:
            got = []
            for read in (read_replies_slow, read_replies):
                connection = client.connection_pool.make_connection()
                await connection.connect()
                try:
                    pipe = client.pipeline(transaction=False)
                    pipe.eval(script, 0)
                    await send(connection, pipe)
                    try:
                        got.append(await read(connection, pipe))
                    except redis.exceptions.ConnectionError as error:
                        got.append([type(error)])
                finally:
                    await connection.disconnect()
            return got

        try:
            nested = await both("return {redis.error_reply('ERR nested'), 1}")
            loading = await both("return {1, redis.error_reply('LOADING later')}")
        finally:
            await close_client(client)
        return nested, loading

    nested, loading = asyncio.run(scenario())
    slow, fast = nested
    assert comparable(fast[0]) == comparable(slow[0])
    assert isinstance(fast[0][0], redis.exceptions.ResponseError)
    # As redis-py's Python parser does (hiredis's leaves it in the list).
    assert loading[1] == [redis.exceptions.BusyLoadingError]
    if not HIREDIS:
        assert loading[0] == loading[1]


def test_a_connection_fallen_back_to_resp2_takes_redis_pys_way() -> None:
    # redis-py 8 falls back to RESP2 when HELLO is refused, and then picks
    # the RESP2 callbacks per command: only its own parse_response knows how.
    fallen = SimpleNamespace(
        _parser=object(),
        _reader=asyncio.StreamReader.__new__(asyncio.StreamReader),
        encoder=SimpleNamespace(decode_responses=False),
        _resp2_fallback=True,
    )
    assert not reads_faster(fallen)
