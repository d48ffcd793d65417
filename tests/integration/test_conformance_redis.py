"""The conformance kit run against every Redis broker: RedisBroker on
fakeredis and on a real server, AsyncRedisBroker, RedisStreamBroker (durable)
and AsyncRedisStreamBroker (durable, asyncio).

Each test has a channel prefix of its own; nothing is flushed on the shared
server. Real-server classes skip without one (and fail when
``EVENTSPYPE_REQUIRE_REDIS=1``).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from _redis_support import REDIS_URL, require_real_redis, unique_prefix

from eventspype.broker.redis import (
    AsyncRedisBroker,
    AsyncRedisStreamBroker,
    RedisBroker,
    RedisStreamBroker,
)
from eventspype.testing import TestBroker
from eventspype.testing.conformance import EVENT_CLASSES, BrokerContract

#: Short, so the durable tests retry within the contract's wait.
CLAIM_IDLE = 0.2
MAX_DELIVERIES = 3


class _RedisContract(BrokerContract):
    delivers_synchronously = False
    checks_publication_class = True
    cross_process = True

    @pytest.fixture
    def prefix(self) -> str:
        return unique_prefix()


class TestRedisBrokerOnFakeredis(_RedisContract):
    @pytest.fixture
    def server(self) -> fakeredis.FakeServer:
        return fakeredis.FakeServer()

    def make(self, server: fakeredis.FakeServer, prefix: str) -> RedisBroker:
        broker = RedisBroker(fakeredis.FakeRedis(server=server), channel_prefix=prefix)
        broker.register_event_classes(*EVENT_CLASSES)
        return broker

    @pytest.fixture
    def broker(
        self, server: fakeredis.FakeServer, prefix: str
    ) -> Iterator[RedisBroker]:
        with self.make(server, prefix) as broker:
            yield broker

    @pytest.fixture
    def peer_broker(
        self, server: fakeredis.FakeServer, prefix: str
    ) -> Iterator[RedisBroker]:
        with self.make(server, prefix) as broker:
            yield broker


@pytest.mark.redis_server
class TestRedisBrokerOnRedis(_RedisContract):
    def make(self, prefix: str) -> RedisBroker:
        require_real_redis()
        broker = RedisBroker(redis.Redis.from_url(REDIS_URL), channel_prefix=prefix)
        broker.register_event_classes(*EVENT_CLASSES)
        return broker

    @pytest.fixture
    def broker(self, prefix: str) -> Iterator[RedisBroker]:
        with self.make(prefix) as broker:
            yield broker

    @pytest.fixture
    def peer_broker(self, prefix: str) -> Iterator[RedisBroker]:
        with self.make(prefix) as broker:
            yield broker


class _LoopThread:
    """An event loop running in a thread of its own, for brokers that belong
    to a loop while the contract's tests are synchronous."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="contract-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Any, timeout: float = 30.0) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


class _AsyncContract(_RedisContract):
    """A broker of a loop: created, awaited and closed on the loop thread
    (class-scoped, so the contract does not count that thread as the broker's)."""

    @pytest.fixture(scope="class")
    @classmethod
    def loop_thread(cls) -> Iterator[_LoopThread]:
        runner = _LoopThread()
        yield runner
        runner.stop()

    @pytest.fixture(autouse=True)
    def _remember_loop(self, loop_thread: _LoopThread) -> None:
        self._loop_thread = loop_thread

    def subscribed(self, broker: Any) -> None:
        self._loop_thread.run(broker.wait_until_subscribed(10))

    def close_broker(self, broker: Any) -> None:
        self._loop_thread.run(broker.aclose())


@pytest.mark.redis_server
class TestAsyncRedisBrokerOnRedis(_AsyncContract):
    def make(self, loop_thread: _LoopThread, prefix: str) -> AsyncRedisBroker:
        require_real_redis()

        async def create() -> AsyncRedisBroker:
            client = redis.asyncio.Redis.from_url(REDIS_URL)
            broker = AsyncRedisBroker(client, channel_prefix=prefix)
            broker.register_event_classes(*EVENT_CLASSES)
            return broker

        broker: AsyncRedisBroker = loop_thread.run(create())
        return broker

    @pytest.fixture
    def broker(
        self, loop_thread: _LoopThread, prefix: str
    ) -> Iterator[AsyncRedisBroker]:
        broker = self.make(loop_thread, prefix)
        yield broker
        loop_thread.run(broker.aclose())

    @pytest.fixture
    def peer_broker(
        self, loop_thread: _LoopThread, prefix: str
    ) -> Iterator[AsyncRedisBroker]:
        broker = self.make(loop_thread, prefix)
        yield broker
        loop_thread.run(broker.aclose())


class TestAsyncRedisBrokerOnFakeredis(_AsyncContract):
    @pytest.fixture
    def server(self) -> fakeredis.FakeServer:
        return fakeredis.FakeServer()

    def make(
        self, loop_thread: _LoopThread, server: fakeredis.FakeServer, prefix: str
    ) -> AsyncRedisBroker:
        async def create() -> AsyncRedisBroker:
            client = fakeredis.FakeAsyncRedis(server=server)
            broker = AsyncRedisBroker(client, channel_prefix=prefix)
            broker.register_event_classes(*EVENT_CLASSES)
            return broker

        broker: AsyncRedisBroker = loop_thread.run(create())
        return broker

    @pytest.fixture
    def broker(
        self, loop_thread: _LoopThread, server: fakeredis.FakeServer, prefix: str
    ) -> Iterator[AsyncRedisBroker]:
        broker = self.make(loop_thread, server, prefix)
        yield broker
        loop_thread.run(broker.aclose())

    @pytest.fixture
    def peer_broker(
        self, loop_thread: _LoopThread, server: fakeredis.FakeServer, prefix: str
    ) -> Iterator[AsyncRedisBroker]:
        broker = self.make(loop_thread, server, prefix)
        yield broker
        loop_thread.run(broker.aclose())


class _StreamContract(_RedisContract):
    durable = True
    max_deliveries = MAX_DELIVERIES

    def options(self, prefix: str, group: str) -> dict[str, Any]:
        return {
            "channel_prefix": prefix,
            "group": group,
            "claim_idle": CLAIM_IDLE,
            "max_deliveries": MAX_DELIVERIES,
        }


@pytest.mark.redis_server
class TestRedisStreamBrokerOnRedis(_StreamContract):
    def make(self, prefix: str, group: str) -> RedisStreamBroker:
        require_real_redis()
        client = redis.Redis.from_url(REDIS_URL)
        broker = RedisStreamBroker(client, **self.options(prefix, group))
        broker.register_event_classes(*EVENT_CLASSES)
        return broker

    @pytest.fixture
    def broker(self, prefix: str) -> Iterator[RedisStreamBroker]:
        with self.make(prefix, "contract") as broker:
            yield broker

    @pytest.fixture
    def peer_broker(self, prefix: str) -> Iterator[RedisStreamBroker]:
        # Another group: every group gets every event.
        with self.make(prefix, "contract-peer") as broker:
            yield broker


class TestRedisStreamBrokerOnFakeredis(_StreamContract):
    @pytest.fixture
    def server(self) -> fakeredis.FakeServer:
        return fakeredis.FakeServer()

    def make(
        self, server: fakeredis.FakeServer, prefix: str, group: str
    ) -> RedisStreamBroker:
        client = fakeredis.FakeRedis(server=server)
        broker = RedisStreamBroker(client, **self.options(prefix, group))
        broker.register_event_classes(*EVENT_CLASSES)
        return broker

    @pytest.fixture
    def broker(
        self, server: fakeredis.FakeServer, prefix: str
    ) -> Iterator[RedisStreamBroker]:
        with self.make(server, prefix, "contract") as broker:
            yield broker

    @pytest.fixture
    def peer_broker(
        self, server: fakeredis.FakeServer, prefix: str
    ) -> Iterator[RedisStreamBroker]:
        with self.make(server, prefix, "contract-peer") as broker:
            yield broker


@pytest.mark.redis_server
class TestAsyncRedisStreamBrokerOnRedis(_AsyncContract, _StreamContract):
    def make(self, loop_thread: _LoopThread, prefix: str, group: str) -> Any:
        require_real_redis()

        async def create() -> Any:
            client = redis.asyncio.Redis.from_url(REDIS_URL)
            broker = AsyncRedisStreamBroker(client, **self.options(prefix, group))
            broker.register_event_classes(*EVENT_CLASSES)
            return broker

        return loop_thread.run(create())

    def subscribed(self, broker: Any) -> None:
        waiting = getattr(broker, "wait_until_subscribed", None)
        if waiting is not None:
            self._loop_thread.run(waiting(10))

    def dead_letters(self, broker: Any, channel: str) -> list[Any]:
        return list(self._loop_thread.run(broker.dead_letters(channel)))

    @pytest.fixture
    def broker(self, loop_thread: _LoopThread, prefix: str) -> Iterator[Any]:
        broker = self.make(loop_thread, prefix, "contract")
        yield broker
        loop_thread.run(broker.aclose())

    @pytest.fixture
    def peer_broker(self, loop_thread: _LoopThread, prefix: str) -> Iterator[Any]:
        broker = self.make(loop_thread, prefix, "contract-peer")
        yield broker
        loop_thread.run(broker.aclose())


class TestTestBrokerConsumerGroup(BrokerContract):
    """``TestBroker(durable=True)``: the Streams protocol core on the
    in-memory model; the contract's waits move its clock instead of sleeping."""

    delivers_synchronously = False
    checks_publication_class = True
    durable = True
    max_deliveries = MAX_DELIVERIES

    @pytest.fixture
    def broker(self) -> Iterator[TestBroker]:
        with TestBroker(durable=True, max_deliveries=MAX_DELIVERIES) as broker:
            yield broker

    def pass_time(self, broker: Any) -> None:
        broker.advance(1.0)
