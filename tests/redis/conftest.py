"""Shared setup for the eventspype-redis tests (core + serializers + redis).

Every test that takes ``client`` runs twice: on fakeredis (always) and on the
real server at ``EVENTSPYPE_TEST_REDIS_URL`` (default redis://127.0.0.1:6379/0),
which is skipped when unreachable, or fails when ``EVENTSPYPE_REQUIRE_REDIS=1``.
Each test uses its own channel prefix; nothing is flushed on the shared server.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

_HERE = str(Path(__file__).resolve().parent)
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

import fakeredis  # noqa: E402
import redis  # noqa: E402
from _cluster import LocalCluster, local_cluster  # noqa: E402
from _redis_support import (  # noqa: E402
    REDIS_URL,
    OrderCancelled,
    OrderPlaced,
    Point,
    require_real_redis,
    unique_prefix,
)

from eventspype.broker.redis import (  # noqa: E402
    RedisBroker,
    UnsafeClassImportWarning,
)
from eventspype.broker.redis._wire import registry as _registry  # noqa: E402

BrokerFactory = Callable[..., RedisBroker]


@pytest.fixture(params=["fake", "real"])
def backend(request: pytest.FixtureRequest) -> str:
    """``fake`` (fakeredis) or ``real`` (the shared server)."""
    if request.param == "real":
        require_real_redis()
    return str(request.param)


@pytest.fixture
def fake_server() -> fakeredis.FakeServer:
    return fakeredis.FakeServer()


@pytest.fixture
def client_factory(
    backend: str, fake_server: fakeredis.FakeServer
) -> Iterator[Callable[..., redis.Redis]]:
    """Makes clients of the current backend (all on the same server)."""
    made: list[redis.Redis] = []

    def make(**options: Any) -> redis.Redis:
        client: redis.Redis
        if backend == "fake":
            client = fakeredis.FakeRedis(server=fake_server, **options)
        else:
            options.setdefault("socket_timeout", 5)
            options.setdefault("socket_connect_timeout", 2)
            client = redis.Redis.from_url(REDIS_URL, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


@pytest.fixture
def client(client_factory: Callable[..., redis.Redis]) -> redis.Redis:
    return client_factory()


@pytest.fixture
def prefix() -> str:
    return unique_prefix()


@pytest.fixture
def broker_factory(client: redis.Redis, prefix: str) -> Iterator[BrokerFactory]:
    """Makes brokers on ``client`` with the test's prefix; closes them after."""
    made: list[RedisBroker] = []

    def make(*args: Any, **options: Any) -> RedisBroker:
        options.setdefault("channel_prefix", prefix)
        target = options.pop("client", client)
        broker = RedisBroker(target, *args, **options)
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def broker(broker_factory: BrokerFactory) -> RedisBroker:
    """A broker with the test event classes registered."""
    made = broker_factory()
    made.register_event_classes(OrderPlaced, OrderCancelled, Point)
    return made


@pytest.fixture
def unsafe_broker(
    broker_factory: BrokerFactory, monkeypatch: pytest.MonkeyPatch
) -> RedisBroker:
    """A broker with ``allow_unregistered_classes=True``, for the tests that
    need it: its ``UnsafeClassImportWarning`` is expected here (and checked),
    not left for the warnings summary. The warning comes once per process, so
    the flag that remembers it is reset for the test and restored after."""
    monkeypatch.setattr(_registry, "_warned", False)
    with pytest.warns(UnsafeClassImportWarning, match="import any module"):
        return broker_factory(allow_unregistered_classes=True)


@pytest.fixture
def real() -> Iterator[tuple[redis.Redis, str]]:
    """A client of the real server (skip or fail without one) and a unique
    key prefix; every key under the prefix is deleted afterwards."""
    require_real_redis()
    client = redis.Redis.from_url(REDIS_URL)
    prefix = unique_prefix()
    yield client, prefix
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.fixture(scope="module")
def redis_cluster() -> Iterator[LocalCluster]:
    """A local Redis Cluster of three masters, shared by a module's tests.

    Tests must not damage it (kill nodes): use ``redis_cluster_with_replicas``.
    """
    with local_cluster(masters=3) as cluster:
        yield cluster


@pytest.fixture
def redis_cluster_with_replicas() -> Iterator[LocalCluster]:
    """Three masters with one replica each, of this test alone (kill at will)."""
    with local_cluster(masters=3, replicas=1) as cluster:
        yield cluster


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Failover tests run one after the other on one pytest-xdist worker.

    Each kills a master of a cluster of its own whose nodes fail each other
    over after 1 s of silence: two of them at once (twelve servers on a
    small machine) could starve a node that long and fail over a master the
    test did not kill.
    """
    for item in items:
        if "redis_cluster_with_replicas" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("redis-cluster-failover"))
