"""Shared set-up of the integration tests: their helper modules' folders."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

# The Redis test helpers (redis_helpers, redis_peer, ...) live beside the tests
# and are also run as scripts by subprocesses, so they are plain modules.
_REDIS_SUPPORT = str(Path(__file__).resolve().parent / "redis_support")
if _REDIS_SUPPORT not in sys.path:
    sys.path.insert(0, _REDIS_SUPPORT)

# The lower tiers' helper modules (_core_support: events, the fork runner;
# _redis_support: forged envelopes, ...): every integration run has all the
# distributions they need, so they are reused here, not copied. (tests_all
# puts these folders on sys.path anyway, through their conftest files.)
for _tier in ("core", "redis"):
    _folder = str(Path(__file__).resolve().parent.parent / _tier)
    if _folder not in sys.path:
        sys.path.append(_folder)

from redis_helpers import PrivateRedis, private_redis  # noqa: E402


@pytest.fixture
def server() -> Iterator[PrivateRedis]:
    """A redis-server of the test's own on a free loopback port (killed after)."""
    with private_redis() as started:
        yield started
