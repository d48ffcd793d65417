"""Shared set-up of the integration tests: their helper modules' folders."""

from __future__ import annotations

import sys
from pathlib import Path

# The Redis test helpers (redis_helpers, redis_peer, ...) live beside the tests
# and are also run as scripts by subprocesses, so they are plain modules.
_REDIS_SUPPORT = str(Path(__file__).resolve().parent / "redis_support")
if _REDIS_SUPPORT not in sys.path:
    sys.path.insert(0, _REDIS_SUPPORT)

# eventspype-core's test helpers (_core_support: events, the fork runner) need
# only eventspype-core, which every integration run has: reused, not copied.
_CORE_SUPPORT = str(Path(__file__).resolve().parent.parent / "core")
if _CORE_SUPPORT not in sys.path:
    sys.path.append(_CORE_SUPPORT)
