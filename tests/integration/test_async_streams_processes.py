"""AsyncRedisStreamBroker across real processes, with coroutine subscribers.

Consumers are ``redis_support/async_stream_peer.py`` processes (``await
broker.aserve()``) that log every event their coroutine handled, with its
message id and delivery count, to a file of their own; events come from
``stream_peer.py publish`` (the threaded broker: both brokers share the wire
format). The tests compare the logs with what was published. Tests that kill a
consumer or stop it with SIGTERM use a private redis-server; the others the
shared one, under a unique prefix deleted afterwards.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

import pytest
import redis
from redis_helpers import (
    HERE,
    PrivateRedis,
    shared_redis_url,
    unique_prefix,
    wait_ready,
    wait_until,
)
from stream_helpers import publish

pytestmark = [pytest.mark.slow, pytest.mark.redis_server]

STREAM = "SHIPMENTS"
PEER = HERE / "async_stream_peer.py"


class Handled(NamedTuple):
    order_id: int
    message_id: str
    deliveries: int


def handled(out: Path) -> list[Handled]:
    """What a consumer logged, in order (complete lines only)."""
    if not out.exists():
        return []
    text = out.read_text()
    lines = text[: text.rfind("\n") + 1].splitlines()
    return [
        Handled(int(order), message, int(count))
        for order, message, count in (line.split() for line in lines)
    ]


def ids(out: Path) -> list[int]:
    return [item.order_id for item in handled(out)]


Popen = subprocess.Popen[str]
#: Where each consumer's stderr goes, by pid.
_ERRORS: dict[int, Path] = {}


def start(url: str, prefix: str, group: str, out: Path, *options: str) -> Popen:
    """A consumer, once its group exists. Its log goes to ``<out>.err``: a
    pipe nobody reads would fill with the tracebacks of failing handlers and
    block the process."""
    with open(f"{out}.err", "a") as errors:
        process = subprocess.Popen(
            [sys.executable, str(PEER), url, prefix, group, str(out), *options],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=HERE,
        )
    _ERRORS[process.pid] = Path(f"{out}.err")
    wait_ready(process)
    return process


def stop(process: Popen) -> dict[str, int]:
    """SIGTERM: ``aserve()`` drains and returns, the process exits 0."""
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=60)
    assert process.returncode == 0, _ERRORS[process.pid].read_text()[-4000:]
    return dict(json.loads(out.strip().splitlines()[-1]))


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
def processes() -> Iterator[list[Popen]]:
    started: list[Popen] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_two_groups_each_receive_every_event_once_in_order(
    url: str, prefix: str, tmp_path: Path, processes: list[Popen]
) -> None:
    logs = {group: tmp_path / f"{group}.log" for group in ("billing", "audit")}
    for group, out in logs.items():
        processes.append(start(url, prefix, group, out))

    publish(url, prefix, 2000)

    for out in logs.values():
        wait_until(lambda out=out: len(handled(out)) >= 2000, timeout=60)
    for process in processes:
        stats = stop(process)
        assert stats["acknowledged"] == 2000
        assert stats["redelivered"] == 0
    for out in logs.values():
        items = handled(out)
        assert [item.order_id for item in items] == list(range(2000))
        # The handler saw the stream entry id (stable, unique) and count 1.
        assert len({item.message_id for item in items}) == 2000
        assert all(item.message_id.count("-") == 1 for item in items)
        assert {item.deliveries for item in items} == {1}


def test_consumers_of_one_group_share_the_events_without_overlap(
    url: str, prefix: str, tmp_path: Path, processes: list[Popen]
) -> None:
    logs = [tmp_path / f"consumer-{n}.log" for n in range(2)]
    for out in logs:
        processes.append(
            start(url, prefix, "g", out, "--prefetch", "10", "--delay", "0.001")
        )

    publish(url, prefix, 2000)

    wait_until(lambda: sum(len(handled(out)) for out in logs) >= 2000, timeout=90)
    stats = [stop(process) for process in processes]
    first, second = (ids(out) for out in logs)
    assert sorted(first + second) == list(range(2000))  # none lost, none twice
    assert first
    assert second
    assert sum(s["redelivered"] for s in stats) == 0


def test_a_coroutine_still_running_is_not_acknowledged_and_concurrency_holds(
    url: str, prefix: str, tmp_path: Path, processes: list[Popen]
) -> None:
    # Slow coroutines, four at a time: while they run, the group shows them
    # pending (not acknowledged); at the end every event was acknowledged.
    out = tmp_path / "slow.log"
    processes.append(
        start(url, prefix, "g", out, "--delay", "0.05", "--concurrency", "4")
    )
    publish(url, prefix, 200)
    client = redis.Redis.from_url(url)
    try:
        wait_until(lambda: len(handled(out)) >= 20, timeout=60)
        pending = client.xpending(f"{prefix}{{{STREAM}}}", "g")["pending"]
        assert pending >= 1  # handled-and-sleeping entries are still held
        wait_until(lambda: len(handled(out)) >= 200, timeout=120)
        stats = stop(processes[0])
        assert stats["acknowledged"] == 200
        assert client.xpending(f"{prefix}{{{STREAM}}}", "g")["pending"] == 0
    finally:
        client.close()
    assert sorted(ids(out)) == list(range(200))


def test_failures_are_retried_and_dead_lettered_across_processes(
    url: str, prefix: str, tmp_path: Path, processes: list[Popen]
) -> None:
    out = tmp_path / "flaky.log"
    processes.append(
        start(url, prefix, "g", out, "--claim-idle", "0.5", "--fail-every", "7")
    )

    publish(url, prefix, 300)

    client = redis.Redis.from_url(url)
    try:

        def settled() -> bool:
            dead = client.xlen(f"{prefix}{{{STREAM}}}:dead")
            return len(set(ids(out))) + dead >= 300

        wait_until(settled, timeout=90)
        dead = client.xlen(f"{prefix}{{{STREAM}}}:dead")
    finally:
        client.close()
    stats = stop(processes[0])
    assert len(set(ids(out))) + dead == 300
    assert stats["redelivered"] >= 300 // 7
    assert stats["dead_lettered"] == dead
    # A retried entry carries Redis's delivery count, above 1.
    assert any(item.deliveries > 1 for item in handled(out))


def test_a_consumer_killed_mid_stream_loses_nothing(
    tmp_path: Path, server: PrivateRedis, processes: list[Popen]
) -> None:
    total, prefetch = 10_000, 100
    logs = [tmp_path / "victim.log", tmp_path / "survivor.log"]
    options = ["--claim-idle", "1.0", "--prefetch", str(prefetch), "--delay", "0.0002"]
    for out in logs:
        processes.append(start(server.url, "kill:", "g", out, *options))
    victim, survivor = processes
    publish(server.url, "kill:", total)

    wait_until(lambda: len(handled(logs[0])) >= 1000, timeout=60)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)

    def all_handled() -> bool:
        return len(set(ids(logs[0])) | set(ids(logs[1]))) >= total

    wait_until(all_handled, timeout=120)
    stats = stop(survivor)
    client = server.client()
    try:
        pending = client.xpending("kill:{SHIPMENTS}", "g")["pending"]
    finally:
        client.close()

    victim_ids, survivor_ids = ids(logs[0]), ids(logs[1])
    assert set(victim_ids) | set(survivor_ids) == set(range(total))
    duplicates = len(victim_ids) + len(survivor_ids) - total
    print(f"duplicates after SIGKILL: {duplicates} (stats: {stats})")
    assert len(victim_ids) < total  # the kill did land mid-stream
    assert stats["claimed"] >= 1
    # Only what the victim held (at most prefetch) comes twice, and the
    # survivor saw each of those as a redelivery (count > 1).
    assert duplicates <= prefetch
    twice = set(victim_ids) & set(survivor_ids)
    assert all(
        item.deliveries > 1 for item in handled(logs[1]) if item.order_id in twice
    )
    assert pending == 0


def test_sigterm_drains_and_hands_the_rest_back_at_once(
    tmp_path: Path, server: PrivateRedis, processes: list[Popen]
) -> None:
    # claim_idle is far longer than the test: the second consumer can only
    # take the first one's unfinished entries at once because SIGTERM handed
    # them back (idle time set past claim_idle) instead of leaving them held.
    first_log, second_log = tmp_path / "first.log", tmp_path / "second.log"
    slow = ["--claim-idle", "600", "--prefetch", "20", "--delay", "0.02"]
    first = start(server.url, "term:", "g", first_log, *slow)
    processes.append(first)
    publish(server.url, "term:", 500)
    wait_until(lambda: len(handled(first_log)) >= 50, timeout=60)

    stats = stop(first)  # the handler in hand finishes; exits 0

    handled_first = ids(first_log)
    assert len(handled_first) < 500
    # Everything it handled was acknowledged; nothing handled was left behind.
    assert stats["acknowledged"] == len(set(handled_first))

    second = start(server.url, "term:", "g", second_log, "--claim-idle", "600")
    processes.append(second)
    wait_until(
        lambda: set(handled_first) | set(ids(second_log)) >= set(range(500)),
        timeout=60,
    )
    stop(second)
    assert not set(handled_first) & set(ids(second_log))  # none twice


def test_a_consumer_restarted_under_its_name_resumes_its_own_entries_at_once(
    tmp_path: Path, server: PrivateRedis, processes: list[Popen]
) -> None:
    out = tmp_path / "same-name.log"
    options = ["--consumer", "worker-1", "--claim-idle", "600", "--delay", "0.005"]
    victim = start(server.url, "restart:", "g", out, *options)
    processes.append(victim)
    publish(server.url, "restart:", 400)
    wait_until(lambda: len(handled(out)) >= 40, timeout=60)
    victim.send_signal(signal.SIGKILL)
    victim.communicate(timeout=30)
    client = server.client()
    try:
        held = client.xpending("restart:{SHIPMENTS}", "g")["pending"]
    finally:
        client.close()
    assert held >= 1  # the kill left entries pending on worker-1

    processes.append(start(server.url, "restart:", "g", out, *options))

    # Not after claim_idle (600 s): its own pending entries first, at once.
    wait_until(lambda: set(ids(out)) >= set(range(400)), timeout=60)
    stop(processes[-1])


def test_a_second_signal_hands_everything_back_at_once(
    tmp_path: Path, server: PrivateRedis, processes: list[Popen]
) -> None:
    # A handler stuck for 10 minutes and a drain of 10 minutes: only the
    # second signal (SIGINT after SIGTERM) lets the process end now, and what
    # it held, the stuck entry included, goes back to the group.
    stuck_log, next_log = tmp_path / "stuck.log", tmp_path / "next.log"
    forever = ["--claim-idle", "600", "--delay", "600", "--drain", "600"]
    stuck = start(server.url, "hurry:", "g", stuck_log, *forever)
    processes.append(stuck)
    publish(server.url, "hurry:", 5)
    wait_until(lambda: len(handled(stuck_log)) >= 1, timeout=60)

    stuck.send_signal(signal.SIGTERM)
    stuck.send_signal(signal.SIGINT)
    stuck.communicate(timeout=60)
    assert stuck.returncode == 0, _ERRORS[stuck.pid].read_text()[-4000:]

    processes.append(start(server.url, "hurry:", "g", next_log, "--claim-idle", "600"))
    wait_until(lambda: set(ids(next_log)) == set(range(5)), timeout=60)
