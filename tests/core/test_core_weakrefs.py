"""Subscribers are held weakly: a dropped one stops receiving and leaves nothing."""

from __future__ import annotations

import gc
import weakref

import pytest
from _core_support import PLACED, Placed, Recorder, make_publisher

from eventspype import EventPublisher, LocalBroker

# These tests drop subscribers on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::eventspype.SubscriberLostWarning")


def test_dropped_subscriber_direct_route() -> None:
    publisher = EventPublisher(PLACED)
    kept, dropped = Recorder(), Recorder()
    publisher.add_subscriber(kept)
    publisher.add_subscriber(dropped)
    dropped_calls = dropped.calls
    del dropped
    gc.collect()

    publisher.publish(Placed(1))

    assert dropped_calls == []
    assert len(kept.calls) == 1
    internals = publisher._subscribers
    # The publish itself applied the queued removal: nothing is left behind.
    assert not internals.pending
    assert len(internals.snapshot) == 1
    assert publisher.get_subscribers() == [kept]


def test_dropped_subscriber_local_broker_route() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    kept, dropped = Recorder(), Recorder()
    publisher.add_subscriber(kept)
    publisher.add_subscriber(dropped)
    channel = str(PLACED.event_tag)
    assert broker.subscriber_count(channel) == 2
    dropped_calls = dropped.calls
    del dropped
    gc.collect()

    publisher.publish(Placed(1))

    assert dropped_calls == []
    assert len(kept.calls) == 1
    internals = broker._channels[channel]
    assert not internals.pending
    assert len(internals.snapshot) == 1
    assert broker.subscriber_count(channel) == 1
    assert publisher.get_subscribers() == [kept]


def test_all_dropped_leaves_nothing_in_local_broker() -> None:
    broker = LocalBroker()
    publisher = EventPublisher(PLACED, broker=broker)
    subs = [Recorder() for _ in range(3)]
    for sub in subs:
        publisher.add_subscriber(sub)
    channel = str(PLACED.event_tag)
    assert broker.channels() == [channel]
    del subs, sub
    gc.collect()
    assert broker.subscriber_count(channel) == 0
    assert broker.channels() == []
    assert publisher.get_subscribers() == []
    publisher.publish(Placed(1))  # nobody left: no error
    assert broker.channels() == []


def test_all_dropped_leaves_nothing_in_direct_publisher() -> None:
    publisher = EventPublisher(PLACED)
    subs = [Recorder() for _ in range(3)]
    for sub in subs:
        publisher.add_subscriber(sub)
    del subs, sub
    gc.collect()
    publisher.publish(Placed(1))
    assert not publisher._subscribers.pending
    assert publisher._subscribers.snapshot == ()
    assert publisher.get_subscribers() == []


def test_subscriber_in_reference_cycle_is_collected() -> None:
    """Only the garbage collector can free a cycle; the weakref must follow."""
    for route in ("direct", "local"):
        publisher, broker = make_publisher(PLACED, route)
        sub = Recorder()
        sub.me = sub  # type: ignore[attr-defined]
        calls = sub.calls
        publisher.add_subscriber(sub)
        del sub
        gc.collect()
        publisher.publish(Placed(1))
        assert calls == []
        assert publisher.get_subscribers() == []
        if broker is not None:
            assert broker.channels() == []


def test_publisher_does_not_keep_subscriber_alive() -> None:
    import weakref

    for route in ("direct", "local"):
        publisher, _ = make_publisher(PLACED, route)
        sub = Recorder()
        publisher.add_subscriber(sub)
        ref = weakref.ref(sub)
        del sub
        gc.collect()
        assert ref() is None, route


def test_new_subscriber_reusing_a_dead_id_is_kept() -> None:
    """Entries are keyed by id(); a late finalizer must not evict a newcomer.

    CPython runs a weakref callback before the address can be reused, and every
    mutation drains pending callbacks first, so a dead subscriber's finalizer
    normally lands before its id is reused. Garbage collection on another
    thread, in the middle of an ``add()``, can deliver it after: each dead
    subscriber's finalizer is replayed here for the key its newcomer holds.
    """
    for route in ("direct", "local"):
        publisher, broker = make_publisher(PLACED, route)
        newcomers = []
        for _ in range(50):
            sub = Recorder()
            publisher.add_subscriber(sub)
            dead = weakref.ref(sub)
            del sub
            fresh = Recorder()  # often lands on the freed address
            publisher.add_subscriber(fresh)
            newcomers.append(fresh)
            entries = (
                publisher._subscribers
                if broker is None
                else broker._channels[publisher.channel]
            )
            entries._finalizer(id(fresh))(dead)  # late, for the newcomer's key
        gc.collect()
        publisher.publish(Placed(1))
        assert all(len(n.calls) == 1 for n in newcomers), route
        assert publisher.get_subscribers() == newcomers
