"""Another process on the local cluster, for the cross-process cluster tests.

    python _cluster_peer.py subscribe PORTS PREFIX TAGS COUNT
        subscribes to each tag's channel (through a publisher of OrderPlaced),
        prints READY once Redis confirmed every subscription, then one JSON
        line per event received, ``{"tag": ..., "order_id": ...}``, and exits
        after COUNT events per tag (exit status 1 if they do not come in 60 s).
    python _cluster_peer.py publish PORTS PREFIX TAGS COUNT
        publishes COUNT events on each tag (order_id 0..COUNT-1), then exits.

PORTS and TAGS are comma-separated; PORTS are the cluster's start-up nodes.
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
from eventspype.broker.redis import RedisBroker


def main(mode: str, ports: str, prefix: str, tags: str, count: str) -> int:
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", int(p)) for p in ports.split(",")],
        socket_timeout=5,
        socket_connect_timeout=2,
    )
    wanted = int(count)
    try:
        with RedisBroker(client, channel_prefix=prefix) as broker:
            broker.register_event_class(OrderPlaced)
            publishers = [
                EventPublisher(EventPublication(tag, OrderPlaced), broker=broker)
                for tag in tags.split(",")
            ]
            if mode == "publish":
                for order_id in range(wanted):
                    for publisher in publishers:
                        publisher.publish(OrderPlaced(order_id, 1.0))
                return 0
            return _subscribe(publishers, wanted)
    finally:
        client.close()


def _subscribe(publishers: list[EventPublisher], wanted: int) -> int:
    lock = threading.Lock()
    done = threading.Event()
    seen = [0]
    total = wanted * len(publishers)

    def record(event: Any, event_tag: Any, caller: Any) -> None:
        with lock:
            print(json.dumps({"tag": str(event_tag), "order_id": event.order_id}))
            seen[0] += 1
            if seen[0] >= total:
                done.set()

    subscriber = FunctionalEventSubscriber(record)
    for publisher in publishers:
        publisher.add_subscriber(subscriber)
    print("READY", flush=True)
    ok = done.wait(60)
    sys.stdout.flush()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
