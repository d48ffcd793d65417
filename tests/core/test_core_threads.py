"""Thread safety: concurrent publish/subscribe/unsubscribe, weakref finalizers
firing on busy threads, and broker swaps racing publishes."""

from __future__ import annotations

import gc
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from _core_support import (
    PLACED,
    Counter,
    Placed,
    Recorder,
    make_publisher,
)

from eventspype import EventPublication, LocalBroker, MultiPublisher
from eventspype.event import NormalizedTag
from eventspype.pub.publisher import EventPublisher

# Subscribers are dropped on purpose (churn, collection under load).
pytestmark = pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")

JOIN = 30.0  # seconds; a thread still alive after this is a deadlock


class Crew:
    """Starts threads together and collects any exception they raise."""

    def __init__(self) -> None:
        self.errors: list[BaseException] = []
        self.threads: list[threading.Thread] = []
        self._start = threading.Event()

    def add(self, target: Callable[[], None], count: int = 1) -> None:
        def run() -> None:
            self._start.wait()
            try:
                target()
            except BaseException as error:  # reported by join()
                self.errors.append(error)

        for _ in range(count):
            self.threads.append(threading.Thread(target=run, daemon=True))

    def run(self) -> None:
        for thread in self.threads:
            thread.start()
        self._start.set()

    def join(self) -> None:
        for thread in self.threads:
            thread.join(JOIN)
        alive = [t for t in self.threads if t.is_alive()]
        assert not alive, f"{len(alive)} thread(s) deadlocked"
        assert self.errors == []


PUBLISHERS, EVENTS_EACH, STABLE, EARLY_EACH = 4, 300, 5, 80


@pytest.fixture
def busy_switching() -> Iterator[None]:
    """Switch threads very often so that races actually interleave."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("busy_switching")
def test_stable_subscribers_get_every_event_during_churn(route: str) -> None:
    publisher, broker = make_publisher(PLACED, route)
    stable = [Counter() for _ in range(STABLE)]
    # Transient subscribers sit *before* each stable one too: removing them
    # mid-dispatch is what would make a careless implementation skip one.
    early: list[Recorder] = []
    for subscriber in stable:
        for _ in range(EARLY_EACH):
            transient = Recorder()
            early.append(transient)
            publisher.add_subscriber(transient)
        publisher.add_subscriber(subscriber)
    del transient
    publishing_done = threading.Event()
    remaining = [PUBLISHERS]
    lock = threading.Lock()

    def publish() -> None:
        for i in range(EVENTS_EACH):
            publisher.publish(Placed(i))
        with lock:
            remaining[0] -= 1
            if remaining[0] == 0:
                publishing_done.set()

    def churn() -> None:
        rounds = 0
        while not publishing_done.is_set() or rounds < 20:
            with lock:
                old = early.pop() if early else None
            if old is not None and rounds % 2:
                publisher.remove_subscriber(old)
            del old  # removed, or just dropped (weakref finalizer path)
            fresh = [Recorder() for _ in range(3)]
            for subscriber in fresh:
                publisher.add_subscriber(subscriber)
            publisher.remove_subscriber(fresh[0])
            publisher.remove_subscriber(fresh[1])
            del fresh, subscriber  # the third one is dropped, not removed
            if rounds % 10 == 0:
                gc.collect()
            rounds += 1

    crew = Crew()
    crew.add(publish, PUBLISHERS)
    crew.add(churn, 3)
    crew.run()
    crew.join()

    total = PUBLISHERS * EVENTS_EACH
    assert [s.count for s in stable] == [total] * STABLE
    early.clear()
    gc.collect()
    assert publisher.get_subscribers() == stable
    if broker is not None:
        assert broker.subscriber_count(publisher.channel) == STABLE
        assert broker.subscriber_errors == 0
    assert publisher.subscriber_errors == 0


class Store(MultiPublisher):
    PLACED = EventPublication("order_placed", Placed)


@pytest.mark.timeout(120)
@pytest.mark.usefixtures("busy_switching")
def test_multipublisher_stable_subscribers_during_churn(route: str) -> None:
    store = Store(broker=LocalBroker() if route == "local" else None)
    stable = [Counter() for _ in range(STABLE)]
    early: list[Recorder] = []
    for subscriber in stable:
        for _ in range(EARLY_EACH):
            early.append(Recorder())
            store.add_subscriber(Store.PLACED, early[-1])
        store.add_subscriber(Store.PLACED, subscriber)
    done = threading.Event()
    lock = threading.Lock()

    def publish() -> None:
        for i in range(EVENTS_EACH):
            store.publish(Store.PLACED, Placed(i))

    def churn() -> None:
        while not done.is_set():
            with lock:
                old = early.pop() if early else None
            if old is not None:
                store.remove_subscriber(Store.PLACED, old)
            transient = Recorder()
            store.add_subscriber(Store.PLACED, transient)
            store.remove_subscriber(Store.PLACED, transient)
            callback = transient.calls.append
            store.add_subscriber_with_callback(
                Store.PLACED, callback, with_event_info=False
            )
            store.remove_subscriber_with_callback(Store.PLACED, callback)

    publishers = Crew()
    publishers.add(publish, PUBLISHERS)
    churners = Crew()
    churners.add(churn, 2)
    churners.run()
    publishers.run()
    publishers.join()
    done.set()
    churners.join()

    assert [s.count for s in stable] == [PUBLISHERS * EVENTS_EACH] * STABLE
    early.clear()
    gc.collect()
    assert store.get_subscribers(Store.PLACED) == stable


class Cyclic(Recorder):
    """Only the cyclic garbage collector can free it, so its weakref callback
    runs inside whatever allocation triggered a collection, on any thread."""

    def __init__(self) -> None:
        super().__init__()
        self.me = self


@pytest.mark.timeout(120)
def test_weakref_finalizers_do_not_deadlock(route: str) -> None:
    publisher, broker = make_publisher(PLACED, route)
    keeper = Counter()
    publisher.add_subscriber(keeper)
    stop = threading.Event()
    thresholds = gc.get_threshold()
    # Collect young objects very often: finalizers then fire in the middle of
    # add/remove, while the publisher's and the broker's locks are held.
    # (Frequent full collections would only slow the whole process down.)
    gc.set_threshold(10, 5, 100_000)
    try:

        def create_and_drop() -> None:
            for i in range(300):
                batch = [Cyclic() for _ in range(5)]
                for subscriber in batch:
                    publisher.add_subscriber(subscriber)
                if i % 2:
                    publisher.remove_subscriber(batch[0])
                del batch, subscriber
                if i % 25 == 0:
                    gc.collect()

        def add_remove() -> None:
            mine = Cyclic()
            while not stop.is_set():
                publisher.add_subscriber(mine)
                publisher.get_subscribers()
                publisher.remove_subscriber(mine)
                if broker is not None:
                    broker.channels()
                    broker.subscriber_count(publisher.channel)
                # Busy loops that never block would hold the GIL for whole
                # switch intervals and turn every lock hand-off between the
                # other threads into a 5 ms wait: a slow test, not a sharper one.
                time.sleep(0.0001)

        def publish() -> None:
            while not stop.is_set():
                publisher.publish(Placed(0))
                time.sleep(0.0001)

        workers = Crew()
        workers.add(create_and_drop, 4)
        background = Crew()
        background.add(add_remove)
        background.add(publish)
        background.run()
        workers.run()
        workers.join()
        stop.set()
        background.join()
    finally:
        gc.set_threshold(*thresholds)
        stop.set()

    gc.collect()
    publisher.publish(Placed(1))
    assert publisher.get_subscribers() == [keeper]
    assert not publisher._subscribers.pending
    if broker is not None:
        assert broker.channels() == [publisher.channel]
        assert broker.subscriber_count(publisher.channel) == 1


class GatedBroker(LocalBroker):
    """A LocalBroker whose publish pauses at its start until released."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def publish(
        self, channel: str, event: Any, event_tag: NormalizedTag, caller: Any
    ) -> None:
        self.entered.set()
        self.release.wait(JOIN)
        super().publish(channel, event, event_tag, caller)


@pytest.mark.xfail(
    strict=True,
    reason="documented limit of EventPublisher.broker: a publish already inside "
    "the old broker when the swap completes reaches nobody",
)
@pytest.mark.timeout(60)
def test_publish_racing_a_broker_swap_is_not_lost() -> None:
    """Pins the documented limit: if it ever starts passing, update the docs."""
    old = GatedBroker()
    publisher = EventPublisher(PLACED, broker=old)
    subscriber = Recorder()
    publisher.add_subscriber(subscriber)

    crew = Crew()
    crew.add(lambda: publisher.publish(Placed(1)))
    crew.run()
    assert old.entered.wait(JOIN)  # the publish is under way, via the old broker
    publisher.broker = LocalBroker()  # swap while it is in flight
    old.release.set()
    crew.join()

    assert subscriber.events == [Placed(1)]


@pytest.mark.timeout(120)
def test_swapping_brokers_while_publishing_never_duplicates() -> None:
    publisher = EventPublisher(PLACED)
    seen: list[int] = []
    lock = threading.Lock()

    class Collect(Recorder):
        def call(self, arg: Any, tag: NormalizedTag, caller: Any) -> None:
            with lock:
                seen.append(arg.order_id)

    subscriber = Collect()
    publisher.add_subscriber(subscriber)
    done = threading.Event()

    def publish() -> None:
        for i in range(2000):
            publisher.publish(Placed(i))
        done.set()

    swaps = 0

    def swap() -> None:
        nonlocal swaps
        brokers = [LocalBroker(), None, LocalBroker()]
        while not done.is_set():
            publisher.broker = brokers[swaps % 3]
            swaps += 1

    crew = Crew()
    crew.add(publish)
    crew.add(swap)
    crew.run()
    crew.join()
    assert len(seen) == len(set(seen))
    # Each swap can lose at most the one event in flight through the old
    # broker (the documented limit); everything else arrives.
    assert len(seen) >= 2000 - swaps
    assert seen, "nothing was delivered"
    # Once the swapping stops, every event arrives, exactly once.
    for i in range(2000, 2100):
        publisher.publish(Placed(i))
    assert sorted(seen[-100:]) == list(range(2000, 2100))
    assert len(seen) == len(set(seen))
