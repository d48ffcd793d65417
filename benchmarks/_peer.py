"""The other side of a Redis benchmark: a subprocess that receives, and its plumbing.

Shared by bench_redis.py, bench_streams.py and bench_async.py (not a test
module). Each of those scripts runs itself as the peer
(``python bench_x.py --child MODE URL PREFIX COUNT``): the peer subscribes,
prints ``READY``, receives, then prints one JSON line with its result, which
:class:`Peer` hands back to the parent. Only loopback traffic, to the server
the script was given.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from typing import Any

import redis

from eventspype import EventPublication

DEFAULT_URL = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
IDLE_SECONDS = 5.0


@dataclasses.dataclass
class OrderPlaced:
    order_id: int
    amount: float
    sent_at: float


ORDER_PLACED = EventPublication("order_placed", OrderPlaced)


def raw_payload(event: OrderPlaced) -> bytes:
    """What a raw redis-py loop sends: the same envelope eventspype writes."""
    return json.dumps(
        {
            "event_tag": "ORDER_PLACED",
            "event_class": "OrderPlaced",
            "event_module": OrderPlaced.__module__,
            "payload": json.dumps(dataclasses.asdict(event)),
        }
    ).encode()


def raw_sent_at(data: bytes) -> float:
    """The ``sent_at`` of the event inside a raw envelope (the raw peers' decode)."""
    envelope = json.loads(data)
    return float(json.loads(envelope["payload"])["sent_at"])


def unique_prefix(kind: str = "bench") -> str:
    """A channel prefix no other run shares (the server is shared)."""
    return f"{kind}-{uuid.uuid4().hex[:8]}:"


class Peer:
    """A peer subprocess: ``script --child mode url prefix count``.

    Returns once the peer printed ``READY`` (it is subscribed); raises
    ``RuntimeError`` with what it printed instead. Its stdin is a pipe that
    :meth:`result` closes, for peers that run until told to stop.
    """

    def __init__(
        self, script: str, mode: str, url: str, prefix: str, count: int
    ) -> None:
        self.process = subprocess.Popen(
            [sys.executable, script, "--child", mode, url, prefix, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "READY":
            self.process.kill()
            raise RuntimeError(f"peer {mode} failed to start: {line!r}")

    def result(self, timeout: float = 300) -> dict[str, Any]:
        """Close the peer's stdin, wait for it; its last output line, parsed."""
        out, _ = self.process.communicate("", timeout=timeout)
        return dict(json.loads(out.strip().splitlines()[-1]))


class Receipts:
    """A peer's event handler: counts what came, records each latency in
    the ``latency`` scenario (or works ``work`` s per event in ``work``), and
    calls ``done`` when the ``count``-th event arrives."""

    def __init__(
        self, scenario: str, count: int, done: Callable[[], object], work: float = 0
    ) -> None:
        self.scenario = scenario
        self.count = count
        self.done = done
        self.work = work
        self.latencies: list[float] = []
        self.received = 0
        self.done_at = 0.0

    def __call__(self, sent_at: float) -> None:
        if self.scenario == "latency":
            self.latencies.append(time.time() - sent_at)
        elif self.scenario == "work":
            time.sleep(self.work)
        self.received += 1
        if self.received == self.count:
            self.done_at = time.time()
            self.done()

    def report(self) -> str:
        """The peer's result line, for :meth:`Peer.result`."""
        return json.dumps(
            {"done": self.done_at, "latencies": self.latencies, "count": self.received}
        )


def idle_cpu(step: Callable[[], object] | None) -> float:
    """Fraction of a core this process used over IDLE_SECONDS, calling
    ``step`` repeatedly (a raw peer's read loop) or just sleeping (``None``:
    the broker's own thread does the reading)."""
    time.sleep(0.5)
    start = resource.getrusage(resource.RUSAGE_SELF)
    if step is None:
        time.sleep(IDLE_SECONDS)
    else:
        deadline = time.monotonic() + IDLE_SECONDS
        while time.monotonic() < deadline:
            step()
    return cpu_since(start) / IDLE_SECONDS


def cpu_since(start: Any) -> float:
    """CPU seconds (user + system) this process used since ``start``
    (a ``resource.getrusage(RUSAGE_SELF)`` result)."""
    end = resource.getrusage(resource.RUSAGE_SELF)
    return (end.ru_utime + end.ru_stime) - (start.ru_utime + start.ru_stime)


def command_line(
    name: str,
    doc: str,
    default_events: int,
    run: Callable[[str, int], list[dict[str, Any]]],
    print_table: Callable[[list[dict[str, Any]]], None],
) -> int:
    """A Redis benchmark's command line: ``[--redis-url] [--events] [--json]``.

    Exits 0 with a message when no server answers; else runs ``run(url,
    events)``, prints its rows and writes them to ``results/<name>.json``
    (or ``--json``).
    """
    from _timing import write_results

    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--redis-url", default=DEFAULT_URL)
    parser.add_argument("--events", type=int, default=default_events)
    parser.add_argument("--json", help="where to write results")
    args = parser.parse_args()
    try:
        redis.Redis.from_url(args.redis_url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as error:
        print(f"bench_{name}: skipped, no Redis server at {args.redis_url} ({error})")
        return 0
    rows = run(args.redis_url, args.events)
    print_table(rows)
    print("results:", write_results(name, rows, args.json))
    return 0
