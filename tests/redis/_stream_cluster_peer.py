"""A consumer process of a RedisStreamBroker group on the local cluster.

    python _stream_cluster_peer.py PORTS PREFIX TAGS GROUP

subscribes to each tag's channel (through a publisher of OrderPlaced) in
consumer group GROUP, prints READY, then one JSON line per event received,
``{"tag": ..., "order_id": ...}``, until its stdin is closed; then it closes
the broker (acknowledging what it holds) and exits. PORTS and TAGS are
comma-separated; PORTS are the cluster's start-up nodes.
"""

from __future__ import annotations

import json
import sys
import threading
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _redis_support import OrderPlaced
from redis.cluster import ClusterNode, RedisCluster

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker


def main(ports: str, prefix: str, tags: str, group: str) -> int:
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", int(p)) for p in ports.split(",")],
        socket_timeout=5,
        socket_connect_timeout=2,
    )
    lock = threading.Lock()

    def record(event: Any, event_tag: Any, caller: Any) -> None:
        line = json.dumps({"tag": str(event_tag), "order_id": event.order_id})
        with lock:
            print(line, flush=True)

    subscriber = FunctionalEventSubscriber(record)
    try:
        with RedisStreamBroker(
            client, channel_prefix=prefix, group=group, start="all"
        ) as broker:
            broker.register_event_class(OrderPlaced)
            for tag in tags.split(","):
                publication = EventPublication(tag, OrderPlaced)
                EventPublisher(publication, broker=broker).add_subscriber(subscriber)
            print("READY", flush=True)
            sys.stdin.read()  # until the test closes it
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
