"""The sans-I/O receive path on its own: no server, no thread, no socket.

What every Redis broker (Pub/Sub, Streams, asyncio) builds on: ``receive()``
decodes, checks, delivers and counts, and reports what happened.
"""

from __future__ import annotations

import dataclasses
import gc
from typing import Any

import pytest
from _redis_support import OrderPlaced

from eventspype import EventPublication, FunctionalEventSubscriber
from eventspype.broker.redis._wire.envelope import encode
from eventspype.broker.redis._wire.fanout import Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.receive import receive
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.broker.redis._wire.stats import Counters
from eventspype.serializers import JsonEventSerializer


@dataclasses.dataclass
class Refund:
    order_id: int


PLACED = EventPublication("order_placed", OrderPlaced)


@pytest.fixture
def parts() -> tuple[Inbound, Fanout, Counters]:
    registry = ClassRegistry()
    registry.register(OrderPlaced)
    registry.register(Refund)
    return (
        Inbound(JsonEventSerializer(), registry, max_bytes=4096),
        Fanout(),
        Counters(),
    )


def message(tag: Any, event: Any) -> bytes:
    return encode(tag, type(event), JsonEventSerializer().serialize(event))


def test_an_event_is_delivered_and_reported(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    inbound, fanout, counters = parts
    got: list[Any] = []
    subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    delivery = receive(
        inbound, fanout, counters, "ORDER_PLACED",
        message("ORDER_PLACED", OrderPlaced(1, 2.0)), "caller", "x:ORDER_PLACED",
    )  # fmt: skip
    assert got == [OrderPlaced(1, 2.0)]
    assert delivery == (1, (), ())
    assert delivery.complete
    assert counters.delivered == 1


def test_a_refused_message_is_reported_counted_and_complete(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    inbound, fanout, counters = parts
    delivery = receive(
        inbound, fanout, counters, "ORDER_PLACED", b"x" * 5000, None, "x:ORDER_PLACED"
    )
    assert delivery.handled == 0
    assert [reason for reason, _ in delivery.refused] == ["oversized"]
    assert delivery.complete  # nothing to retry: a Streams broker acknowledges
    assert counters.dropped["oversized"] == 1


def test_a_raising_subscriber_makes_the_delivery_incomplete(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    inbound, fanout, counters = parts
    error = ValueError("boom")

    def fail(event: Any) -> None:
        raise error

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    got: list[Any] = []
    fine = FunctionalEventSubscriber(got.append, with_event_info=False)
    fanout.add("ORDER_PLACED", failing, PLACED)
    fanout.add("ORDER_PLACED", fine)
    delivery = receive(
        inbound, fanout, counters, "ORDER_PLACED",
        message("ORDER_PLACED", OrderPlaced(1, 2.0)), None, "x:ORDER_PLACED",
    )  # fmt: skip
    assert delivery.handled == 1
    assert delivery.failed == ((failing, error),)
    assert not delivery.complete
    assert fanout.subscriber_errors == 1
    assert got == [OrderPlaced(1, 2.0)]


def test_per_subscriber_refusals_are_reported(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    inbound, fanout, counters = parts
    subscriber = FunctionalEventSubscriber(lambda e: None, with_event_info=False)
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    delivery = receive(
        inbound, fanout, counters, "ORDER_PLACED",
        message("ORDER_PLACED", Refund(1)), None, "x:ORDER_PLACED",
    )  # fmt: skip
    assert delivery.handled == 0
    assert [reason for reason, _ in delivery.refused] == ["class_mismatch"]
    assert delivery.complete
    assert counters.dropped["class_mismatch"] == 1
    assert counters.delivered == 0


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_the_fanout_reports_channels_left_empty_by_the_collector() -> None:
    seen: list[str] = []
    fanout = Fanout(seen.append)
    subscriber = FunctionalEventSubscriber(lambda e: None, with_event_info=False)
    assert fanout.add("A", subscriber) is True
    assert fanout.add("A", subscriber, PLACED) is False
    assert fanout.subscriber_count("A") == 1
    del subscriber
    gc.collect()
    assert seen == ["A"]
    assert fanout.reap() == ["A"]
    assert fanout.channels() == []


def test_removing_a_publication_keeps_the_subscriber_s_other_rules() -> None:
    fanout = Fanout()
    subscriber = FunctionalEventSubscriber(lambda e: None, with_event_info=False)
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    fanout.add("ORDER_PLACED", subscriber)
    assert fanout.remove("ORDER_PLACED", subscriber, PLACED) is False
    assert fanout.deliver("ORDER_PLACED", Refund(1), "ORDER_PLACED", None).handled == 1
    assert fanout.remove("ORDER_PLACED", subscriber) is True


def test_delivered_is_counted_before_the_first_subscriber_runs(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    # A subscriber that hands the event to another thread (a queue, an event
    # loop) must not let that thread read stats() before the count is up.
    inbound, fanout, counters = parts
    seen: list[int] = []
    subscriber = FunctionalEventSubscriber(
        lambda _: seen.append(counters.delivered), with_event_info=False
    )
    fanout.add("ORDER_PLACED", subscriber, PLACED)
    for order_id in (1, 2):
        receive(
            inbound, fanout, counters, "ORDER_PLACED",
            message("ORDER_PLACED", OrderPlaced(order_id, 2.0)), "c", "x",
        )  # fmt: skip
    assert seen == [1, 2]
    assert counters.delivered == 2


@pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")
def test_a_message_no_subscriber_accepts_is_not_counted_delivered(
    parts: tuple[Inbound, Fanout, Counters],
) -> None:
    inbound, fanout, counters = parts
    subscriber = FunctionalEventSubscriber(lambda _: None, with_event_info=False)
    fanout.add("ORDER_PLACED", subscriber, EventPublication("order_placed", Refund))
    receive(
        inbound, fanout, counters, "ORDER_PLACED",
        message("ORDER_PLACED", OrderPlaced(1, 2.0)), "c", "x",
    )  # fmt: skip
    assert counters.delivered == 0
    assert counters.dropped["class_mismatch"] == 1
