"""A custom broker: deliver events on a background thread.

    python examples/custom_broker.py

``publish()`` only puts the event in a queue and returns; one worker thread
takes events off the queue and hands them to a LocalBroker, which does the
fan-out (weak references, error isolation). The publisher does not wait for
slow subscribers, and events are still delivered in publish order.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass
from typing import Any

from eventspype import (
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
    LocalBroker,
    MessageBroker,
)
from eventspype.sub.subscriber import EventSubscriber

_STOP = object()


class ThreadedBroker(MessageBroker):
    """Delivers events on one worker thread, in the order they were published."""

    def __init__(self) -> None:
        self._fan_out = LocalBroker()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._worker = threading.Thread(
            target=self._run, name="threaded-broker", daemon=True
        )
        self._worker.start()

    def publish(
        self, channel: str, event: Any, event_tag: int | str, caller: Any
    ) -> None:
        self._queue.put((channel, event, event_tag, caller))

    def subscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        self._fan_out.subscribe(channel, subscriber)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        self._fan_out.unsubscribe(channel, subscriber)

    def drain(self) -> None:
        """Wait until every event published so far has been delivered."""
        self._queue.join()

    def close(self) -> None:
        """Deliver what is queued, then stop the worker thread."""
        self._queue.put(_STOP)
        self._worker.join()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                # LocalBroker isolates (and logs) a subscriber that raises,
                # so one bad subscriber cannot kill this thread.
                self._fan_out.publish(*item)
            finally:
                self._queue.task_done()


@dataclass
class OrderPlacedEvent:
    order_id: int
    amount: float


_print_lock = threading.Lock()


def say(text: str) -> None:
    """print() from two threads at once may mix lines; this may not."""
    with _print_lock:
        print(text, flush=True)


def main() -> None:
    broker = ThreadedBroker()
    publisher = EventPublisher(
        EventPublication("order_placed", OrderPlacedEvent), broker=broker
    )

    def slow_handler(event: OrderPlacedEvent, tag: Any, caller: Any) -> None:
        time.sleep(0.05)  # pretend to write to a database
        thread = threading.current_thread().name
        say(f"  handled order {event.order_id} on {thread!r}")

    handler = FunctionalEventSubscriber(slow_handler)
    publisher.add_subscriber(handler)

    for order_id in (1, 2, 3):
        publisher.publish(OrderPlacedEvent(order_id=order_id, amount=10.0))
        say(f"published order {order_id} from {threading.current_thread().name!r}")

    broker.drain()
    broker.close()
    say("all orders handled, worker stopped")


if __name__ == "__main__":
    main()
