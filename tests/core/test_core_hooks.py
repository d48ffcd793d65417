"""eventspype.hooks: what a hook sees around publish and delivery (issue 18)."""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from _core_support import PLACED, Placed, Recorder, RecordingBroker, make_publisher

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublisher,
    FunctionalEventSubscriber,
    LocalBroker,
    MultiPublisher,
)
from eventspype.delivery import Delivery, delivering
from eventspype.hooks import (
    DeliveryInfo,
    Hook,
    PublishInfo,
    add_hook,
    installed_hooks,
    outgoing_headers,
    remove_hook,
)

MARK: contextvars.ContextVar[str] = contextvars.ContextVar("mark", default="")


class Journal(Hook):
    """Records every call, in order, with what it was given."""

    def __init__(self, name: str = "j", log: list[tuple[Any, ...]] | None = None):
        self.name = name
        self.log: list[tuple[Any, ...]] = [] if log is None else log

    def publish_started(self, info: PublishInfo) -> object:
        info.headers[f"x-{self.name}"] = "1"
        self.log.append((self.name, "publish_started", info))
        return f"p-{self.name}"

    def publish_finished(
        self, info: PublishInfo, state: object, error: Any, duration_ns: int
    ) -> None:
        self.log.append((self.name, "publish_finished", info, state, error))
        assert duration_ns >= 0

    def delivery_started(self, info: DeliveryInfo) -> object:
        self.log.append((self.name, "delivery_started", info, MARK.get()))
        return f"d-{self.name}"

    def delivery_finished(
        self, info: DeliveryInfo, state: object, error: Any, duration_ns: int
    ) -> None:
        self.log.append((self.name, "delivery_finished", info, state, error))
        assert duration_ns >= 0

    def kinds(self) -> list[str]:
        return [entry[1] for entry in self.log]


@pytest.fixture
def journal() -> Iterator[Journal]:
    hook = Journal()
    add_hook(hook)
    try:
        yield hook
    finally:
        remove_hook(hook)
    assert installed_hooks() == ()


def test_the_fast_paths_are_swapped_only_while_hooks_are_installed() -> None:
    plain = (EventPublisher.publish, LocalBroker.publish)
    assert [f.__name__ for f in plain] == ["publish", "publish"]
    first, second = Journal("1"), Journal("2")
    add_hook(first)
    add_hook(second)
    try:
        assert EventPublisher.publish.__name__ == "_publish_observed"
        assert LocalBroker.publish.__name__ == "_publish_observed"
        remove_hook(first)  # one left: still observed
        assert EventPublisher.publish.__name__ == "_publish_observed"
    finally:
        remove_hook(first)
        remove_hook(second)
    assert (EventPublisher.publish, LocalBroker.publish) == plain


@pytest.mark.parametrize("route", ["direct", "local"])
def test_publish_and_each_delivery_are_seen_with_their_details(
    journal: Journal, route: str
) -> None:
    publisher, broker = make_publisher(PLACED, route)
    first, second = Recorder(), Recorder()
    publisher.add_subscriber(first)
    publisher.add_subscriber(second)
    event = Placed(1)
    publisher.publish(event)
    assert journal.kinds() == [
        "publish_started",
        "delivery_started",
        "delivery_finished",
        "delivery_started",
        "delivery_finished",
        "publish_finished",
    ]
    publish = journal.log[0][2]
    assert (publish.channel, publish.event, publish.event_tag) == (
        "ORDER_PLACED",
        event,
        "ORDER_PLACED",
    )
    assert publish.publication is PLACED
    assert publish.broker is broker
    assert publish.system == "eventspype"
    delivered = [entry[2] for entry in journal.log if entry[1] == "delivery_started"]
    assert [d.subscriber for d in delivered] == [first, second]
    assert {(d.channel, d.delivery, d.system, d.caller) for d in delivered} == {
        ("ORDER_PLACED", None, "eventspype", publisher)
    }
    assert journal.log[2][3] == "d-j"
    assert journal.log[2][4] is None
    assert journal.log[-1][3:] == ("p-j", None)
    assert first.calls == second.calls == [(event, "ORDER_PLACED", publisher)]


def test_a_failing_subscriber_is_seen_failing_and_still_isolated(
    journal: Journal,
) -> None:
    publisher = EventPublisher(PLACED)
    error = ValueError("bad order")

    def fail(event: Placed) -> None:
        raise error

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    after = Recorder()
    publisher.add_subscriber(failing)
    publisher.add_subscriber(after)
    publisher.publish(Placed(2))
    finished = [e for e in journal.log if e[1] == "delivery_finished"]
    assert [e[4] for e in finished] == [error, None]
    assert publisher.subscriber_errors == 1
    assert len(after.calls) == 1
    assert journal.log[-1][4] is None  # the publish itself succeeded


def test_hooks_nest_first_started_last_finished() -> None:
    log: list[tuple[Any, ...]] = []
    outer, inner = Journal("outer", log), Journal("inner", log)
    add_hook(outer)
    add_hook(inner)
    add_hook(outer)  # twice: no effect
    try:
        assert installed_hooks() == (outer, inner)
        publisher = EventPublisher(PLACED)
        recorder = Recorder()
        publisher.add_subscriber(recorder)
        publisher.publish(Placed(3))
    finally:
        remove_hook(outer)
        remove_hook(inner)
    assert [(e[0], e[1]) for e in log] == [
        ("outer", "publish_started"),
        ("inner", "publish_started"),
        ("outer", "delivery_started"),
        ("inner", "delivery_started"),
        ("inner", "delivery_finished"),
        ("outer", "delivery_finished"),
        ("inner", "publish_finished"),
        ("outer", "publish_finished"),
    ]


def test_headers_reach_the_broker_while_it_publishes_only(journal: Journal) -> None:
    seen: list[Any] = []

    class HeaderBroker(RecordingBroker):
        messaging_system = "custom"

        def publish(
            self, channel: str, event: Any, event_tag: Any, caller: Any
        ) -> None:  # type: ignore[override]
            seen.append(dict(outgoing_headers() or {}))

    broker = HeaderBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    publisher.publish(Placed(4))
    assert seen == [{"x-j": "1"}]
    assert journal.log[0][2].system == "custom"
    assert outgoing_headers() is None


def test_a_broker_error_is_seen_then_raised(journal: Journal) -> None:
    class Down(RecordingBroker):
        def publish(self, *args: Any) -> None:  # type: ignore[override]
            raise ConnectionError("down")

    publisher = EventPublisher(PLACED, broker=Down())
    with pytest.raises(ConnectionError):
        publisher.publish(Placed(5))
    assert isinstance(journal.log[-1][4], ConnectionError)


def test_a_raising_hook_is_logged_and_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Hook):
        def publish_started(self, info: PublishInfo) -> object:
            raise RuntimeError("hook bug")

        def delivery_finished(self, *args: Any) -> None:
            raise RuntimeError("hook bug")

    broken = Broken()
    add_hook(broken)
    try:
        publisher = EventPublisher(PLACED)
        recorder = Recorder()
        publisher.add_subscriber(recorder)
        with caplog.at_level(logging.WARNING, logger="eventspype.hooks"):
            publisher.publish(Placed(6))
            publisher.publish(Placed(7))
    finally:
        remove_hook(broken)
    assert [c[0] for c in recorder.calls] == [Placed(6), Placed(7)]
    assert publisher.subscriber_errors == 0
    messages = [r.getMessage() for r in caplog.records]
    # Once per hook method, however often it raises (rate-limited).
    assert sum("publish_started" in m for m in messages) == 1
    assert sum("delivery_finished" in m for m in messages) == 1


def test_removed_hooks_see_nothing_and_nothing_is_sent(journal: Journal) -> None:
    remove_hook(journal)
    publisher = EventPublisher(PLACED)
    recorder = Recorder()
    publisher.add_subscriber(recorder)
    publisher.publish(Placed(8))
    assert journal.log == []
    assert len(recorder.calls) == 1


def test_a_remote_delivery_is_seen_with_its_transport(journal: Journal) -> None:
    # What a broker's fan-out does: the delivery it set is handed to hooks.
    from eventspype._internal import observed

    recorder = Recorder()
    transport = Delivery("orders", "redis", "1-0", 3, "billing", "c1", {"k": "v"})
    with delivering(transport):
        observed.call(
            installed_hooks(), recorder, Placed(9), "orders", "broker", "orders",
            transport,
        )  # fmt: skip
    info = journal.log[0][2]
    assert info.delivery is transport
    assert info.system == "redis"
    assert recorder.calls == [(Placed(9), "orders", "broker")]


def test_multipublisher_publishes_are_seen(journal: Journal) -> None:
    class Shop(MultiPublisher):
        placed = PLACED

    shop = Shop()
    recorder = Recorder()
    shop.add_subscriber(PLACED, recorder)
    shop.publish(PLACED, Placed(10))
    assert journal.kinds()[0] == "publish_started"
    assert journal.log[0][2].publication is PLACED


@pytest.mark.parametrize("route", ["direct", "local"])
def test_coroutine_subscribers_are_seen_around_their_handler(
    journal: Journal, route: str
) -> None:
    async def scenario() -> list[str]:
        order: list[str] = []

        async def handle(event: Placed) -> None:
            order.append(f"handled {event.order_id}")
            await asyncio.sleep(0)

        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        publisher, _ = make_publisher(PLACED, route)
        publisher.add_subscriber(subscriber)
        MARK.set("publisher's context")
        publisher.publish(Placed(11))  # scheduled: handled later on the loop
        order.append("published")
        await subscriber.drain()
        await publisher.publish_async(Placed(12))
        order.append("published async")
        return order

    order = asyncio.run(scenario())
    assert order == ["published", "handled 11", "handled 12", "published async"]
    started = [e for e in journal.log if e[1] == "delivery_started"]
    assert [e[2].event for e in started] == [Placed(11), Placed(12)]
    # The hook runs in the worker task, with the publisher's context kept.
    assert [e[2].context.run(MARK.get) for e in started] == [
        "publisher's context",
        "publisher's context",
    ]
    kinds = journal.kinds()
    # The first delivery finished after its publish: the handler ran later.
    assert kinds.index("publish_finished") < kinds.index("delivery_finished")


def test_a_failing_coroutine_subscriber_is_seen_failing(journal: Journal) -> None:
    async def scenario() -> None:
        async def handle(event: Placed) -> None:
            raise KeyError("missing")

        subscriber = AsyncFunctionalEventSubscriber(handle, with_event_info=False)
        publisher = EventPublisher(PLACED)
        publisher.add_subscriber(subscriber)
        publisher.publish(Placed(13))
        await subscriber.drain()
        assert subscriber.errors == 1

    asyncio.run(scenario())
    [finished] = [e for e in journal.log if e[1] == "delivery_finished"]
    assert isinstance(finished[4], KeyError)
