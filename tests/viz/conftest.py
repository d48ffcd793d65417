"""Shared setup for the eventspype-viz tests (only core and viz installed).

The example system lives in ``_viz_support.py`` (a unique name, because every
test tier shares one pytest run in ``nox -s tests_all``); this directory is
put on ``sys.path`` so it imports the same way under any pytest import mode.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from _viz_support import (  # noqa: E402
    Catalog,
    Loans,
    Notifier,
    SearchIndex,
)

from eventspype.viz import EventVisualizer  # noqa: E402


@pytest.fixture
def library() -> EventVisualizer:
    """A visualizer holding the whole library system of ``_viz_support``."""
    visualizer = EventVisualizer()
    visualizer.add_publisher(Catalog)
    visualizer.add_publisher(Loans)
    visualizer.add_subscriber(SearchIndex)
    visualizer.add_subscriber(Notifier)
    return visualizer
