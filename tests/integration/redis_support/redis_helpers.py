"""Helpers for the Redis integration tests: servers, peers, fixtures.

Test modules put this directory on ``sys.path`` and import from here (the
module names are unique: every tier shares one pytest run in ``tests_all``).

- ``shared_redis_url()``: the shared server (``EVENTSPYPE_TEST_REDIS_URL``,
  default redis://127.0.0.1:6379/0). Tests never flush or reconfigure it and
  use a unique channel prefix. Unreachable: skip, or fail with
  ``EVENTSPYPE_REQUIRE_REDIS=1``.
- ``private_redis()``: a ``redis-server`` of the test's own on a free loopback
  port, which fault-injection tests kill, pause and restart by pid.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import redis
from redis_peer_events import ShipmentEvent, make_event

from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker

HERE = Path(__file__).resolve().parent
PEER = HERE / "redis_peer.py"
REDIS_URL = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("EVENTSPYPE_REQUIRE_REDIS") == "1"


@dataclass
class Ping:
    """The event of the fault and ACL tests: just a number."""

    n: int


def unique_prefix() -> str:
    return f"eventspype-itest:{uuid.uuid4().hex[:12]}:"


def skip_or_fail(reason: str) -> None:
    """Skip, unless the run requires Redis (CI): then fail."""
    if REQUIRE_REDIS:
        pytest.fail(f"EVENTSPYPE_REQUIRE_REDIS=1 but {reason}")
    pytest.skip(reason)


def ping(url: str, timeout: float = 1.0) -> bool:
    client = redis.Redis.from_url(
        url, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def wait_until(
    condition: Callable[[], object], timeout: float = 15.0, interval: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def numsub(client: redis.Redis, channel: str) -> int:
    return int(dict(client.pubsub_numsub(channel)).get(channel.encode(), 0))


def shared_redis_url() -> str:
    """The shared server's URL; skips (or fails) the test when it is down."""
    if not ping(REDIS_URL):
        skip_or_fail(f"no Redis server at {REDIS_URL}")
    return REDIS_URL


def _free_port(*, with_bus: bool = False) -> int:
    """A free loopback port; ``with_bus``: port + 10000 too (a cluster node's
    bus port, which must exist: redis-server refuses to start otherwise)."""
    while True:
        with socket.socket() as probe, socket.socket() as bus:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if not with_bus:
                return port
            if port + 10000 > 65535:
                continue
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port


class PrivateRedis:
    """A throwaway ``redis-server`` on 127.0.0.1, controlled by pid."""

    def __init__(self, executable: str, *extra_args: str) -> None:
        self.executable = executable
        self.extra_args = extra_args
        self.port = _free_port(with_bus="--cluster-enabled" in extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, on the same port) and wait until it answers."""
        assert self.process is None or self.process.poll() is not None
        self.process = subprocess.Popen(
            [
                self.executable,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
                *self.extra_args,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_until(lambda: ping(self.url, 0.2), timeout=10)

    def kill(self) -> None:
        """SIGKILL: the server vanishes without closing anything gracefully."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def pause(self) -> None:
        """SIGSTOP: connections stay open, nothing answers."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def client(self, **options: Any) -> redis.Redis:
        options.setdefault("socket_timeout", 5)
        options.setdefault("socket_connect_timeout", 2)
        return redis.Redis.from_url(self.url, **options)


@contextlib.contextmanager
def private_redis(*extra_args: str) -> Iterator[PrivateRedis]:
    """A started :class:`PrivateRedis` (given ``extra_args``), killed on exit
    (resumed first if the test left it paused)."""
    executable = shutil.which("redis-server")
    if executable is None:
        skip_or_fail("redis-server is not installed (needed for fault injection)")
        raise AssertionError  # unreachable; for type checkers
    server = PrivateRedis(executable, *extra_args)
    server.start()
    try:
        yield server
    finally:
        if server.process is not None and server.process.poll() is None:
            server.resume()  # a paused server must die on kill()
        server.kill()


def peer(
    mode: str,
    url: str,
    prefix: str,
    tag: str,
    count: int,
    python: str = sys.executable,
) -> subprocess.Popen[str]:
    """Start ``redis_peer.py`` (see its docstring) under ``python``."""
    return subprocess.Popen(
        [python, str(PEER), mode, url, prefix, tag, str(count)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )


def reap(process: subprocess.Popen[str]) -> None:
    """Kill a peer that is still running (a test failed) and wait for it."""
    if process.poll() is None:
        process.kill()
        process.communicate()


def finish(process: subprocess.Popen[str]) -> str:
    """What a peer printed once it exited by itself (within 60 s); fails,
    with its stderr, unless its exit status is 0."""
    try:
        out, err = process.communicate(timeout=60)
    finally:
        reap(process)
    assert process.returncode == 0, err
    return out


def wait_ready(process: subprocess.Popen[str], timeout: float = 60) -> None:
    """Wait for a subscribing peer's ``READY`` line; fail with its stderr."""
    assert process.stdout is not None
    readable, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if readable else ""
    if line.strip() != "READY":
        process.kill()
        _, err = process.communicate(timeout=10)
        raise AssertionError(f"peer did not get ready: {line!r}\n{err}")


def recorder(
    count: int, done: Callable[[], object]
) -> tuple[list[tuple[Any, Any, Any]], Callable[[Any, Any, Any], None]]:
    """A list and a subscriber function that appends ``(event, tag, caller)``
    to it and calls ``done`` (an ``Event.set``, threading's or asyncio's)
    once ``count`` have come."""
    received: list[tuple[Any, Any, Any]] = []

    def record(event: Any, event_tag: Any, caller: Any) -> None:
        received.append((event, event_tag, caller))
        if len(received) >= count:
            done()

    return received, record


def peer_lines(count: int) -> list[dict[str, Any]]:
    """The ``event`` of each line a subscribing peer prints for a run of
    ``count`` events (``make_event(0 .. count - 1)`` as JSON objects)."""
    return [dataclasses.asdict(make_event(i)) for i in range(count)]


def receive_here(
    url: str, prefix: str, tag: str | int, count: int, python: str = sys.executable
) -> list[tuple[Any, Any, Any]]:
    """Subscribe in this process, let a peer process publish, return what came."""
    done = threading.Event()
    received, record = recorder(count, done.set)
    with RedisBroker.from_url(url, channel_prefix=prefix) as broker:
        broker.register_event_class(ShipmentEvent)
        publisher = EventPublisher(EventPublication(tag, ShipmentEvent), broker=broker)
        subscriber = FunctionalEventSubscriber(record)
        publisher.add_subscriber(subscriber)
        process = peer("publish", url, prefix, str(tag), count, python)
        _, err = process.communicate(timeout=60)
        assert process.returncode == 0, err
        assert done.wait(30), f"got {len(received)} of {count}"
        received_all = list(received)
        assert all(caller is broker for _, _, caller in received_all)
    return received_all


def send_from_here(
    url: str, prefix: str, tag: str | int, count: int, python: str = sys.executable
) -> tuple[list[dict[str, Any]], str]:
    """Let a peer process subscribe, publish from here; return its lines, stderr."""
    process = peer("subscribe", url, prefix, str(tag), count, python)
    try:
        wait_ready(process)
        channel = f"{prefix}{str(tag).upper() if isinstance(tag, str) else tag}"
        admin = redis.Redis.from_url(url)
        try:
            # An older peer does not wait for Redis to confirm its subscription.
            wait_until(lambda: numsub(admin, channel) >= 1)
        finally:
            admin.close()
        with RedisBroker.from_url(url, channel_prefix=prefix) as broker:
            publisher = EventPublisher(
                EventPublication(tag, ShipmentEvent), broker=broker
            )
            for index in range(count):
                publisher.publish(make_event(index))
        out, err = process.communicate(timeout=60)
    finally:
        reap(process)
    assert process.returncode == 0, err
    return [json.loads(line) for line in out.splitlines() if line.strip()], err
