"""``RedisStreamBroker.serve()``: a consumer process drains on SIGTERM and exits 0.

What it did not finish is handed back to the group: another consumer takes it
at its first claim sweep, not after ``claim_idle`` (30 s here).
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


@pytest.fixture
def prefix() -> Iterator[str]:
    made = unique_prefix()
    yield made
    client = redis.Redis.from_url(shared_redis_url())
    try:
        keys = list(client.scan_iter(match=f"{made}*"))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_sigterm_drains_hands_back_and_exits_zero(prefix: str, tmp_path: Path) -> None:
    url = shared_redis_url()
    first_out, second_out = tmp_path / "first", tmp_path / "second"
    started: list[subprocess.Popen[str]] = []
    try:
        first = start_consumer(
            url, prefix, "g", first_out, "--delay", "0.05", "--serve", "1.0"
        )
        started.append(first)
        publish(url, prefix, 300)
        wait_until(lambda: len(handled(first_out)) >= 20, timeout=60)
        stats = stop(first)  # SIGTERM: serve() returns, exit status 0
        assert stats["handed_back"] >= 1
        second = start_consumer(url, prefix, "g", second_out)
        started.append(second)
        wait_until(
            lambda: (
                set(handled(first_out)) | set(handled(second_out)) == set(range(300))
            ),
            timeout=25,  # well below claim_idle: handed back, not timed out
        )
        both = handled(first_out) + handled(second_out)
        assert len(both) == 300, "an event was handled twice"
        stop(second)
    finally:
        for process in started:
            if process.poll() is None:
                process.kill()
                process.communicate(timeout=30)
