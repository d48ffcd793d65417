"""RedisStreamBroker under faults, each test on a private redis-server.

A consumer process killed with SIGKILL mid-stream, Redis killed and restarted
with and without an append-only file: no event is lost to the group, and the
duplicates stay within what was in flight.
"""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_helpers import PrivateRedis, private_redis, wait_until
from stream_helpers import handled, publish, start_consumer, stop

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisStreamBroker

pytestmark = pytest.mark.slow

PREFETCH = 100


@dataclasses.dataclass
class Tick:
    n: int


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_a_consumer_killed_mid_stream_loses_nothing_to_the_group(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    total = 10_000
    with private_redis() as server:
        logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
        options = ["--claim-idle", "1.0", "--prefetch", str(PREFETCH)]
        for out in logs:
            # A little work per event, so that the kill lands mid-stream.
            processes.append(
                start_consumer(
                    server.url, "kill:", "g", out, *options, "--delay", "0.0002"
                )
            )
        victim, survivor = processes
        publish(server.url, "kill:", total)

        wait_until(lambda: len(handled(logs[0])) >= 1000, timeout=60)
        victim.send_signal(signal.SIGKILL)
        victim.communicate(timeout=30)

        client = server.client()

        def pending() -> int:
            return int(client.xpending("kill:{SHIPMENTS}", "g")["pending"])

        def all_handled_and_acknowledged() -> bool:
            # Both: the victim may have handled (logged) every entry it held
            # without acknowledging them; those stay pending under its name
            # until the survivor claims them, so a complete log alone would
            # stop the survivor before it took them over (seen under load).
            seen = set(handled(logs[0])) | set(handled(logs[1]))
            return len(seen) >= total and pending() == 0

        try:
            wait_until(all_handled_and_acknowledged, timeout=120)
        finally:
            client.close()
        stats = stop(survivor)

    victim_ids, survivor_ids = handled(logs[0]), handled(logs[1])
    assert set(victim_ids) | set(survivor_ids) == set(range(total))
    duplicates = len(victim_ids) + len(survivor_ids) - total
    print(f"duplicates after SIGKILL: {duplicates} (stats: {stats})")
    assert len(victim_ids) < total  # the kill did land mid-stream
    assert stats["claimed"] >= 1
    # Only what the victim had handled and not yet acknowledged comes twice,
    # and each of those is counted as a redelivery by the survivor.
    assert duplicates <= PREFETCH
    assert duplicates <= stats["redelivered"]


class Collector:
    """An in-process consumer of ``TICK`` that records every ``n``."""

    def __init__(self, url: str, delay: float = 0.0) -> None:
        self.received: list[int] = []
        self._delay = delay
        self._lock = threading.Lock()
        self.broker = RedisStreamBroker.from_url(
            url,
            channel_prefix="faults:",
            group="g",
            claim_idle=0.5,
            reconnect_delay=(0.05, 0.5),
        )
        self.broker.register_event_class(Tick)
        self.subscriber = FunctionalEventSubscriber(self._record)
        self.publisher = EventPublisher(EventPublication("tick", Tick), self.broker)
        self.publisher.add_subscriber(self.subscriber)

    def _record(self, event: Tick, tag: Any, caller: Any) -> None:
        with self._lock:
            self.received.append(event.n)
        time.sleep(self._delay)

    def seen(self) -> set[int]:
        with self._lock:
            return set(self.received)


def publish_through(server: PrivateRedis, numbers: range, progress: list[int]) -> None:
    """Publish each ``Tick(n)``, retrying while Redis is away (at least once)."""
    broker = RedisStreamBroker.from_url(server.url, channel_prefix="faults:")
    publisher = EventPublisher(EventPublication("tick", Tick), broker)
    try:
        for n in numbers:
            deadline = time.monotonic() + 60
            while True:
                try:
                    publisher.publish(Tick(n))
                    break
                except (redis.ConnectionError, redis.TimeoutError):
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
            progress.append(n)
    finally:
        broker.close()


def test_redis_restarted_with_aof_mid_stream_loses_nothing(tmp_path: Path) -> None:
    total = 3000
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    with private_redis(*aof) as server:
        # Slower than the publisher: a backlog is waiting when Redis dies.
        collector = Collector(server.url, delay=0.001)
        try:
            progress: list[int] = []
            publisher = threading.Thread(
                target=publish_through, args=(server, range(total), progress)
            )
            publisher.start()
            wait_until(lambda: len(progress) >= total // 3, timeout=60)
            backlog = len(progress) - len(collector.seen())
            server.kill()
            server.start()
            publisher.join(120)
            assert not publisher.is_alive()

            wait_until(lambda: len(collector.seen()) >= total, timeout=120)
            assert collector.seen() == set(range(total))
            assert collector.broker.stats().reconnects >= 1
            print(f"backlog when Redis was killed: about {backlog} events")
        finally:
            collector.broker.close()


def test_redis_restarted_without_persistence_recreates_the_group(
    tmp_path: Path,
) -> None:
    # Everything Redis held is gone (NOGROUP): the group is made again, from
    # the start of the new stream, so events published after the restart come.
    with private_redis() as server:
        collector = Collector(server.url)
        try:
            publish_through(server, range(10), [])
            wait_until(lambda: len(collector.seen()) >= 10, timeout=30)
            server.kill()
            server.start()
            publish_through(server, range(10, 20), [])

            wait_until(lambda: collector.seen() >= set(range(10, 20)), timeout=60)
        finally:
            collector.broker.close()


def test_acknowledgements_lost_in_an_outage_are_sent_when_redis_is_back(
    tmp_path: Path,
) -> None:
    # The consumer reads all 20 entries in one batch; the last handler kills
    # Redis before any acknowledgement of the batch could go out. With AOF
    # the entries stay pending with this consumer; once Redis is back the
    # failed acknowledgements are sent (it still owns them: claim_idle is
    # far away), so no entry is handled again. Without the resend, the
    # consumer would resume its own pending entries and handle all 20 twice.
    total = 20
    aof = ["--appendonly", "yes", "--appendfsync", "always", "--dir", str(tmp_path)]
    with private_redis(*aof) as server:
        publisher = RedisStreamBroker.from_url(server.url, channel_prefix="acks:")
        ticks = EventPublisher(EventPublication("tick", Tick), publisher)
        for n in range(total):
            ticks.publish(Tick(n))
        publisher.close()
        handled: list[int] = []
        acknowledged_at_kill: list[int] = []
        killed = threading.Event()

        def handle(event: Tick, tag: Any, caller: Any) -> None:
            handled.append(event.n)
            if event.n == total - 1 and not killed.is_set():
                # On the reader's thread: nothing of the batch can be
                # acknowledged behind our back while we look.
                acknowledged_at_kill.append(consumer.stats().acknowledged)
                server.kill()
                killed.set()

        consumer = RedisStreamBroker.from_url(
            server.url,
            channel_prefix="acks:",
            group="g",
            consumer="one",
            start="all",
            prefetch=50,
            claim_idle=300.0,
            reconnect_delay=(0.05, 0.2),
        )
        consumer.register_event_class(Tick)
        subscriber = FunctionalEventSubscriber(handle)
        EventPublisher(EventPublication("tick", Tick), consumer).add_subscriber(
            subscriber
        )
        try:
            assert killed.wait(60)
            server.start()
            with server.client() as admin:
                key = consumer.stream_key("TICK")
                # Not XPENDING == total here: the consumer reconnects and
                # resends its acknowledgements as soon as Redis is up, which
                # may be before this thread asks (it was, under load).
                assert admin.xlen(key) == total  # kept by AOF
                wait_until(lambda: admin.xpending(key, "g")["pending"] == 0, 60)
            assert acknowledged_at_kill == [0], "acknowledged before the outage"
            assert sorted(handled) == list(range(total)), "handled twice"
            # Redis applies the XACK before the reader thread reads its reply
            # and counts it: wait for the count (it was 0 here once, under load).
            wait_until(lambda: consumer.stats().acknowledged == total, 30)
            assert consumer.stats().reconnects >= 1
        finally:
            consumer.close()
