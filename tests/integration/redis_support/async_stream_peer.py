"""A consumer process with coroutine subscribers, for the AsyncRedisStreamBroker tests.

    python async_stream_peer.py URL PREFIX GROUP OUT [--delay S] [--claim-idle S]
                                [--claim-interval S] [--prefetch N] [--fail-every N]
                                [--consumer NAME] [--concurrency N] [--drain S]

Subscribes an ``AsyncFunctionalEventSubscriber`` (``max_concurrency`` N) to
the ``SHIPMENTS`` stream of ``GROUP`` (the events ``stream_peer.py publish``
sends), prints ``READY`` once the group exists, and runs ``await
broker.aserve()``. Each handled event appends one line to ``OUT``:
``<order_id> <message id> <delivery count>``, written with one ``write()`` on
an ``O_APPEND`` file *before* the coroutine returns, so a process killed with
SIGKILL leaves exactly what it handled (plus the ones not yet acknowledged).
On SIGTERM ``aserve()`` drains and returns; the process prints its stats as one
JSON line and exits 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from typing import Any

from redis_peer_events import ShipmentEvent

from eventspype import (
    AsyncFunctionalEventSubscriber,
    EventPublication,
    EventPublisher,
    current_delivery,
)
from eventspype.broker.redis import AsyncRedisStreamBroker

TAG = "shipments"


async def consume(args: argparse.Namespace) -> int:
    options: dict[str, Any] = {}
    if args.claim_interval is not None:
        options["claim_interval"] = args.claim_interval
    broker = AsyncRedisStreamBroker.from_url(
        args.url,
        channel_prefix=args.prefix,
        group=args.group,
        consumer=args.consumer,
        claim_idle=args.claim_idle,
        prefetch=args.prefetch,
        start="all",
        **options,
    )
    broker.register_event_class(ShipmentEvent)
    out = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    calls = 0

    async def handle(event: ShipmentEvent) -> None:
        nonlocal calls
        calls += 1
        if args.fail_every and calls % args.fail_every == 0:
            raise RuntimeError(f"failing on purpose on order {event.order_id}")
        delivery = current_delivery()
        message = delivery.message_id if delivery else "-"
        count = delivery.delivery_count if delivery else 0
        os.write(out, f"{event.order_id} {message} {count}\n".encode())
        if args.delay:
            await asyncio.sleep(args.delay)

    subscriber = AsyncFunctionalEventSubscriber(
        handle, with_event_info=False, max_concurrency=args.concurrency
    )
    publication = EventPublication(TAG, ShipmentEvent)
    EventPublisher(publication, broker=broker).add_subscriber(subscriber)
    await broker.wait_until_subscribed()
    print("READY", flush=True)
    await broker.aserve(drain=args.drain)
    stats = broker.stats()
    print(
        json.dumps(
            {
                "delivered": stats.delivered,
                "acknowledged": stats.acknowledged,
                "redelivered": stats.redelivered,
                "claimed": stats.claimed,
                "dead_lettered": stats.dead_lettered,
                "reconnects": stats.reconnects,
            }
        ),
        flush=True,
    )
    os.close(out)
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    for name in ("url", "prefix", "group", "out"):
        parser.add_argument(name)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--claim-idle", type=float, default=30.0)
    parser.add_argument("--claim-interval", type=float, default=None)
    parser.add_argument("--prefetch", type=int, default=100)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--consumer", default=None)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--drain", type=float, default=10.0)
    return asyncio.run(consume(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
