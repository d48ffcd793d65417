"""The conformance kit run against the brokers that need no Redis: LocalBroker,
TestBroker, and the custom broker of the docs (examples/custom_broker.py)."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventspype import LocalBroker
from eventspype.testing import TestBroker
from eventspype.testing.conformance import BrokerContract

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "custom_broker.py"


def _load_example() -> Any:
    spec = importlib.util.spec_from_file_location("_custom_broker_example", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


class TestLocalBroker(BrokerContract):
    @pytest.fixture
    def broker(self) -> LocalBroker:
        return LocalBroker()


class TestTestBroker(BrokerContract):
    checks_publication_class = True
    raises_subscriber_errors = True

    @pytest.fixture
    def broker(self) -> Iterator[TestBroker]:
        with TestBroker() as broker:
            yield broker


class TestTestBrokerCollectingErrors(BrokerContract):
    checks_publication_class = True

    @pytest.fixture
    def broker(self) -> Iterator[TestBroker]:
        with TestBroker(errors="collect") as broker:
            yield broker
            broker.failures.clear()


class TestCustomBrokerExample(BrokerContract):
    """The ThreadedBroker of "Writing a custom broker": it delivers on its
    worker thread and accepts publishing after close() (events are dropped)."""

    delivers_synchronously = False
    refuses_after_close = False

    @pytest.fixture
    def broker(self) -> Iterator[Any]:
        broker = _load_example().ThreadedBroker()
        yield broker
        broker.close()
