"""Tests of eventspype-testing: they need core, serializers and testing only
(its Redis parts are tested in tests/integration)."""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)
