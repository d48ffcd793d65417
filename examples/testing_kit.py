"""Tests written with eventspype-testing: a pytest module, runnable as a script.

    python examples/testing_kit.py        (or: pytest examples/testing_kit.py)

- ``test_checkout_publishes_order_placed`` runs twice: on a ``TestBroker``
  and through a real Redis server (the plugin's ``redis_url`` fixture: your
  ``EVENTSPYPE_TEST_REDIS_URL``, else a private ``redis-server``, else the
  test is skipped, saying why).
- ``TestThreadedBroker`` proves the custom broker of "Writing a custom
  broker" (examples/custom_broker.py) with the conformance kit.
"""

from __future__ import annotations

import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from custom_broker import ThreadedBroker  # examples/custom_broker.py

from eventspype import EventPublication, MultiPublisher
from eventspype.testing import TestBroker
from eventspype.testing.conformance import BrokerContract


@dataclass
class OrderPlaced:
    order_id: int
    amount: float


class Checkout(MultiPublisher):
    """The service under test: it publishes OrderPlaced when an order is placed."""

    order_placed = EventPublication("order_placed", OrderPlaced)

    def place(self, order_id: int, amount: float) -> None:
        self.publish(self.order_placed, OrderPlaced(order_id, amount))


@pytest.fixture(params=["TestBroker", "RedisBroker"])
def broker(request: pytest.FixtureRequest) -> Iterator[Any]:
    if request.param == "TestBroker":
        with TestBroker() as test_broker:
            yield test_broker
        return
    from eventspype.broker.redis import RedisBroker

    url = request.getfixturevalue("redis_url")
    prefix = f"checkout-test-{uuid.uuid4().hex}:"  # the server may be shared
    with RedisBroker.from_url(url, channel_prefix=prefix) as redis_broker:
        redis_broker.register_event_class(OrderPlaced)
        yield redis_broker


def test_checkout_publishes_order_placed(broker: Any, event_recorder: Any) -> None:
    recorder = event_recorder(broker, Checkout.order_placed)
    Checkout(broker).place(order_id=1, amount=9.5)
    # Through Redis the event comes back on the broker's listener thread:
    # wait for it (at most 10 s) instead of sleeping.
    recorder.assert_published(OrderPlaced(1, 9.5), timeout=10)
    recorder.assert_not_published(OrderPlaced, order_id=2)


class TestThreadedBroker(BrokerContract):
    delivers_synchronously = False  # it delivers on its worker thread
    refuses_after_close = False  # publishing after close() is not refused

    @pytest.fixture
    def broker(self) -> Iterator[ThreadedBroker]:
        broker = ThreadedBroker()
        yield broker
        broker.close()


if __name__ == "__main__":
    # A pytest process of its own: this one has imported eventspype already.
    command = [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider"]
    sys.exit(subprocess.run(command, check=False).returncode)
