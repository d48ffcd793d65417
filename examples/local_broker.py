"""LocalBroker: routing events through a broker without leaving the process.

    python examples/local_broker.py

Shows that a broker is a drop-in change for a publisher (the subscribers move
with it), that one broker serves many publishers, that a subscriber that
raises does not stop the others, and that a dropped subscriber stops
receiving on its own (brokers hold subscribers by weak reference).
"""

from __future__ import annotations

import gc
import logging
from dataclasses import dataclass
from typing import Any

from eventspype import (
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
    LocalBroker,
)


@dataclass
class OrderPlacedEvent:
    order_id: int
    amount: float


@dataclass
class OrderCancelledEvent:
    order_id: int
    reason: str


placed = EventPublication("order_placed", OrderPlacedEvent)
cancelled = EventPublication("order_cancelled", OrderCancelledEvent)


def show(event: Any, tag: Any, caller: Any) -> None:
    print(f"  {tag:<16} {event}")


def main() -> None:
    # The broker logs a failing subscriber with its traceback; keep it short.
    logging.basicConfig(level=logging.CRITICAL)

    print("A publisher without a broker, then with one:")
    printer = FunctionalEventSubscriber(show)
    publisher = EventPublisher(placed)
    publisher.add_subscriber(printer)
    publisher.publish(OrderPlacedEvent(order_id=1, amount=49.99))

    broker = LocalBroker()
    publisher.broker = broker  # printer is now subscribed on the broker
    publisher.publish(OrderPlacedEvent(order_id=2, amount=15.00))
    print(f"  channels on the broker: {broker.channels()}")

    print("One broker, several publishers:")
    cancellations = EventPublisher(cancelled, broker=broker)
    cancellations.add_subscriber(printer)
    cancellations.publish(OrderCancelledEvent(order_id=2, reason="duplicate"))
    print(f"  channels on the broker: {sorted(broker.channels())}")

    print("A subscriber that raises is isolated:")

    def broken(event: Any) -> None:
        raise RuntimeError("bug in a subscriber")

    failing = FunctionalEventSubscriber(broken, with_event_info=False)
    publisher.add_subscriber(failing)
    publisher.publish(OrderPlacedEvent(order_id=3, amount=5.00))
    print(f"  failed subscriber calls so far: {broker.subscriber_errors}")

    print("A dropped subscriber stops receiving:")
    del failing
    gc.collect()  # CPython frees it at `del` already; other interpreters later
    live = broker.subscriber_count(publisher.channel)
    print(f"  live subscribers on {publisher.channel}: {live}")
    publisher.publish(OrderPlacedEvent(order_id=4, amount=12.50))

    print("Back to direct dispatch:")
    publisher.broker = None
    publisher.publish(OrderPlacedEvent(order_id=5, amount=3.20))
    live = broker.subscriber_count(publisher.channel)
    print(f"  live subscribers on {publisher.channel} of the old broker: {live}")


if __name__ == "__main__":
    main()
