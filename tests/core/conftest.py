"""Shared setup for the eventspype-core tests (only eventspype-core installed).

The helper classes live in ``_core_support.py`` (a unique name, because every
test tier shares one pytest run in ``nox -s tests_all``). This directory is put
on ``sys.path`` here so they import the same way under any pytest import mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _core_support import (  # noqa: E402
    PLACED,
    RecordingBroker,
    make_publisher,
)

from eventspype import EventPublisher, LocalBroker  # noqa: E402


@pytest.fixture(params=["direct", "local"])
def route(request: pytest.FixtureRequest) -> str:
    """Runs a test once without a broker and once through a ``LocalBroker``."""
    return str(request.param)


@pytest.fixture
def publisher_and_broker(
    route: str,
) -> tuple[EventPublisher, LocalBroker | None]:
    """An ``EventPublisher`` for ``PLACED`` on the current ``route``."""
    return make_publisher(PLACED, route)


@pytest.fixture
def recording_broker() -> RecordingBroker:
    return RecordingBroker()
