"""Shared set-up of the eventspype-cli tests (cli + redis + serializers + core).

The commands run against the real server at ``EVENTSPYPE_TEST_REDIS_URL``
(skipped without one, failing under ``EVENTSPYPE_REQUIRE_REDIS=1``), each test
under a prefix of its own, whose keys are deleted after it; nothing is flushed.
The redis tier's helpers (forged envelopes, the local cluster) are reused.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The redis tier's helpers (forged envelopes, the local cluster) and the
# integration tier's private redis-server, reused rather than copied.
_TESTS = Path(__file__).resolve().parent.parent
for _folder in (_TESTS / "redis", _TESTS / "integration" / "redis_support"):
    if str(_folder) not in sys.path:
        sys.path.append(str(_folder))

import redis  # noqa: E402
from _cli_support import Run  # noqa: E402
from _redis_support import REDIS_URL, require_real_redis, unique_prefix  # noqa: E402
from click.testing import CliRunner, Result  # noqa: E402

from eventspype.cli import cli  # noqa: E402


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def client(prefix: str) -> Iterator[redis.Redis]:
    """A client of the real server; the test's keys are deleted after it."""
    require_real_redis()
    made = redis.Redis.from_url(REDIS_URL, socket_timeout=5, socket_connect_timeout=2)
    yield made
    keys = list(made.scan_iter(match=f"{prefix}*"))
    if keys:
        made.delete(*keys)
    made.close()


@pytest.fixture
def run(client: redis.Redis, prefix: str) -> Run:
    """``run("streams", "--json")``: the command on the real server and prefix."""

    def invoke(*args: str, input: str | None = None, url: str = REDIS_URL) -> Result:
        return CliRunner().invoke(
            cli,
            ["--url", url, "--prefix", prefix, *args],
            input=input,
            prog_name="eventspype",
        )

    return invoke
