"""A synchronous and an asyncio process exchange events on the shared Redis.

Both arrangements, both directions: this process runs ``AsyncRedisBroker`` and
the peer ``RedisBroker`` (``redis_peer.py``, also under eventspype 1.4.2), then
the peer runs ``AsyncRedisBroker`` (this file, run as a script) and this process
``RedisBroker``. As a script::

    python test_async_redis_cross_process.py publish|subscribe URL PREFIX TAG COUNT

behaves like ``redis_peer.py`` (``READY``, then one JSON line per event) with
an ``AsyncRedisBroker``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if __name__ == "__main__":  # a peer process: find the shared helpers
    sys.path.insert(0, str(HERE / "redis_support"))

import pytest  # noqa: E402
import redis  # noqa: E402
from redis_helpers import (  # noqa: E402
    finish,
    numsub,
    peer,
    peer_lines,
    reap,
    receive_here,
    recorder,
    shared_redis_url,
    unique_prefix,
    wait_ready,
    wait_until,
)
from redis_peer_events import ShipmentEvent, make_event  # noqa: E402

from eventspype import (  # noqa: E402
    EventPublication,
    EventPublisher,
    FunctionalEventSubscriber,
)
from eventspype.broker.redis import AsyncRedisBroker  # noqa: E402

if __name__ != "__main__":
    # eventspype 1.4.2 in a cached virtualenv (skips without Python 3.13/PyPI).
    from test_redis_wire_compat import reference_python  # noqa: F401

pytestmark = pytest.mark.slow

COUNT = 50


def _tag(text: str) -> str | int:
    return int(text) if text.lstrip("-").isdigit() else text


def _line(event: Any, event_tag: Any, caller: Any) -> dict[str, Any]:
    return {
        "event": dataclasses.asdict(event),
        "tag": event_tag,
        "caller": type(caller).__name__,
    }


# -- the asyncio peer ---------------------------------------------------------------


async def async_peer(mode: str, url: str, prefix: str, tag: str, count: int) -> int:
    """Publish ``count`` events, or subscribe and print what comes (exit status)."""
    async with AsyncRedisBroker.from_url(url, channel_prefix=prefix) as broker:
        broker.register_event_class(ShipmentEvent)
        publisher = EventPublisher(
            EventPublication(_tag(tag), ShipmentEvent), broker=broker
        )
        if mode == "publish":
            # Half through publish() (queued), half awaited.
            for index in range(count):
                if index % 2:
                    await broker.publish_async(
                        publisher.channel, make_event(index), _tag(tag.upper()), None
                    )
                else:
                    publisher.publish(make_event(index))
            return 0
        lines: list[str] = []
        done = asyncio.Event()

        def record(event: Any, event_tag: Any, caller: Any) -> None:
            lines.append(json.dumps(_line(event, event_tag, caller)))
            if len(lines) >= count:
                done.set()

        subscriber = FunctionalEventSubscriber(record)
        publisher.add_subscriber(subscriber)
        await broker.wait_until_subscribed(30)
        print("READY", flush=True)
        try:
            await asyncio.wait_for(done.wait(), 30)
        except asyncio.TimeoutError:
            return 3
        for line in lines:
            print(line, flush=True)
        return 0


def async_peer_process(
    mode: str, url: str, prefix: str, tag: str | int, count: int
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(Path(__file__)), mode, url, prefix, str(tag), str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE / "redis_support",
    )


# -- the tests ---------------------------------------------------------------------


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()


def receive_in_async(
    redis_url: str, tag: str | int, python: str = sys.executable
) -> list[tuple[Any, Any, Any]]:
    """An AsyncRedisBroker here receives what redis_peer.py (``python``) sends."""
    prefix = unique_prefix()

    async def scenario() -> list[tuple[Any, Any, Any]]:
        done = asyncio.Event()
        received, record = recorder(COUNT, done.set)
        async with AsyncRedisBroker.from_url(redis_url, channel_prefix=prefix) as b:
            b.register_event_class(ShipmentEvent)
            publisher = EventPublisher(EventPublication(tag, ShipmentEvent), broker=b)
            subscriber = FunctionalEventSubscriber(record)
            publisher.add_subscriber(subscriber)
            await b.wait_until_subscribed()
            process = peer("publish", redis_url, prefix, str(tag), COUNT, python)
            await asyncio.to_thread(finish, process)
            await asyncio.wait_for(done.wait(), 30)
            assert all(caller is b for _, _, caller in received)
        return received

    return asyncio.run(scenario())


def send_from_async(
    redis_url: str, tag: str | int, expected_tag: str | int, python: str
) -> list[dict[str, Any]]:
    """An AsyncRedisBroker here publishes to redis_peer.py (``python``)."""
    prefix = unique_prefix()
    process = peer("subscribe", redis_url, prefix, str(tag), COUNT, python)
    try:
        wait_ready(process)
        admin = redis.Redis.from_url(redis_url)
        channel = f"{prefix}{expected_tag}"
        wait_until(lambda: numsub(admin, channel) >= 1)
        admin.close()

        async def scenario() -> None:
            async with AsyncRedisBroker.from_url(
                redis_url, channel_prefix=prefix
            ) as broker:
                publisher = EventPublisher(
                    EventPublication(tag, ShipmentEvent), broker=broker
                )
                for index in range(COUNT):
                    if index % 2:
                        await broker.publish_async(
                            publisher.channel, make_event(index), expected_tag, None
                        )
                    else:
                        publisher.publish(make_event(index))

        asyncio.run(scenario())
        out = finish(process)
    finally:
        reap(process)
    return [json.loads(line) for line in out.splitlines() if line.strip()]


@pytest.mark.parametrize(("tag", "expected_tag"), [("shipped", "SHIPPED"), (7, 7)])
def test_a_sync_peer_publishes_an_async_process_receives(
    redis_url: str, tag: str | int, expected_tag: str | int
) -> None:
    received = receive_in_async(redis_url, tag)
    assert [event for event, _, _ in received] == [make_event(i) for i in range(COUNT)]
    assert {event_tag for _, event_tag, _ in received} == {expected_tag}


@pytest.mark.parametrize(("tag", "expected_tag"), [("shipped", "SHIPPED"), (7, 7)])
def test_an_async_process_publishes_a_sync_peer_receives(
    redis_url: str, tag: str | int, expected_tag: str | int
) -> None:
    lines = send_from_async(redis_url, tag, expected_tag, sys.executable)
    assert [line["event"] for line in lines] == peer_lines(COUNT)
    assert {line["tag"] for line in lines} == {expected_tag}
    assert {line["caller"] for line in lines} == {"RedisBroker"}


def test_eventspype_1_4_2_publishes_an_async_process_receives(
    redis_url: str, reference_python: str
) -> None:
    received = receive_in_async(redis_url, "shipped", reference_python)
    assert [event for event, _, _ in received] == [make_event(i) for i in range(COUNT)]
    assert {event_tag for _, event_tag, _ in received} == {"SHIPPED"}


def test_an_async_process_publishes_eventspype_1_4_2_receives(
    redis_url: str, reference_python: str
) -> None:
    lines = send_from_async(redis_url, 11, 11, reference_python)
    assert [line["event"] for line in lines] == peer_lines(COUNT)
    assert {line["tag"] for line in lines} == {11}


def test_an_async_peer_publishes_a_sync_process_receives(
    redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis_helpers

    # receive_here() receives with a RedisBroker while redis_peer.py publishes:
    # let the asyncio peer publish instead.
    monkeypatch.setattr(
        redis_helpers,
        "peer",
        lambda mode, url, prefix, tag, count, python=None: async_peer_process(
            mode, url, prefix, tag, count
        ),
    )
    received = receive_here(redis_url, unique_prefix(), "shipped", COUNT)
    assert [event for event, _, _ in received] == [make_event(i) for i in range(COUNT)]
    assert {tag for _, tag, _ in received} == {"SHIPPED"}


def test_a_sync_process_publishes_an_async_peer_receives(redis_url: str) -> None:
    from eventspype.broker.redis import RedisBroker

    prefix = unique_prefix()
    process = async_peer_process("subscribe", redis_url, prefix, "shipped", COUNT)
    try:
        wait_ready(process)
        with RedisBroker.from_url(redis_url, channel_prefix=prefix) as broker:
            publisher = EventPublisher(
                EventPublication("shipped", ShipmentEvent), broker=broker
            )
            for index in range(COUNT):
                publisher.publish(make_event(index))
        out = finish(process)
    finally:
        reap(process)
    lines = [json.loads(line) for line in out.splitlines() if line.strip()]
    assert [line["event"] for line in lines] == peer_lines(COUNT)
    assert {line["tag"] for line in lines} == {"SHIPPED"}
    assert {line["caller"] for line in lines} == {"AsyncRedisBroker"}


if __name__ == "__main__":
    mode, url, prefix, tag, count = sys.argv[1:6]
    sys.exit(asyncio.run(async_peer(mode, url, prefix, tag, int(count))))
