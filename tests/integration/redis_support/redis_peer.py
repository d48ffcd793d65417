"""A peer process for the cross-process Redis tests.

    python redis_peer.py publish URL PREFIX TAG COUNT
    python redis_peer.py subscribe URL PREFIX TAG COUNT

Uses only the API that eventspype 1.4.2 and this implementation share, so the
same script runs under either. ``subscribe`` prints ``READY`` once subscribed,
then one JSON line per event received (event fields, tag, caller class name),
and exits after COUNT events (status 3 if they do not all come within 30 s).
"""

from __future__ import annotations

import dataclasses
import json
import sys
import threading

import redis
from redis_peer_events import ShipmentEvent, make_event

from eventspype.broker.redis import RedisBroker
from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.functional import FunctionalEventSubscriber


def _tag(text: str) -> str | int:
    return int(text) if text.lstrip("-").isdigit() else text


def main(mode: str, url: str, prefix: str, tag: str, count: int) -> int:
    client = redis.Redis.from_url(url, socket_timeout=10, socket_connect_timeout=5)
    broker = RedisBroker(client, channel_prefix=prefix)
    broker.register_event_class(ShipmentEvent)
    publisher = EventPublisher(
        EventPublication(_tag(tag), ShipmentEvent), broker=broker
    )
    status = 0
    if mode == "publish":
        for index in range(count):
            publisher.publish(make_event(index))
    else:
        lines: list[str] = []
        done = threading.Event()

        def record(event: object, event_tag: object, caller: object) -> None:
            lines.append(
                json.dumps(
                    {
                        "event": dataclasses.asdict(event),  # type: ignore[call-overload]
                        "tag": event_tag,
                        "caller": type(caller).__name__,
                    }
                )
            )
            if len(lines) >= count:
                done.set()

        subscriber = FunctionalEventSubscriber(record)
        publisher.add_subscriber(subscriber)
        print("READY", flush=True)
        if not done.wait(30):
            status = 3
        for line in lines:
            print(line, flush=True)
    broker.close()
    client.close()
    return status


if __name__ == "__main__":
    mode, url, prefix, tag, count = sys.argv[1:6]
    sys.exit(main(mode, url, prefix, tag, int(count)))
