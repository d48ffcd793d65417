"""RedisBroker: publish, receive in asyncio, batch, and read the counters.

    python examples/redis_broker.py [--redis-url redis://127.0.0.1:6379/0]

Needs eventspype-redis and a Redis server (``--redis-url``, else the
``EVENTSPYPE_REDIS_URL`` variable, else redis://127.0.0.1:6379/0). Two brokers
stand for two processes: ``orders`` publishes, ``shipping`` receives. Events
reach ``shipping`` on its listener thread; a TrackingEventSubscriber hands them
to an asyncio coroutine safely, and a QueueEventSubscriber feeds an
asyncio.Queue the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import uuid
from dataclasses import dataclass

import redis

from eventspype import (
    EventPublication,
    EventPublisher,
    QueueEventSubscriber,
    TrackingEventSubscriber,
)
from eventspype.broker.redis import RedisBroker


@dataclass(frozen=True)
class OrderPlacedEvent:
    order_id: int
    amount: float


ORDER_PLACED = EventPublication("order_placed", OrderPlacedEvent)


async def main(url: str) -> None:
    # A prefix of our own: other programs on this server never hear us.
    prefix = f"example-{uuid.uuid4().hex[:8]}:"

    with (
        RedisBroker.from_url(url, channel_prefix=prefix) as shipping,
        RedisBroker.from_url(url, channel_prefix=prefix) as orders,
    ):
        # Only registered classes are rebuilt from messages.
        shipping.register_event_class(OrderPlacedEvent)
        tracker = TrackingEventSubscriber()
        feed = QueueEventSubscriber()
        incoming = EventPublisher(ORDER_PLACED, broker=shipping)
        incoming.add_subscriber(tracker)
        incoming.add_subscriber(feed)
        queue = feed.subscribe_consumer()  # filled from the listener thread

        publisher = EventPublisher(ORDER_PLACED, broker=orders)

        # wait_for() only sees events that arrive after it starts waiting.
        waiting = asyncio.create_task(tracker.wait_for(OrderPlacedEvent, 10))
        await asyncio.sleep(0)
        publisher.publish(OrderPlacedEvent(order_id=1, amount=49.99))
        print(f"received {await waiting}")
        await asyncio.wait_for(queue.get(), 10)  # the same event, as a dict

        # Many events, one round trip.
        with orders.batch():
            for order_id in (2, 3, 4):
                publisher.publish(OrderPlacedEvent(order_id=order_id, amount=10.0))
        batch = [await asyncio.wait_for(queue.get(), 10) for _ in range(3)]
        print(f"received a batch as dicts: {[item['data'] for item in batch]}")

        sent, got = orders.stats(), shipping.stats()
        counts = f"published {sent.published}, delivered {got.delivered}"
        print(f"stats: {counts}, dropped {got.dropped_total}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        default=os.environ.get("EVENTSPYPE_REDIS_URL", "redis://127.0.0.1:6379/0"),
    )
    try:
        asyncio.run(main(parser.parse_args().redis_url))
    except redis.ConnectionError as error:
        sys.exit(f"error: cannot reach Redis: {error}")
