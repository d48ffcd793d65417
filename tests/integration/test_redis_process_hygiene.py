"""What a whole process sees: nothing on stderr, no thread left, no busy polling.

Each scenario runs in a fresh interpreter (``-X dev``: unclosed sockets and
other ResourceWarnings are printed, so they would fail the test too).
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest
from redis_helpers import shared_redis_url, unique_prefix

pytestmark = pytest.mark.slow

PRELUDE = """
import dataclasses, json, sys, threading, time
import redis
from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker

URL, PREFIX = sys.argv[1], sys.argv[2]

@dataclasses.dataclass
class Tick:
    n: int

TICK = EventPublication("tick", Tick)

def listeners():
    return [t for t in threading.enumerate() if t.name == "eventspype-redis-listener"]

def wait_until(condition, timeout=10):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
"""


def run(script: str, *, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``PRELUDE + script`` with the shared server's URL and a fresh prefix."""
    code = PRELUDE + textwrap.dedent(script)
    return subprocess.run(
        [sys.executable, "-X", "dev", "-c", code, shared_redis_url(), unique_prefix()],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_close_leaves_no_thread_and_prints_nothing() -> None:
    result = run(
        """
        for cycle in range(10):
            with RedisBroker.from_url(URL, channel_prefix=PREFIX) as broker:
                broker.register_event_class(Tick)
                got = []
                publisher = EventPublisher(TICK, broker=broker)
                subscriber = FunctionalEventSubscriber(got.append, False)
                publisher.add_subscriber(subscriber)
                publisher.publish(Tick(cycle))
                wait_until(lambda: got)
                assert len(listeners()) == 1
            assert listeners() == [], listeners()
        assert threading.active_count() == 1, threading.enumerate()
        print("ok")
        """
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_exit_without_close_prints_nothing() -> None:
    result = run(
        """
        client = redis.Redis.from_url(URL)
        broker = RedisBroker(client, channel_prefix=PREFIX)
        broker.register_event_class(Tick)
        got = []
        publisher = EventPublisher(TICK, broker=broker)
        subscriber = FunctionalEventSubscriber(got.append, with_event_info=False)
        publisher.add_subscriber(subscriber)
        publisher.publish(Tick(1))
        wait_until(lambda: got)
        print("leaving", flush=True)
        """
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "leaving\n", "")


def test_an_idle_subscriber_sleeps() -> None:
    # Counts the listener's wake-ups (its reads) and the process's CPU time
    # while nothing is published. The reference polls 100 times a second.
    result = run(
        """
        import resource
        import redis.connection

        reads = 0
        original = redis.connection.Connection.can_read
        def counting(self, *args, **kwargs):
            global reads
            reads += 1
            return original(self, *args, **kwargs)
        redis.connection.Connection.can_read = counting

        with RedisBroker.from_url(URL, channel_prefix=PREFIX) as broker:
            subscribers = [FunctionalEventSubscriber(print) for _ in range(3)]
            for n, subscriber in enumerate(subscribers):
                broker.subscribe(f"IDLE{n}", subscriber)
            time.sleep(0.5)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            before_cpu, before_reads = usage.ru_utime + usage.ru_stime, reads
            time.sleep(4)
            usage = resource.getrusage(resource.RUSAGE_SELF)
            cpu = usage.ru_utime + usage.ru_stime - before_cpu
            print(json.dumps({"cpu": cpu, "reads": reads - before_reads}))
        """
    )
    assert result.returncode == 0, result.stderr
    measured = json.loads(result.stdout)
    assert 1 <= measured["reads"] <= 8, measured  # about one a second
    assert measured["cpu"] < 0.03, measured  # under 1% of a core
