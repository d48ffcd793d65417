"""RedisStreamBroker across real processes, on the shared server.

Consumers are ``redis_support/stream_peer.py`` processes that log every event
they handle to a file of their own; the tests compare those logs with what was
published. Each test uses a unique prefix and deletes its streams afterwards.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from redis_helpers import shared_redis_url, unique_prefix, wait_until
from stream_helpers import handled, publish, start_consumer, stop

pytestmark = [pytest.mark.slow, pytest.mark.redis_server]

STREAM = "SHIPMENTS"


@pytest.fixture
def url() -> str:
    return shared_redis_url()


@pytest.fixture
def prefix(url: str) -> Iterator[str]:
    made = unique_prefix()
    yield made
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{made}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_two_groups_each_receive_every_event(
    url: str, prefix: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    logs = {group: tmp_path / f"{group}.log" for group in ("billing", "audit")}
    for group, out in logs.items():
        processes.append(start_consumer(url, prefix, group, out))

    publish(url, prefix, 2000)

    for out in logs.values():
        wait_until(lambda out=out: len(handled(out)) >= 2000, timeout=60)
    for process in processes:
        stats = stop(process)
        assert stats["acknowledged"] == 2000
        assert stats["redelivered"] == 0
    for out in logs.values():
        assert handled(out) == list(range(2000))  # all, once, in order


def test_consumers_of_one_group_share_the_events_without_overlap(
    url: str, prefix: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    logs = [tmp_path / f"consumer-{n}.log" for n in range(2)]
    for out in logs:
        # Small batches and a little work per event: both consumers get some.
        processes.append(
            start_consumer(
                url, prefix, "g", out, "--prefetch", "10", "--delay", "0.001"
            )
        )

    publish(url, prefix, 2000)

    wait_until(lambda: sum(len(handled(out)) for out in logs) >= 2000, timeout=90)
    stats = [stop(process) for process in processes]
    first, second = (handled(out) for out in logs)
    assert sorted(first + second) == list(range(2000))  # none lost, none twice
    assert first
    assert second
    assert first == sorted(first)
    assert second == sorted(second)
    assert sum(s["redelivered"] for s in stats) == 0


def test_a_consumer_started_later_gets_what_was_published_before(
    url: str, prefix: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    out = tmp_path / "late.log"
    first = start_consumer(url, prefix, "g", out)  # creates the group
    stop(first)
    publish(url, prefix, 500)  # nobody reads now

    processes.append(start_consumer(url, prefix, "g", out))

    wait_until(lambda: len(handled(out)) >= 500, timeout=60)
    assert handled(out) == list(range(500))


def test_failures_are_redelivered_and_dead_lettered_across_processes(
    url: str, prefix: str, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    # Every 7th call raises: those events come back after claim_idle; an
    # event that fails on each of its deliveries would be dead-lettered.
    out = tmp_path / "flaky.log"
    processes.append(
        start_consumer(
            url, prefix, "g", out, "--claim-idle", "0.2", "--fail-every", "7"
        )
    )

    publish(url, prefix, 300)

    client = redis.Redis.from_url(url)
    try:

        def settled() -> bool:
            dead = client.xlen(f"{prefix}{{{STREAM}}}:dead")
            return len(set(handled(out))) + dead >= 300

        wait_until(settled, timeout=60)
        dead = client.xlen(f"{prefix}{{{STREAM}}}:dead")
    finally:
        client.close()
    stats = stop(processes[0])
    assert len(set(handled(out))) + dead == 300
    assert stats["redelivered"] >= 300 // 7
    assert stats["dead_lettered"] == dead
