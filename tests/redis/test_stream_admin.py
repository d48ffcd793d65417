"""StreamAdmin: the read-only view of streams, groups and dead letters.

Every test runs on fakeredis and on the shared server (see conftest), with a
prefix of its own; the keys it made are deleted after it, nothing is flushed.
The dead letters are made by a real RedisStreamBroker, so the view is checked
against the broker's own layout, not against a copy of it.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from typing import Any

import msgspec
import pytest
import redis
from _redis_support import Inbox, OrderPlaced, forged, wait_until
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis import (
    RedisStreamBroker,
    StreamAdmin,
    UnknownChannel,
    UnknownGroup,
    describe_message,
)

SIDE_EFFECT = "_redis_side_effect_module"


@pytest.fixture
def admin(client: redis.Redis, prefix: str) -> Iterator[StreamAdmin]:
    view = StreamAdmin(client, prefix)
    yield view
    view.close()
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


@pytest.fixture
def broker(client: redis.Redis, prefix: str) -> Iterator[RedisStreamBroker]:
    made = RedisStreamBroker(client, channel_prefix=prefix, group="g", claim_idle=0.2)
    made.register_event_class(OrderPlaced)
    yield made
    made.close()


def _envelope(channel: str, order_id: int) -> bytes:
    return forged(channel, OrderPlaced, {"order_id": order_id, "amount": 1.5})


def _dead_lettered(
    broker: RedisStreamBroker, client: redis.Redis, prefix: str, *data: bytes
) -> None:
    """Entries the broker refuses at once, so it moves them to the dead letters."""
    inbox = Inbox()  # held here: the broker holds subscribers weakly
    broker.subscribe("ORDERS", inbox.subscriber)
    for item in data:
        client.xadd(f"{prefix}{{ORDERS}}", {"event": item})
    wait_until(lambda: len(broker.dead_letters("ORDERS")) == len(data))


def test_streams_lists_each_channel_of_the_prefix_once_with_its_groups(
    admin: StreamAdmin, client: redis.Redis, prefix: str
) -> None:
    for number in range(3):
        client.xadd(f"{prefix}{{ORDERS}}", {"event": _envelope("ORDERS", number)})
    client.xadd(f"{prefix}{{USERS}}", {"event": _envelope("USERS", 9)})
    client.xadd(f"{prefix}{{USERS}}:dead", {"event": b"x"})
    client.set(f"{prefix}{{NOT_A_STREAM}}", "x")
    client.xadd(f"{prefix}stray", {"event": b"x"})  # not a broker's key layout
    client.xgroup_create(f"{prefix}{{ORDERS}}", "workers", id="0")
    client.xreadgroup("workers", "c1", {f"{prefix}{{ORDERS}}": ">"}, count=1)

    seen: list[tuple[int, int]] = []
    orders, users = admin.streams(progress=lambda *step: seen.append(step))
    assert seen == [(1, 2), (2, 2)]

    assert (orders.channel, orders.length, orders.dead_letters) == ("ORDERS", 3, 0)
    assert orders.key == f"{prefix}{{ORDERS}}"
    assert orders.first_entry is not None
    assert orders.last_entry is not None
    assert orders.first_entry <= orders.last_entry
    [group] = orders.groups
    assert (group.name, group.pending, group.lag) == ("workers", 1, 2)
    [consumer] = group.consumers
    assert (consumer.name, consumer.pending) == ("c1", 1)
    assert consumer.idle >= 0
    assert (users.channel, users.length, users.groups, users.dead_letters) == (
        "USERS",
        1,
        (),
        1,
    )


def test_nothing_is_joined_or_created_and_globs_in_the_prefix_are_literal(
    client: redis.Redis, prefix: str
) -> None:
    odd = prefix + "[a]*"
    client.xadd(f"{odd}{{ORDERS}}", {"event": b"x"})
    client.xadd(f"{prefix}a{{OTHER}}", {"event": b"x"})  # what an unescaped glob finds
    try:
        with StreamAdmin(client, odd) as view:
            assert [s.channel for s in view.streams()] == ["ORDERS"]
            view.dead_letters("ORDERS")
        assert client.xinfo_groups(f"{odd}{{ORDERS}}") == []
        assert not client.exists(f"{odd}{{ORDERS}}:dead")
    finally:
        client.delete(f"{odd}{{ORDERS}}", f"{prefix}a{{OTHER}}")


def test_unknown_channel_and_group_are_errors(
    admin: StreamAdmin, client: redis.Redis, prefix: str
) -> None:
    client.xadd(f"{prefix}{{ORDERS}}", {"event": b"x"})
    client.xgroup_create(f"{prefix}{{ORDERS}}", "workers", id="0")
    with pytest.raises(UnknownChannel, match="NOPE"):
        admin.stream("NOPE")
    with pytest.raises(UnknownGroup, match="nobody"):
        admin.streams(group="nobody")
    with pytest.raises(UnknownGroup):
        admin.readiness(group="nobody")
    [only] = admin.streams(group="workers")
    assert [g.name for g in only.groups] == ["workers"]


def test_readiness_compares_lag_pending_and_dead_letters_with_the_limits(
    admin: StreamAdmin, client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    for number in range(5):
        client.xadd(key, {"event": _envelope("ORDERS", number)})
    client.xgroup_create(key, "g", id="0")
    client.xreadgroup("g", "c", {key: ">"}, count=2)
    client.xadd(f"{key}:dead", {"event": b"x"})

    ready = admin.readiness(group="g", max_lag=3, max_dead=1)
    assert ready.ready
    assert ready.connected
    assert (ready.lag, ready.pending, ready.dead_letters) == (3, 2, 1)

    assert admin.readiness(max_lag=2).reason == "lag 3 > 2"
    assert admin.readiness(max_dead=0).reason == "dead letters 1 > 0"
    assert admin.readiness(max_pending=1).reason == "pending 2 > 1"
    assert not admin.readiness(max_lag=2).ready


def test_readiness_says_not_connected_when_redis_is_down() -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.5)  # nobody listens there
    with StreamAdmin(dead) as view:
        verdict = view.readiness()
    assert not verdict.ready
    assert not verdict.connected
    assert verdict.reason.startswith("cannot reach Redis")


def test_dead_letters_are_the_brokers_and_replay_keeps_hostile_ones(
    admin: StreamAdmin, broker: RedisStreamBroker, client: redis.Redis, prefix: str
) -> None:
    planted = forged("ORDERS", type("Planted", (), {"__module__": SIDE_EFFECT}), {})
    _dead_lettered(broker, client, prefix, planted, b"not json")
    assert admin.dead_letters("ORDERS") == broker.dead_letters("ORDERS")
    first, second = admin.dead_letters("ORDERS")
    assert admin.dead_letter("ORDERS", second.id) == second
    assert admin.dead_letter("ORDERS", "1-0") is None
    assert admin.dead_letter("ORDERS", "junk") is None
    assert admin.dead_letters("ORDERS", group="other") == []
    assert admin.dead_letters("ORDERS", count=1, after=first.id) == [second]

    length = client.xlen(f"{prefix}{{ORDERS}}")
    replay = admin.republish_dead_letters("ORDERS", [first, second])

    assert replay.republished == 1
    [(kept, why)] = replay.refused
    assert kept == second
    assert why.startswith("invalid_json: ")
    assert client.xlen(f"{prefix}{{ORDERS}}") == length + 1
    # The broker may dead-letter the re-published entry again, under a new id.
    remaining = admin.dead_letters("ORDERS")
    assert remaining[0] == second
    assert first.id not in [letter.id for letter in remaining]
    assert SIDE_EFFECT not in sys.modules
    assert "EVENTSPYPE_REDIS_SIDE_EFFECT" not in os.environ


def test_replay_keeps_a_letter_without_body(
    admin: StreamAdmin, client: redis.Redis, prefix: str
) -> None:
    dead = f"{prefix}{{ORDERS}}:dead"
    client.xadd(dead, {"event": b"", "error": "oversized", "deliveries": 1})
    [letter] = admin.dead_letters("ORDERS")
    replay = admin.republish_dead_letters("ORDERS", [letter])
    assert replay.republished == 0
    assert replay.refused == ((letter, "no body kept"),)
    assert client.xlen(dead) == 1
    assert not client.exists(f"{prefix}{{ORDERS}}")


def test_purge_deletes_only_the_letters_given(
    admin: StreamAdmin, broker: RedisStreamBroker, client: redis.Redis, prefix: str
) -> None:
    _dead_lettered(broker, client, prefix, b"one", b"two", b"three")
    letters = admin.dead_letters("ORDERS")
    assert admin.purge_dead_letters("ORDERS", letters[:2]) == 2
    assert admin.dead_letters("ORDERS") == letters[2:]
    assert admin.purge_dead_letters("ORDERS", []) == 0
    pages = list(admin.all_dead_letters("ORDERS"))
    assert pages == [letters[2:]]


def test_describe_message_shows_without_importing() -> None:
    planted = forged("ORDERS", type("Planted", (), {"__module__": SIDE_EFFECT}), {})
    view = describe_message("ORDERS", planted)
    assert (view.event_module, view.event_class, view.payload) == (
        SIDE_EFFECT,
        "Planted",
        {},
    )
    assert view.problem is None
    assert SIDE_EFFECT not in sys.modules

    assert describe_message("USERS", planted).problem.startswith("tag_mismatch: ")
    assert describe_message("X", b'{"a":' * 100_000).problem.startswith("too_deep")
    assert describe_message("X", b"{").problem.startswith("invalid_json: ")
    assert describe_message("X", b"{}").problem.startswith("invalid_envelope: ")
    assert describe_message("X", b"x" * 11, max_bytes=10).problem.startswith(
        "oversized: "
    )


@pytest.mark.parametrize(
    ("payload", "encoding", "shown", "problem"),
    [
        (msgspec.msgpack.encode({"a": [1, 2]}), "base64", {"a": [1, 2]}, None),
        (msgspec.msgpack.encode(b"\x00raw"), "base64", None, "invalid_payload"),
        (b"not json", None, None, "invalid_payload"),
    ],
)
def test_describe_message_shows_payloads_as_json_or_says_why_not(
    payload: bytes, encoding: str | None, shown: Any, problem: str | None
) -> None:
    import base64

    fields: dict[str, Any] = {
        "event_tag": "X",
        "event_class": "C",
        "event_module": "m",
        "payload": payload.decode() if encoding is None else "",
    }
    if encoding is not None:
        fields["payload"] = base64.b64encode(payload).decode()
        fields["payload_encoding"] = encoding
    view = describe_message("X", json.dumps(fields).encode())
    assert view.payload == shown
    assert (view.problem or "").startswith(problem or "")
    assert (view.problem is None) == (problem is None)


def test_on_a_cluster_every_masters_streams_are_listed(redis_cluster: Any) -> None:
    prefix = f"admin-{os.urandom(4).hex()}:"
    client = redis_cluster.client()
    channels = redis_cluster.channels_on_distinct_masters("C")
    try:
        for channel in channels.values():
            client.xadd(f"{prefix}{{{channel}}}", {"event": _envelope(channel, 1)})
            client.xadd(f"{prefix}{{{channel}}}:dead", {"event": b"x"})
        with StreamAdmin(client, prefix) as view:
            infos = view.streams()
            letters = view.dead_letters(next(iter(channels.values())))
            ready = view.readiness(max_dead=len(channels))
        assert len(channels) == 3
        assert [i.channel for i in infos] == sorted(channels.values())
        assert all((i.length, i.dead_letters) == (1, 1) for i in infos)
        assert [letter.event for letter in letters] == [b"x"]
        assert ready.ready
        assert ready.dead_letters == 3
    finally:
        client.close()


@given(st.binary(max_size=2000))
def test_describe_message_never_raises_on_any_bytes(data: bytes) -> None:
    view = describe_message("ORDERS", data)
    assert view.problem is not None or view.event_class is not None


@given(
    tag=st.text(min_size=1, max_size=20),
    module=st.text(min_size=1, max_size=30),
    name=st.text(min_size=1, max_size=30),
    payload=st.recursive(
        st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.text(max_size=5), inner, max_size=4)
        ),
        max_leaves=20,
    ),
)
def test_describe_message_shows_what_any_envelope_carries(
    tag: str, module: str, name: str, payload: Any
) -> None:
    data = json.dumps(
        {
            "event_tag": tag,
            "event_class": name,
            "event_module": module,
            "payload": json.dumps(payload),
        }
    ).encode()
    view = describe_message(tag, data)
    assert view.problem is None
    assert (view.event_tag, view.event_module, view.event_class) == (tag, module, name)
    assert view.payload == payload
    assert describe_message(tag + "x", data).problem.startswith("tag_mismatch")


def test_a_client_that_decodes_responses_works_the_same(
    client_factory: Any, prefix: str
) -> None:
    decoding = client_factory(decode_responses=True)
    decoding.xadd(f"{prefix}{{ORDERS}}:dead", {"event": "x", "deliveries": "2"})
    try:
        with StreamAdmin(decoding, prefix) as view:
            [info] = view.streams()
            [letter] = view.dead_letters("ORDERS")
        assert (info.channel, info.dead_letters) == ("ORDERS", 1)
        assert (letter.event, letter.deliveries) == (b"x", 2)
    finally:
        decoding.delete(f"{prefix}{{ORDERS}}:dead")
