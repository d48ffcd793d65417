"""ns per publish for 1, 10 and 100 subscribers, against a bare loop.

The bare loop is the limit: a plain function that calls the very same bound
``subscriber.call`` methods the publisher ends up calling, with no type check,
no weak references, no error isolation. Ratios are ``publisher / bare`` from
the same run.

    python benchmarks/bench_core.py [--busy] [--json PATH]

On a machine other processes keep busy, each of the 7 long timings is
preempted and the ratios swing (0.9x to 2.8x seen at a load of 7 on 2 cores);
``--busy`` takes the best of 300 short timings instead, which some escape.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from _timing import best_ns, write_results

from eventspype import EventPublication, EventPublisher, EventSubscriber, LocalBroker


@dataclass
class OrderPlaced:
    order_id: int
    amount: float


class CountingSubscriber(EventSubscriber):
    """A subscriber doing the least a real one does: touch its own state."""

    def __init__(self) -> None:
        self.received = 0

    def call(self, arg: Any, current_event_tag: Any, current_event_caller: Any) -> None:
        self.received += 1


def measure(n_subscribers: int, busy: bool = False) -> dict[str, Any]:
    publication = EventPublication("order_placed", OrderPlaced)
    direct = EventPublisher(publication)
    brokered = EventPublisher(publication, broker=LocalBroker())
    subscribers = [CountingSubscriber() for _ in range(n_subscribers)]
    for subscriber in subscribers:
        direct.add_subscriber(subscriber)
        brokered.add_subscriber(subscriber)
    calls = tuple(s.call for s in subscribers)
    tag = publication.event_tag
    event = OrderPlaced(1, 49.99)

    def bare(event: OrderPlaced) -> None:
        for call in calls:
            call(event, tag, direct)

    number = max(2_000, 400_000 // n_subscribers)
    repeat = 7
    if busy:
        number, repeat = max(200, number // 200), 300
    bare_ns = best_ns(lambda: bare(event), number, repeat)
    direct_ns = best_ns(lambda: direct.publish(event), number, repeat)
    local_ns = best_ns(lambda: brokered.publish(event), number, repeat)
    expected = 0
    for subscriber in subscribers:  # every path really delivered
        expected = expected or subscriber.received
        assert subscriber.received == expected > 0
    return {
        "subscribers": n_subscribers,
        "bare_ns": round(bare_ns, 1),
        "publisher_ns": round(direct_ns, 1),
        "local_broker_ns": round(local_ns, 1),
        "publisher_ratio": round(direct_ns / bare_ns, 3),
        "local_broker_ratio": round(local_ns / bare_ns, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="where to write results")
    parser.add_argument(
        "--busy", action="store_true", help="best of many short timings"
    )
    args = parser.parse_args()
    rows = [measure(n, args.busy) for n in (1, 10, 100)]
    print(f"{'subs':>5} {'bare ns':>9} {'publisher':>16} {'LocalBroker':>16}")
    for r in rows:
        print(
            f"{r['subscribers']:>5} {r['bare_ns']:>9.0f} "
            f"{r['publisher_ns']:>8.0f} {r['publisher_ratio']:>5.2f}x "
            f"{r['local_broker_ns']:>8.0f} {r['local_broker_ratio']:>5.2f}x"
        )
    print("results:", write_results("core", rows, args.json))


if __name__ == "__main__":
    main()
