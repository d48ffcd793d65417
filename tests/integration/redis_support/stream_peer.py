"""A consumer or publisher process for the RedisStreamBroker tests and benchmark.

    python stream_peer.py consume URL PREFIX GROUP OUT [--delay S] [--claim-idle S]
                                  [--prefetch N] [--fail-every N] [--consumer NAME]
                                  [--serve DRAIN]
    python stream_peer.py publish URL PREFIX COUNT [--first N]

``consume`` subscribes to the ``SHIPMENTS`` stream of ``GROUP``, prints
``READY``, and appends one line per handled event to ``OUT`` (``<order_id>``,
written with one ``write()`` on an ``O_APPEND`` file *before* the handler
returns, so a process killed with SIGKILL leaves exactly what it handled). On
SIGTERM it closes the broker (with ``--serve``: ``broker.serve(drain=DRAIN)``
returns) and prints its stats as one JSON line.
``publish`` sends ``COUNT`` events numbered from ``--first``, in batches of 100.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from typing import Any

from redis_peer_events import ShipmentEvent, make_event

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

TAG = "shipments"


def consume(args: argparse.Namespace) -> int:
    broker = RedisStreamBroker.from_url(
        args.url,
        channel_prefix=args.prefix,
        group=args.group,
        consumer=args.consumer,
        claim_idle=args.claim_idle,
        prefetch=args.prefetch,
        start="all",
    )
    broker.register_event_class(ShipmentEvent)
    out = os.open(args.out, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    stop = threading.Event()
    if args.serve is None:
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
    handled = 0

    def handle(event: Any, tag: Any, caller: Any) -> None:
        nonlocal handled
        handled += 1
        if args.fail_every and handled % args.fail_every == 0:
            raise RuntimeError(f"failing on purpose on order {event.order_id}")
        os.write(out, f"{event.order_id}\n".encode())
        if args.delay:
            time.sleep(args.delay)

    subscriber = FunctionalEventSubscriber(handle)
    EventPublisher(EventPublication(TAG, ShipmentEvent), broker=broker).add_subscriber(
        subscriber
    )
    print("READY", flush=True)
    if args.serve is not None:
        broker.serve(drain=args.serve)  # until SIGTERM, then drain
    else:
        stop.wait()
        broker.close()
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
                "handed_back": stats.handed_back,
            }
        ),
        flush=True,
    )
    os.close(out)
    return 0


def publish(args: argparse.Namespace) -> int:
    with RedisStreamBroker.from_url(
        args.url, channel_prefix=args.prefix, maxlen=None
    ) as broker:
        publisher = EventPublisher(EventPublication(TAG, ShipmentEvent), broker=broker)
        for start in range(args.first, args.first + args.count, 100):
            with broker.batch():
                for index in range(start, min(start + 100, args.first + args.count)):
                    publisher.publish(make_event(index))
    return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    modes = parser.add_subparsers(dest="mode", required=True)
    consumer = modes.add_parser("consume")
    for name in ("url", "prefix", "group", "out"):
        consumer.add_argument(name)
    consumer.add_argument("--delay", type=float, default=0.0)
    consumer.add_argument("--claim-idle", type=float, default=30.0)
    consumer.add_argument("--prefetch", type=int, default=100)
    consumer.add_argument("--fail-every", type=int, default=0)
    consumer.add_argument("--consumer", default=None)
    consumer.add_argument("--serve", type=float, default=None, metavar="DRAIN")
    publisher = modes.add_parser("publish")
    for name in ("url", "prefix"):
        publisher.add_argument(name)
    publisher.add_argument("count", type=int)
    publisher.add_argument("--first", type=int, default=0)
    args = parser.parse_args(argv)
    return consume(args) if args.mode == "consume" else publish(args)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
