"""By hand: what sharded and classic Pub/Sub cost a local 3-master cluster.

    python tests/redis/_cluster_bench.py [EVENTS] [CHANNELS]

Starts a cluster (see ``_cluster.py``), then for each mode publishes EVENTS
events (default 20,000) spread over CHANNELS channels (default 30) from one
broker to another, and prints the events per second end to end and the CPU
seconds each node spent (``INFO cpu``) meanwhile. Not a test: numbers depend on
the machine. Classic Pub/Sub on a cluster sends one PUBLISH per round trip
(cluster pipelines refuse PUBLISH), so its events per second also pay for
that; the node CPU shows the broadcast.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _cluster import LocalCluster, local_cluster
from _redis_support import Inbox, OrderPlaced, publisher_for, unique_prefix, wait_until

from eventspype.broker.redis import RedisBroker


def node_cpu(cluster: LocalCluster) -> dict[int, float]:
    seconds = {}
    for node in cluster.nodes:
        info = node.info("cpu")
        seconds[node.port] = float(info["used_cpu_sys"]) + float(info["used_cpu_user"])
    return seconds


def run(cluster: LocalCluster, sharded: bool, events: int, channels: int) -> None:
    prefix = unique_prefix()
    receiving, sending = cluster.client(), cluster.client()
    try:
        with (
            RedisBroker(receiving, channel_prefix=prefix, sharded_pubsub=sharded) as rx,
            RedisBroker(sending, channel_prefix=prefix, sharded_pubsub=sharded) as tx,
        ):
            rx.register_event_class(OrderPlaced)
            inbox = Inbox()
            tags = [f"BENCH{index}" for index in range(channels)]
            for tag in tags:
                publisher_for(rx, tag, OrderPlaced).add_subscriber(inbox.subscriber)
            publishers = [publisher_for(tx, tag, OrderPlaced) for tag in tags]
            before, start = node_cpu(cluster), time.perf_counter()
            for first in range(0, events, 100):
                with tx.batch():
                    for index in range(first, min(first + 100, events)):
                        publishers[index % channels].publish(OrderPlaced(index, 1.0))
            wait_until(lambda: len(inbox.items) >= events, timeout=300)
            elapsed = time.perf_counter() - start
            after = node_cpu(cluster)
    finally:
        receiving.close()
        sending.close()
    spent = [after[port] - before[port] for port in sorted(after)]
    print(
        f"{'sharded' if sharded else 'classic':8} {events / elapsed:9.0f} events/s"
        f"   node CPU s: {' '.join(f'{s:5.2f}' for s in spent)}"
        f"   total {sum(spent):5.2f}"
    )


def main() -> None:
    events = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    channels = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with local_cluster(masters=3) as cluster:
        for sharded in (True, False):
            run(cluster, sharded, events, channels)


if __name__ == "__main__":
    main()
