"""A publisher and its subscribers exchanging typed events.

    python examples/demo.py            # in-process, then Redis if one answers
    python examples/demo.py --redis-url redis://127.0.0.1:6379/0

Part 1 needs nothing but ``eventspype-core``: events are dataclasses, delivered
synchronously in this process, first directly and then through a LocalBroker.

Part 2 runs when ``eventspype-redis`` is installed and a Redis server is known
(``--redis-url``, the ``EVENTSPYPE_REDIS_URL`` variable, or one answering on
redis://127.0.0.1:6379/0). This script starts a second copy of itself as a
subscriber process; orders go to it through Redis and it answers each with a
confirmation, which comes back the same way. Both sides print what they get.

Exit status: 0 when every event arrived, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import queue
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

try:
    from eventspype import (
        EventPublication,
        EventPublisher,
        FunctionalEventSubscriber,
        LocalBroker,
        TrackingEventSubscriber,
    )
except ImportError:  # pragma: no cover - only without an install
    sys.exit(
        "eventspype is not installed: run `nox -s demo`, or "
        "`pip install -e packages/eventspype-core` first"
    )

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
# Generous: a cold interpreter start plus a Redis round trip, on a slow CI box.
TIMEOUT_SECONDS = 20.0


@dataclass(frozen=True)
class OrderPlaced:
    order_id: int
    item: str
    amount: Decimal


@dataclass(frozen=True)
class OrderConfirmed:
    order_id: int
    confirmed_by: str


ORDER_PLACED = EventPublication("order_placed", OrderPlaced)
ORDER_CONFIRMED = EventPublication("order_confirmed", OrderConfirmed)

ORDERS = [
    OrderPlaced(1, "keyboard", Decimal("49.99")),
    OrderPlaced(2, "monitor", Decimal("189.00")),
    OrderPlaced(3, "cable", Decimal("7.50")),
]


def in_process() -> None:
    """Part 1: no server, no broker; then the same through a LocalBroker."""
    print("== 1. In-process: one publisher, two subscribers ==")
    publisher = EventPublisher(ORDER_PLACED)

    def bill(event: OrderPlaced, tag: Any, caller: Any) -> None:
        print(f"  [billing] {tag}: order {event.order_id}, {event.amount} EUR")

    # Publishers hold subscribers weakly: these names keep them alive.
    billing = FunctionalEventSubscriber(bill)
    audit = TrackingEventSubscriber()
    publisher.add_subscriber(billing)
    publisher.add_subscriber(audit)

    for order in ORDERS[:2]:
        publisher.publish(order)
    print(f"  [audit]   recorded {[e.order_id for e in audit.event_log]}")

    try:
        publisher.publish(OrderConfirmed(1, "nobody"))
    except ValueError as error:
        print(f"  [typed]   wrong class refused, as it should be: {error}")

    print("== 2. The same publisher, routed through a LocalBroker ==")
    publisher.broker = LocalBroker()  # the subscribers move to the broker
    publisher.publish(ORDERS[2])
    print(f"  [audit]   recorded {[e.order_id for e in audit.event_log]}")


def choose_redis_url(cli_url: str | None) -> tuple[str | None, str]:
    """Return (url, reason): a URL to use, or None and why Redis is skipped.

    A URL the user gave explicitly must work; the default one is only probed.
    """
    try:
        import redis

        import eventspype.broker.redis  # noqa: F401
    except ImportError:
        return None, "eventspype-redis is not installed (pip install eventspype-redis)"
    explicit = cli_url or os.environ.get("EVENTSPYPE_REDIS_URL")
    url = explicit or DEFAULT_REDIS_URL
    client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
    try:
        client.ping()
    except redis.RedisError as error:
        if explicit:
            raise SystemExit(
                f"error: Redis at {url} is not reachable: {error}"
            ) from None
        return None, f"no Redis server answered on {url}"
    finally:
        client.close()
    return url, ""


def across_processes(url: str) -> bool:
    """Part 2: this process publishes orders; a child process confirms them."""
    from eventspype.broker.redis import RedisBroker

    print(f"== 3. Across two processes, through Redis at {url} ==")
    prefix = f"eventspype-demo-{uuid.uuid4().hex[:8]}:"
    confirmations: queue.Queue[OrderConfirmed] = queue.Queue()

    def on_confirmation(event: OrderConfirmed, tag: Any, caller: Any) -> None:
        confirmations.put(event)  # runs in the broker's listener thread

    with RedisBroker.from_url(url, channel_prefix=prefix) as broker:
        broker.register_event_class(OrderConfirmed)
        confirmed = EventPublisher(ORDER_CONFIRMED, broker=broker)
        collector = FunctionalEventSubscriber(on_confirmation)
        confirmed.add_subscriber(collector)
        orders = EventPublisher(ORDER_PLACED, broker=broker)

        role = ["--role", "subscriber", "--redis-url", url, "--prefix", prefix]
        child = subprocess.Popen(
            [sys.executable, __file__, *role],
            stdout=subprocess.PIPE,
            text=True,
        )
        lines = _read_lines(child)
        ok = False
        try:
            ok = _exchange(orders, child.pid, lines, confirmations)
        finally:
            # After a failure nobody will publish what the child waits for.
            try:
                child.wait(timeout=TIMEOUT_SECONDS if ok else 0.5)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
                print("  [demo] stopped the subscriber process")
        if child.returncode != 0:
            print(f"  [demo] subscriber process exited with {child.returncode}")
            return False
        return ok


def _exchange(
    orders: EventPublisher,
    child_pid: int,
    lines: queue.Queue[str | None],
    confirmations: queue.Queue[OrderConfirmed],
) -> bool:
    me = f"pid {os.getpid()}"
    try:
        ready = lines.get(timeout=TIMEOUT_SECONDS)
        if ready != "ready":
            print(f"  [demo] subscriber process failed to start ({ready!r})")
            return False
        print(f"  [{me}] subscriber process pid {child_pid} is listening")
        # One order at a time so the two sides' lines print in a stable order.
        for order in ORDERS:
            print(f"  [{me}] publish  {order}")
            orders.publish(order)
            child_line = lines.get(timeout=TIMEOUT_SECONDS)
            if child_line is None:
                print("  [demo] the subscriber process stopped early")
                return False
            print(f"  [pid {child_pid}] {child_line}")
            answer = confirmations.get(timeout=TIMEOUT_SECONDS)
            print(f"  [{me}] received {answer}")
    except queue.Empty:
        print("  [demo] timed out waiting for the other process")
        return False
    print(f"  [demo] {len(ORDERS)} orders sent, {len(ORDERS)} confirmations back")
    return True


def _read_lines(child: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """The child's stdout lines, read by a thread; None once it closes."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        assert child.stdout is not None
        for line in child.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, name="demo-child-stdout", daemon=True).start()
    return lines


def subscriber_process(url: str, prefix: str) -> int:
    """The child side: confirm every order received, exit after all of them."""
    from eventspype.broker.redis import RedisBroker

    received = threading.Semaphore(0)
    me = f"pid {os.getpid()}"

    with RedisBroker.from_url(url, channel_prefix=prefix) as broker:
        # Only registered classes are rebuilt from messages (an allowlist).
        broker.register_event_class(OrderPlaced)
        confirmed = EventPublisher(ORDER_CONFIRMED, broker=broker)

        def on_order(event: OrderPlaced, tag: Any, caller: Any) -> None:
            print(f"received {event}", flush=True)
            confirmed.publish(OrderConfirmed(event.order_id, me))
            received.release()

        orders = EventPublisher(ORDER_PLACED, broker=broker)
        handler = FunctionalEventSubscriber(on_order)
        # subscribe() returns once Redis confirms the subscription: from now
        # on, nothing the parent publishes can be missed.
        orders.add_subscriber(handler)
        print("ready", flush=True)
        for _ in ORDERS:
            if not received.acquire(timeout=TIMEOUT_SECONDS):
                return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--redis-url",
        help="Redis server for part 2 (default: $EVENTSPYPE_REDIS_URL, "
        f"else {DEFAULT_REDIS_URL} if it answers)",
    )
    # The child process of part 2 runs this same script with these flags.
    parser.add_argument("--role", default="demo", help=argparse.SUPPRESS)
    parser.add_argument("--prefix", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.role == "subscriber":
        return subscriber_process(args.redis_url, args.prefix)

    in_process()
    url, reason = choose_redis_url(args.redis_url)
    if url is None:
        print(f"== 3. Across processes through Redis: skipped, {reason} ==")
        return 0
    return 0 if across_processes(url) else 1


if __name__ == "__main__":
    sys.exit(main())
