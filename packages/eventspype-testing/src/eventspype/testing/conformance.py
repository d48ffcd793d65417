"""The contract every :class:`~eventspype.MessageBroker` keeps, as a pytest class.

Prove a broker by subclassing :class:`BrokerContract` in a test module and
overriding one fixture, ``broker``, that returns a fresh broker (and closes it
afterwards)::

    from eventspype.testing.conformance import BrokerContract

    class TestMyBroker(BrokerContract):
        @pytest.fixture
        def broker(self):
            broker = MyBroker()
            yield broker
            broker.close()

Every test of the class then runs against it. Class attributes say which
optional features the broker has (see :class:`BrokerContract`); a test whose
feature the broker lacks is skipped with the flag's name, never weakened.

The contract publishes instances of :class:`Ping` and :class:`Pong` (frozen
dataclasses, JSON-friendly) on channels named ``contract_*``. A broker that
only accepts registered classes registers :data:`EVENT_CLASSES` in its
fixture; one on a shared server gives each test its own channel prefix.
"""

from __future__ import annotations

import gc
import threading
import weakref
from typing import Any

import pytest

from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.testing._contract_base import ContractBase
from eventspype.testing._contract_support import (
    EVENT_CLASSES,
    Inbox,
    Ping,
    Pong,
    Raising,
    wait_until,
)

__all__ = ["EVENT_CLASSES", "BrokerContract", "Ping", "Pong"]

ORDERS = EventPublication("contract_orders", Ping)
OTHER = EventPublication("contract_other", Ping)
PONGS = EventPublication("contract_pongs", Pong)


class BrokerContract(ContractBase):
    """Subclass as ``Test<YourBroker>`` and override the ``broker`` fixture.

    Feature flags (class attributes) for what differs between brokers:

    Attributes:
        delivers_synchronously: Events are delivered before ``publish()``
            returns (``LocalBroker``). Otherwise the contract waits up to
            :attr:`delivery_timeout` seconds for each expected delivery, and
            checks what must *not* arrive only once a later event did.
        ordered: One publisher's events reach a subscriber in publish order.
        checks_publication_class: A subscriber added through a publisher
            receives only instances of its publication's class (the Redis
            brokers check this on receipt; ``LocalBroker`` need not: only its
            own publishers publish, and they check).
        raises_subscriber_errors: ``publish()`` raises a subscriber's
            exception after delivering to the others (``TestBroker``)
            instead of logging it.
        refuses_after_close: ``publish()`` and ``subscribe()`` raise
            ``RuntimeError`` once the broker is closed.
        cross_process: Events published on ``broker`` reach subscribers of
            another broker on the same transport; override the
            ``peer_broker`` fixture to return one.
        durable: A failed delivery is retried and, after
            :attr:`max_deliveries` deliveries, becomes a dead letter
            (``broker.dead_letters(channel)``).
        max_deliveries: The broker's setting, for the durable tests.
        delivery_timeout: The most the contract waits for a delivery.

    Methods a subclass may override, for brokers that need them: the
    ``peer_broker`` fixture (``cross_process``), :meth:`subscribed` (wait
    until the transport confirmed a subscription), :meth:`close_broker`
    (``aclose()`` brokers), :meth:`pass_time` (move a fake clock while the
    contract waits), :meth:`dead_letters` (``durable``).
    """

    # --- the contract -------------------------------------------------------------

    def test_every_subscriber_receives_each_event_once(self, broker: Any) -> None:
        publisher = EventPublisher(ORDERS, broker)
        inboxes = [Inbox() for _ in range(3)]
        for inbox in inboxes:
            publisher.add_subscriber(inbox)
        broker.subscribe(publisher.channel, inboxes[0])  # again: still once
        self.subscribed(broker)
        for number in (1, 2, 3):
            publisher.publish(Ping(number))
        for inbox in inboxes:
            self._eventually(broker, lambda i=inbox: len(i) >= 3, "three deliveries")
        for inbox in inboxes:
            assert sorted(e.number for e in inbox.events) == [1, 2, 3], inbox.events

    def test_subscribers_get_the_tag_it_was_published_under(self, broker: Any) -> None:
        publisher = EventPublisher(ORDERS, broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox)
        self.subscribed(broker)
        publisher.publish(Ping(1, "tagged"))
        self._eventually(broker, lambda: len(inbox) == 1, "one delivery")
        event, tag, _ = inbox.items[0]
        assert event == Ping(1, "tagged")
        assert tag == ORDERS.event_tag

    def test_channels_are_isolated(self, broker: Any) -> None:
        orders, other = EventPublisher(ORDERS, broker), EventPublisher(OTHER, broker)
        on_orders, on_other = Inbox(), Inbox()
        orders.add_subscriber(on_orders)
        other.add_subscriber(on_other)
        self.subscribed(broker)
        other.publish(Ping(1, "other"))
        self._eventually(broker, lambda: len(on_other) == 1, "the other channel")
        orders.publish(Ping(2, "orders"))
        self._eventually(broker, lambda: len(on_orders) >= 1, "the orders channel")
        assert on_orders.events == [Ping(2, "orders")]
        assert on_other.events == [Ping(1, "other")]

    def test_one_publishers_events_arrive_in_order(self, broker: Any) -> None:
        if not self.ordered:
            pytest.skip("ordered = False: this broker does not keep publish order")
        publisher = EventPublisher(ORDERS, broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox)
        self.subscribed(broker)
        for number in range(50):
            publisher.publish(Ping(number))
        self._eventually(broker, lambda: len(inbox) >= 50, "fifty deliveries")
        assert [e.number for e in inbox.events] == list(range(50))

    def test_publishing_from_several_threads_loses_nothing(self, broker: Any) -> None:
        publisher = EventPublisher(ORDERS, broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox)
        self.subscribed(broker)
        start = threading.Barrier(4)

        def publish_some(first: int) -> None:
            start.wait()
            for number in range(first, first + 25):
                publisher.publish(Ping(number))

        threads = [
            threading.Thread(target=publish_some, args=(n * 25,)) for n in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self._eventually(broker, lambda: len(inbox) >= 100, "a hundred deliveries")
        assert sorted(e.number for e in inbox.events) == list(range(100))

    def test_a_dropped_subscriber_stops_receiving_and_is_not_kept(
        self, broker: Any
    ) -> None:
        publisher = EventPublisher(ORDERS, broker)
        kept, dropped = Inbox(), Inbox()
        publisher.add_subscriber(dropped)
        publisher.add_subscriber(kept)
        self.subscribed(broker)
        publisher.publish(Ping(1))
        received = dropped.items  # the list outlives the subscriber
        self._eventually(broker, lambda: len(received) == 1, "delivery before drop")
        gone = weakref.ref(dropped)
        del dropped

        def collected() -> bool:
            gc.collect()
            return gone() is None

        wait_until(collected, self.delivery_timeout, "the broker to let go of it")
        publisher.publish(Ping(2))
        self._eventually(broker, lambda: len(kept) == 2, "delivery after drop")
        assert [item[0] for item in received] == [Ping(1)]

    def test_unsubscribed_subscribers_receive_nothing_more(self, broker: Any) -> None:
        publisher = EventPublisher(ORDERS, broker)
        leaving, staying = Inbox(), Inbox()
        publisher.add_subscriber(leaving)
        publisher.add_subscriber(staying)
        self.subscribed(broker)
        publisher.publish(Ping(1))
        self._eventually(broker, lambda: len(leaving) == 1, "delivery before")
        publisher.remove_subscriber(leaving)
        broker.unsubscribe(publisher.channel, leaving)  # unknown now: ignored
        broker.unsubscribe("contract_never_subscribed", staying)
        publisher.publish(Ping(2))
        self._eventually(broker, lambda: len(staying) == 2, "delivery after")
        assert leaving.events == [Ping(1)]

    def test_a_failing_subscriber_does_not_stop_the_others(self, broker: Any) -> None:
        publisher = EventPublisher(ORDERS, broker)
        failing, inbox = Raising(), Inbox()
        publisher.add_subscriber(failing)
        publisher.add_subscriber(inbox)
        self.subscribed(broker)
        for number in (1, 2):
            if self.raises_subscriber_errors:
                with pytest.raises(RuntimeError, match="contract: a subscriber bug"):
                    publisher.publish(Ping(number))
            else:
                publisher.publish(Ping(number))
        self._eventually(broker, lambda: len(inbox) == 2, "both events delivered")
        self._eventually(broker, lambda: failing.calls >= 2, "both events tried")
        assert sorted(e.number for e in inbox.events) == [1, 2]

    def test_an_event_of_the_wrong_class_is_refused(self, broker: Any) -> None:
        publisher = EventPublisher(ORDERS, broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox)
        self.subscribed(broker)
        with pytest.raises(ValueError, match="Invalid event type"):
            publisher.publish(Pong(1))
        publisher.publish(Ping(2))
        self._eventually(broker, lambda: len(inbox) >= 1, "the valid event")
        assert inbox.events == [Ping(2)]

    def test_subscribers_receive_only_their_publications_class(
        self, broker: Any
    ) -> None:
        if not self.checks_publication_class:
            pytest.skip("checks_publication_class = False")
        pongs_on_orders = EventPublication(ORDERS.original_tag, Pong)
        pings, pongs = (
            EventPublisher(ORDERS, broker),
            EventPublisher(pongs_on_orders, broker),
        )
        ping_inbox, pong_inbox = Inbox(), Inbox()
        pings.add_subscriber(ping_inbox)
        pongs.add_subscriber(pong_inbox)
        self.subscribed(broker)
        pongs.publish(Pong(1))
        pings.publish(Ping(2))
        self._eventually(broker, lambda: len(ping_inbox) >= 1, "the Ping")
        self._eventually(broker, lambda: len(pong_inbox) >= 1, "the Pong")
        assert ping_inbox.events == [Ping(2)]
        assert pong_inbox.events == [Pong(1)]

    def test_a_publisher_moves_its_subscribers_between_brokers(
        self, broker: Any
    ) -> None:
        from eventspype.broker.local import LocalBroker

        local = LocalBroker()
        publisher = EventPublisher(ORDERS, broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox)
        publisher.broker = local
        publisher.publish(Ping(1))
        assert inbox.events == [Ping(1)], "delivered through the new broker"
        publisher.broker = broker
        self.subscribed(broker)
        publisher.publish(Ping(2))
        self._eventually(broker, lambda: len(inbox) == 2, "back on this broker")
        publisher.broker = None
        publisher.publish(Ping(3))  # direct dispatch now
        assert [e.number for e in inbox.events][-1] == 3
        local.publish(publisher.channel, Ping(4), ORDERS.event_tag, None)
        assert [e.number for e in inbox.events] == [1, 2, 3], "left the old broker"

    def test_several_publications_share_one_broker(self, broker: Any) -> None:
        orders, pongs = EventPublisher(ORDERS, broker), EventPublisher(PONGS, broker)
        both, only_pongs = Inbox(), Inbox()
        orders.add_subscriber(both)
        pongs.add_subscriber(both)
        pongs.add_subscriber(only_pongs)
        self.subscribed(broker)
        orders.publish(Ping(1))
        pongs.publish(Pong(2))
        self._eventually(broker, lambda: len(both) == 2, "both publications")
        self._eventually(broker, lambda: len(only_pongs) == 1, "the Pong")
        assert sorted(both.events, key=repr) == [Ping(1), Pong(2)]
        assert only_pongs.events == [Pong(2)]
        assert {item[1] for item in both.items} == {
            ORDERS.event_tag,
            PONGS.event_tag,
        }

    def test_close_releases_everything(
        self, broker: Any, threads_at_start: set[threading.Thread]
    ) -> None:
        publisher = EventPublisher(ORDERS, broker)
        inbox = Inbox()
        publisher.add_subscriber(inbox)
        self.subscribed(broker)
        publisher.publish(Ping(1))
        self._eventually(broker, lambda: len(inbox) == 1, "delivery before close")
        self.close_broker(broker)
        self.close_broker(broker)  # twice: nothing happens
        wait_until(
            lambda: (
                not [
                    t
                    for t in threading.enumerate()
                    if t not in threads_at_start and t.is_alive()
                ]
            ),
            self.delivery_timeout,
            "the broker's threads to end after close()",
        )
        if self.refuses_after_close:
            with pytest.raises(RuntimeError):
                publisher.publish(Ping(2))
            with pytest.raises(RuntimeError):
                broker.subscribe(publisher.channel, Inbox())

    def test_events_reach_another_broker_on_the_same_transport(
        self, broker: Any, request: pytest.FixtureRequest
    ) -> None:
        if not self.cross_process:
            pytest.skip("cross_process = False")
        peer = request.getfixturevalue("peer_broker")
        inbox = Inbox()
        EventPublisher(ORDERS, peer).add_subscriber(inbox)
        self.subscribed(peer)
        EventPublisher(ORDERS, broker).publish(Ping(1, "across"))
        self._eventually(peer, lambda: len(inbox) == 1, "delivery on the peer")
        event, tag, caller = inbox.items[0]
        assert (event, tag) == (Ping(1, "across"), ORDERS.event_tag)
        assert caller is peer, "events from elsewhere come from the receiving broker"

    def test_a_failed_event_is_delivered_again(self, broker: Any) -> None:
        if not self.durable:
            pytest.skip("durable = False")
        publisher = EventPublisher(ORDERS, broker)
        flaky = Raising(failures=1)
        publisher.add_subscriber(flaky)
        self.subscribed(broker)
        publisher.publish(Ping(1))
        self._eventually(broker, lambda: flaky.handled == [Ping(1)], "redelivery")
        assert flaky.calls == 2
        assert self.dead_letters(broker, publisher.channel) == []

    def test_an_event_that_always_fails_becomes_a_dead_letter(
        self, broker: Any
    ) -> None:
        if not self.durable:
            pytest.skip("durable = False")
        publisher = EventPublisher(ORDERS, broker)
        failing = Raising()
        publisher.add_subscriber(failing)
        self.subscribed(broker)
        publisher.publish(Ping(1))
        self._eventually(
            broker,
            lambda: len(self.dead_letters(broker, publisher.channel)) == 1,
            "a dead letter",
        )
        assert failing.calls == self.max_deliveries
