"""The Streams core's commands as Redis speaks them (``streams.commands_wire``).

Each command goes to the real server (Redis 7.0 here: fakeredis accepts what
7.0 refuses) on a bare connection, raw replies (no redis-py callbacks), in
RESP2 and RESP3, and its reply is decoded into the shape the core takes. The
Lua scripts are checked for what they promise: ``only_owned`` touches only
this consumer's entries, and a dead-letter move whose XADD fails
acknowledges nothing. Decoding of hostile or odd replies needs no server.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from _redis_support import REDIS_URL, require_real_redis, unique_prefix

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.commands_wire import (
    command_args,
    decode_reply,
    error_kind,
)

GROUP, ME, OTHER = b"g", b"me", b"other"
Run = Callable[[c.Command], Any]


@pytest.fixture(params=[2, 3], ids=["resp2", "resp3"])
def setup(request: pytest.FixtureRequest) -> Iterator[tuple[redis.Redis, bytes, Run]]:
    """An admin client, a stream with a group, and ``run(cmd)``: the command
    sent as ``me`` on a raw connection, its reply decoded."""
    require_real_redis()
    admin = redis.Redis.from_url(REDIS_URL)
    stream = f"{unique_prefix()}{{orders}}".encode()
    admin.xgroup_create(stream, GROUP, id="0", mkstream=True)
    raw = redis.Redis.from_url(
        REDIS_URL, protocol=request.param, single_connection_client=True
    )
    connection = raw.connection
    assert connection is not None

    def run(cmd: c.Command) -> Any:
        connection.send_command(*command_args(cmd, GROUP, ME, 1000))
        return decode_reply(cmd, connection.read_response())

    yield admin, stream, run
    raw.close()
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

    with pytest.raises(redis.ResponseError) as raised:
        run(move)
    assert error_kind(raised.value) == "key"
    assert _owner(admin, stream, entry) == ME  # still pending: not lost


def test_errors_are_classified_for_the_core(
    setup: tuple[redis.Redis, bytes, Run],
) -> None:
    admin, stream, run = setup
    with pytest.raises(redis.ResponseError) as nogroup:
        run(c.Read((stream + b"-missing",), 1, None, 0.0))
    assert error_kind(nogroup.value) == "nogroup"
    admin.set(stream + b"-string", b"x")
    with pytest.raises(redis.ResponseError) as wrongtype:
        run(c.EnsureGroup(stream + b"-string", b"$", 0.0))
    assert error_kind(wrongtype.value) == "key"
    admin.delete(stream + b"-string")
    assert error_kind(redis.ConnectionError("gone")) == "down"
    assert error_kind(redis.TimeoutError("slow")) == "down"
    assert error_kind(ConnectionResetError()) == "down"
    assert error_kind(redis.ResponseError("UNBLOCKED client unblocked")) == "unblocked"
    assert error_kind(redis.ResponseError("ERR something")) == "other"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ([], []),
        ({b"s": [[b"1-0", [b"event", b"x"]]]}, [(b"s", [(b"1-0", {b"event": b"x"})])]),
        ([[b"s", [[b"1-0", None]]]], [(b"s", [(b"1-0", None)])]),  # deleted
        ([[b"s", [[b"1-0", [b"event"]]]]], [(b"s", [(b"1-0", {})])]),  # odd fields
        ([[b"s", [[b"1-0", {b"a": b"b"}]]]], [(b"s", [(b"1-0", {b"a": b"b"})])]),
    ],
)
def test_read_replies_of_any_shape_decode_without_a_server(
    raw: Any, expected: Any
) -> None:
    assert decode_reply(c.Read((b"s",), 1, None, 0.0), raw) == expected
