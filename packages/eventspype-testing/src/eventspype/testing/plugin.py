"""The pytest plugin of eventspype-testing, loaded when it is installed
(``pytest11`` entry point ``eventspype``; ``-p no:eventspype`` turns it off).

Fixtures:

- ``event_recorder``: a function that makes :class:`EventRecorder` objects
  (``event_recorder(publisher)``, ``event_recorder(broker, publication)``...),
  closed after the test.
- ``test_broker``: a fresh :class:`TestBroker`, closed after the test; a
  subscriber error it collected (``errors="collect"``) and nobody raised
  fails the test at teardown.
- ``redis_url`` (session): ``EVENTSPYPE_TEST_REDIS_URL`` when set; else a
  private ``redis-server`` on a free port, started once and stopped after
  the session, when the program is installed; else the test is skipped,
  saying why, or fails when ``EVENTSPYPE_REQUIRE_REDIS=1``. Give each test
  its own channel prefix: the server may be shared.
- ``fake_redis``: a ``fakeredis.FakeRedis`` on a server of the test's own
  (needs the ``redis`` extra: ``pip install "eventspype-testing[redis]"``).

All are plain synchronous fixtures: they work in ``async def`` tests run by
pytest-asyncio or anyio as in synchronous ones.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

from eventspype.testing._redis_server import (
    PrivateRedisServer,
    ping,
    private_server_or_reason,
    required,
)
from eventspype.testing.broker import TestBroker
from eventspype.testing.recorder import EventRecorder

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication

__all__ = [
    "RecorderFactory",
    "event_recorder",
    "fake_redis",
    "redis_url",
    "test_broker",
]


class RecorderFactory(Protocol):
    """The type of the ``event_recorder`` fixture, for annotations:
    ``def test_x(event_recorder: RecorderFactory) -> None``."""

    def __call__(
        self, source: Any, publication: EventPublication | None = None
    ) -> EventRecorder: ...


@pytest.fixture
def event_recorder() -> Iterator[RecorderFactory]:
    """Make recorders: ``event_recorder(source, publication=None)`` takes the
    arguments of :class:`EventRecorder`; every one is closed after the test."""
    made: list[EventRecorder] = []

    def make(source: Any, publication: EventPublication | None = None) -> EventRecorder:
        recorder = EventRecorder(source, publication)
        made.append(recorder)
        return recorder

    yield make
    for recorder in made:
        recorder.close()


@pytest.fixture
def test_broker() -> Iterator[TestBroker]:
    """A fresh :class:`TestBroker` (JSON round trip, errors raised)."""
    broker = TestBroker()
    yield broker
    broker.close()
    broker._raise_pending()


def _unavailable(reason: str) -> None:
    if required():
        pytest.fail(f"EVENTSPYPE_REQUIRE_REDIS=1 but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The URL of a Redis server for the session (see the module docstring)."""
    configured = os.environ.get("EVENTSPYPE_TEST_REDIS_URL")
    if configured:
        problem = ping(configured)
        if problem is not None:
            _unavailable(f"EVENTSPYPE_TEST_REDIS_URL is set but {problem}")
        yield configured
        return
    server = private_server_or_reason()
    if not isinstance(server, PrivateRedisServer):
        _unavailable(server)
        return
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def fake_redis() -> Iterator[Any]:
    """A ``fakeredis.FakeRedis`` client on a fresh in-memory server."""
    try:
        # By name: an optional dependency, maybe absent where types are checked.
        fakeredis = importlib.import_module("fakeredis")
    except ImportError:
        pytest.fail(
            "the fake_redis fixture needs fakeredis: "
            'pip install "eventspype-testing[redis]"',
            pytrace=False,
        )
    client = fakeredis.FakeRedis(server=fakeredis.FakeServer())
    yield client
    client.close()
