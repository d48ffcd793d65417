"""The Streams core's commands as both drivers send them (``streams.sending``).

Each command goes to the real server (Redis 7.0 here: fakeredis accepts what
7.0 refuses), in RESP2 and RESP3, the way the thread driver sends it
(``send``: a pipeline, registered scripts) and the way the asyncio driver does
(``prepare``, an awaited ``redis.asyncio`` pipeline, ``collect``; the scripts
with ``EVAL``), and its reply comes back in the shape the core takes. The Lua
scripts are checked for what they promise: ``only_owned`` touches only this
consumer's entries, and a dead-letter move whose XADD fails acknowledges
nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio
from _redis_support import REDIS_URL, close_client, require_real_redis, unique_prefix

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.aio_upkeep import SCRIPTS
from eventspype.broker.redis.streams.sending import Scripts, collect, prepare, send

GROUP, ME, OTHER = b"g", b"me", b"other"
Run = Callable[[c.Command], Any]


class Refused(Exception):
    """A command the core is told failed: ``kind`` as ``commands.ErrorKind``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@pytest.fixture(
    params=[(2, "sync"), (3, "sync"), (2, "asyncio"), (3, "asyncio")],
    ids=["resp2-thread", "resp3-thread", "resp2-asyncio", "resp3-asyncio"],
)
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[redis.Redis, bytes, Run]]:
    """An admin client, a stream with a group, and ``run(cmd)``: the command
    sent as ``me`` by one driver's path; its reply, or :class:`Refused`."""
    require_real_redis()
    protocol, driver = request.param
    admin = redis.Redis.from_url(REDIS_URL)
    stream = f"{unique_prefix()}{{orders}}".encode()
    admin.xgroup_create(stream, GROUP, id="0", mkstream=True)
    client = redis.Redis.from_url(REDIS_URL, protocol=protocol)
    scripts = Scripts(client)

    def outcome(result: tuple[bool, object]) -> Any:
        ok, value = result
        if not ok:
            kind, message = value  # type: ignore[misc]
            raise Refused(kind, message)
        return value

    def run_sync(cmd: c.Command) -> Any:
        return outcome(send(client, scripts, GROUP, ME, [cmd], 1000)[0])

    def run_async(cmd: c.Command) -> Any:
        async def once() -> Any:
            aclient = redis.asyncio.Redis.from_url(REDIS_URL, protocol=protocol)
            try:
                pipe = aclient.pipeline(transaction=False)
                parts = prepare(pipe, SCRIPTS, GROUP, ME, [cmd], 1000)
                flat = await pipe.execute(raise_on_error=False)
                return collect([cmd], parts, flat)[0]
            finally:
                await close_client(aclient)

        return outcome(asyncio.run(once()))

    yield admin, stream, run_sync if driver == "sync" else run_async
    client.close()
    admin.delete(stream, stream + b":dead")
    admin.close()


def _owner(admin: redis.Redis, stream: bytes, entry_id: bytes) -> bytes | None:
    pending = admin.xpending_range(stream, GROUP, entry_id, entry_id, 1)
    return pending[0]["consumer"] if pending else None


def test_read_pending_claim_ack_in_the_core_s_shapes(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    first = admin.xadd(stream, {"event": b"one"})
    second = admin.xadd(stream, {"event": b"two"})

    read = run(c.Read((stream,), 10, None, 0.0))
    assert read == [
        (stream, [(first, {b"event": b"one"}), (second, {b"event": b"two"})])
    ]
    assert run(c.Read((stream,), 10, 1, 0.0)) == []  # timed out: nothing
    assert run(c.OwnPending(stream, b"-", b"+", 10, True, 0.0)) == [
        (first, 1),
        (second, 1),
    ]
    # A retry claim counts a delivery and returns the entry; a renewal does not.
    claimed = run(c.Claim(stream, (first,), False, None, False, 0.0))
    assert claimed == [(first, {b"event": b"one"})]
    assert run(c.Claim(stream, (second,), True, None, False, 0.0)) == [second]
    assert run(c.OwnPending(stream, b"-", b"+", 10, False, 0.0)) == [
        (first, 2),
        (second, 1),
    ]
    assert run(c.Ack(stream, (first, second), False, 0.0)) == 2
    assert admin.xpending(stream, GROUP)["pending"] == 0


def test_sweep_reports_entries_deleted_while_pending(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    kept = admin.xadd(stream, {"event": b"kept"})
    gone = admin.xadd(stream, {"event": b"gone"})
    admin.xreadgroup(GROUP, OTHER, {stream: ">"})
    admin.xdel(stream, gone)

    cursor, entries, deleted = run(c.Sweep(stream, 0, b"0-0", 10, 0.0))
    assert cursor == b"0-0"
    assert entries == [(kept, {b"event": b"kept"})]
    assert deleted == [gone]
    assert _owner(admin, stream, kept) == ME


def test_only_owned_ack_and_claim_leave_another_consumer_s_entries_alone(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    mine = admin.xadd(stream, {"event": b"mine"})
    admin.xreadgroup(GROUP, ME, {stream: ">"}, count=1)
    theirs = admin.xadd(stream, {"event": b"theirs"})
    admin.xreadgroup(GROUP, OTHER, {stream: ">"}, count=1)

    assert run(c.Claim(stream, (mine, theirs), True, None, True, 0.0)) == [mine]
    assert run(c.Claim(stream, (mine, theirs), False, None, True, 0.0)) == [
        (mine, {b"event": b"mine"})
    ]
    assert run(c.Ack(stream, (mine, theirs), True, 0.0)) == 1
    assert _owner(admin, stream, mine) is None  # acknowledged
    assert _owner(admin, stream, theirs) == OTHER  # untouched


def test_hand_back_sets_the_idle_time_past_claim_idle(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    entry = admin.xadd(stream, {"event": b"x"})
    admin.xreadgroup(GROUP, ME, {stream: ">"})

    assert run(c.Claim(stream, (entry,), True, 600_000, True, 0.0)) == [entry]
    [item] = admin.xpending_range(stream, GROUP, entry, entry, 1)
    assert item["time_since_delivered"] >= 600_000
    assert item["times_delivered"] == 1  # JUSTID: not counted as a delivery


def test_dead_letter_moves_and_acknowledges_atomically(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    good = admin.xadd(stream, {"event": b"payload"})
    big = admin.xadd(stream, {"event": b"x" * 100})
    admin.xreadgroup(GROUP, ME, {stream: ">"})
    entries = (
        c.Dead(good, b"payload", 7, "max_deliveries", "ValueError: no", 5),
        c.Dead(big, None, 100, "oversized", "100 bytes > max 10", 1),
    )

    assert run(c.DeadLetter(stream, entries, False, 0.0)) == 2
    assert admin.xpending(stream, GROUP)["pending"] == 0
    letters = [fields for _, fields in admin.xrange(stream + b":dead")]
    assert letters[0][b"event"] == b"payload"
    assert letters[0][b"error"] == b"ValueError: no"
    assert letters[0][b"deliveries"] == b"5"
    assert letters[0][b"id"] == good
    assert (letters[0][b"group"], letters[0][b"consumer"]) == (GROUP, ME)
    assert b"event" not in letters[1]  # an oversized body is not copied
    assert (letters[1][b"size"], letters[1][b"reason"]) == (b"100", b"oversized")


def test_a_dead_letter_move_that_cannot_add_acknowledges_nothing(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    entry = admin.xadd(stream, {"event": b"payload"})
    admin.xreadgroup(GROUP, ME, {stream: ">"})
    admin.set(stream + b":dead", b"not a stream")
    move = c.DeadLetter(
        stream, (c.Dead(entry, b"payload", 7, "r", "e", 1),), False, 0.0
    )

    with pytest.raises(Refused) as raised:
        run(move)
    assert raised.value.kind == "key"
    assert _owner(admin, stream, entry) == ME  # still pending: not lost


def test_errors_are_classified_for_the_core(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    with pytest.raises(Refused) as nogroup:
        run(c.Read((stream + b"-missing",), 1, None, 0.0))
    assert nogroup.value.kind == "nogroup"
    admin.set(stream + b"-string", b"x")
    with pytest.raises(Refused) as wrongtype:
        run(c.EnsureGroup(stream + b"-string", b"$", 0.0))
    assert wrongtype.value.kind == "key"
    admin.delete(stream + b"-string")


class _CountingPool(redis.ConnectionPool):
    """A connection pool that counts its checkouts."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkouts = 0

    def get_connection(self, *args: Any, **kwargs: Any) -> Any:
        self.checkouts += 1
        return super().get_connection(*args, **kwargs)


@pytest.mark.parametrize("protocol", [2, 3], ids=["resp2", "resp3"])
def test_a_reader_s_batch_uses_only_the_reader_s_own_connection(
    protocol: int,
) -> None:
    """The thread driver's batch, scripts and their SCRIPT EXISTS included,
    runs on the reader's single connection. (It used to check a second one
    out of the pool for SCRIPT EXISTS and keep it in the pipeline; it went
    back when the pipeline was freed, by the garbage collector when an error
    reply tied the pipeline in a cycle: on redis-py 5.0, whose pool lock is
    not reentrant, inside the pool's own lock now and then, and the reader
    hung for good.)"""
    require_real_redis()
    admin = redis.Redis.from_url(REDIS_URL)
    stream = f"{unique_prefix()}{{orders}}".encode()
    admin.xgroup_create(stream, GROUP, id="0", mkstream=True)
    entry = admin.xadd(stream, {"event": b"one"})
    admin.xreadgroup(GROUP, ME, {stream: ">"})
    pool = _CountingPool.from_url(REDIS_URL, protocol=protocol)
    client = redis.Redis(connection_pool=pool, single_connection_client=True)
    try:
        scripts = Scripts(client)
        before = pool.checkouts
        batch: list[c.Command] = [
            c.EnsureGroup(stream, b"0", 0.0),  # BUSYGROUP: an error reply
            c.Ack(stream, (entry,), True, 0.0),  # only_owned: a script
        ]
        results = send(client, scripts, GROUP, ME, batch, 1000)
        assert results == [(True, None), (True, 1)]
        assert pool.checkouts == before
    finally:
        client.close()
        pool.disconnect()
        admin.delete(stream)
        admin.close()
