"""Envelope headers (issue 18): carried by Pub/Sub and Streams, bounded, untrusted."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from _redis_support import Inbox, OrderPlaced, publisher_for, wait_until
from hypothesis import given
from hypothesis import strategies as st

from eventspype import EventPublication, FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker, RedisStreamBroker
from eventspype.broker.redis._wire import envelope as _envelope
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.receive import receive
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.broker.redis._wire.stats import Counters
from eventspype.delivery import Delivery, current_delivery, delivering
from eventspype.hooks import Hook, PublishInfo, add_hook, remove_hook
from eventspype.serializers import JsonEventSerializer

PLACED = EventPublication("order_placed", OrderPlaced)
PAYLOAD = JsonEventSerializer().serialize(OrderPlaced(1, 2.0))
header_maps = st.dictionaries(
    st.text(max_size=20), st.text(max_size=40), max_size=_envelope.MAX_HEADERS
)


def with_headers(raw: str) -> bytes:
    """An envelope whose ``headers`` value is the JSON text ``raw``."""
    plain = _envelope.encode("ORDER_PLACED", OrderPlaced, PAYLOAD)
    return plain[:-1] + b',"headers":' + raw.encode() + b"}"


@given(headers=header_maps)
def test_headers_within_the_bounds_round_trip(headers: dict[str, str]) -> None:
    wire = _envelope.encode("ORDER_PLACED", OrderPlaced, PAYLOAD, headers)
    decoded = _envelope.decode(wire, max_bytes=1 << 20)
    assert decoded.headers == headers
    assert decoded.headers_problem is None
    assert decoded.payload == PAYLOAD


def test_without_headers_the_wire_is_the_one_of_1_4_2() -> None:
    for none in (None, {}):
        wire = _envelope.encode("ORDER_PLACED", OrderPlaced, PAYLOAD, none)
        assert list(json.loads(wire)) == [
            "event_tag",
            "event_class",
            "event_module",
            "payload",
        ]


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (json.dumps({f"k{i}": "v" for i in range(_envelope.MAX_HEADERS + 1)}), "17"),
        (json.dumps({"k": "v" * _envelope.MAX_HEADERS_BYTES}), "bytes"),
        ('{"k": 1}', "strings"),
        ('["k", "v"]', "strings"),
        ('"traceparent"', "strings"),
        ('{"k": {"nested": "v"}}', "strings"),
    ],
)
def test_headers_over_the_bounds_are_dropped_and_the_event_kept(
    raw: str, problem: str
) -> None:
    decoded = _envelope.decode(with_headers(raw), max_bytes=1 << 20)
    assert decoded.payload == PAYLOAD
    assert decoded.headers == {}
    assert decoded.headers_problem is not None
    assert problem in decoded.headers_problem


def test_null_headers_are_no_headers() -> None:
    decoded = _envelope.decode(with_headers("null"), max_bytes=1 << 20)
    assert (decoded.headers, decoded.headers_problem) == ({}, None)


@pytest.fixture
def parts() -> tuple[Inbound, Fanout, Counters]:
    registry = ClassRegistry()
    registry.register(OrderPlaced)
    return (
        Inbound(JsonEventSerializer(), registry, max_bytes=1 << 16),
        Fanout(),
        Counters(),
    )


def test_receive_makes_the_headers_the_current_deliverys(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    inbound, fanout, counters = parts
    seen: list[Delivery | None] = []
    subscriber = FunctionalEventSubscriber(
        lambda e: seen.append(current_delivery()), False
    )
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    wire = _envelope.encode("ORDER_PLACED", OrderPlaced, PAYLOAD, {"a": "b"})
    receive(inbound, fanout, counters, "ORDER_PLACED", wire, None, "x")
    # A Streams reader sets its delivery first: the headers are added to it.
    stream = Delivery("ORDER_PLACED", "redis", "5-1", 2, "billing", "c1")
    with delivering(stream):
        receive(inbound, fanout, counters, "ORDER_PLACED", wire, None, "x")
    plain = _envelope.encode("ORDER_PLACED", OrderPlaced, PAYLOAD)
    receive(inbound, fanout, counters, "ORDER_PLACED", plain, None, "x")
    assert seen == [
        Delivery("ORDER_PLACED", "redis", headers={"a": "b"}),
        Delivery("ORDER_PLACED", "redis", "5-1", 2, "billing", "c1", {"a": "b"}),
        Delivery("ORDER_PLACED", "redis"),
    ]
    assert current_delivery() is None
    assert counters.headers_dropped == 0


def test_dropped_headers_are_counted_logged_and_the_event_delivered(
    parts: tuple[Inbound, Fanout, Counters], caplog: pytest.LogCaptureFixture
) -> None:
    inbound, fanout, counters = parts
    got: list[Any] = []
    subscriber = FunctionalEventSubscriber(
        lambda e: got.append((e, dict(current_delivery().headers))),  # type: ignore[union-attr]
        False,
    )
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        for _ in range(3):
            receive(
                inbound, fanout, counters, "ORDER_PLACED", with_headers('{"k": 1}'),
                None, "x:ORDER_PLACED",
            )  # fmt: skip
    assert got == [(OrderPlaced(1, 2.0), {})] * 3
    assert counters.headers_dropped == 3
    assert counters.delivered == 3
    assert sum(counters.dropped.values()) == 0
    logged = [r for r in caplog.records if "headers" in r.getMessage()]
    assert 1 <= len(logged) <= 3
    assert "x:ORDER_PLACED" in logged[0].getMessage()


class Stamp(Hook):
    """Adds one header to every publish."""

    def publish_started(self, info: PublishInfo) -> object:
        info.headers["x-stamp"] = f"{info.system}:{info.channel}"
        return None


@pytest.fixture
def stamp() -> Iterator[Stamp]:
    hook = Stamp()
    add_hook(hook)
    yield hook
    remove_hook(hook)


def test_pubsub_carries_headers_from_the_publishing_hook(
    broker: RedisBroker, client: redis.Redis, prefix: str, stamp: Stamp
) -> None:
    headers: list[dict[str, str]] = []
    inbox = Inbox()
    record = FunctionalEventSubscriber(
        lambda e: headers.append(dict(current_delivery().headers)),  # type: ignore[union-attr]
        False,
    )
    publisher = publisher_for(broker, "order_placed", OrderPlaced)
    publisher.add_subscriber(inbox.subscriber)
    publisher.add_subscriber(record)
    publisher.publish(OrderPlaced(1, 2.0))
    assert inbox.wait_for(1) == [OrderPlaced(1, 2.0)]
    wait_until(lambda: len(headers) == 1)
    assert headers == [{"x-stamp": "redis:ORDER_PLACED"}]
    assert broker.stats().headers_dropped == 0


def test_streams_carry_headers_from_the_publishing_hook(
    client: redis.Redis, prefix: str, stamp: Stamp
) -> None:
    seen: list[Delivery | None] = []
    broker = RedisStreamBroker(client, channel_prefix=prefix, group="g")
    try:
        broker.register_event_class(OrderPlaced)
        record = FunctionalEventSubscriber(
            lambda e: seen.append(current_delivery()), False
        )
        publisher = publisher_for(broker, "order_placed", OrderPlaced)
        publisher.add_subscriber(record)
        publisher.publish(OrderPlaced(1, 2.0))
        wait_until(lambda: len(seen) == 1)
    finally:
        broker.close()
    [delivery] = seen
    assert delivery is not None
    assert delivery.headers == {"x-stamp": "redis:ORDER_PLACED"}
    assert delivery.system == "redis"
    [entry] = client.xrange(broker.stream_key("ORDER_PLACED"))
    assert json.loads(entry[1][b"event"])["headers"] == {
        "x-stamp": "redis:ORDER_PLACED"
    }
