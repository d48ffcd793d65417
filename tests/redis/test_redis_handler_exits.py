"""``SystemExit`` and ``KeyboardInterrupt`` raised by a handler (issue 16, item 3).

DESIGN section 10: on a broker's own thread (RedisBroker's listener), nothing a
subscriber raises ends delivery: it is logged, counted and survived. On the
event loop's thread (AsyncRedisBroker, coroutine subscribers) they propagate,
as they do from ``LocalBroker``: before, AsyncRedisBroker logged a handler's
``sys.exit()`` and went on (the process exited 0 much later, or never).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, NoReturn

import fakeredis
import pytest
import redis
import redis.asyncio
from _redis_support import (
    REDIS_URL,
    Inbox,
    OrderPlaced,
    publisher_for,
    require_real_redis,
    run_bounded,
    unique_prefix,
)

from eventspype import (
    AsyncFunctionalEventSubscriber,
    FunctionalEventSubscriber,
    LocalBroker,
)
from eventspype.broker.redis import AsyncRedisBroker, RedisBroker
from eventspype.broker.redis._wire.fanout import Fanout

#: A new instance per test: one raised before carries its traceback along.
LEAVING = [SystemExit, KeyboardInterrupt]


def raiser(error: type[BaseException]) -> Callable[[Any], NoReturn]:
    def leave(event: Any) -> NoReturn:
        raise error("raised by a handler")

    return leave


@pytest.fixture(params=["fake", "real"])
def async_client(request: pytest.FixtureRequest) -> Callable[[], Any]:
    if request.param == "real":
        require_real_redis()
    server = fakeredis.FakeServer()

    def make() -> Any:
        if request.param == "fake":
            return fakeredis.FakeAsyncRedis(server=server)
        return redis.asyncio.Redis.from_url(
            REDIS_URL, socket_timeout=5, socket_connect_timeout=2
        )

    return make


# -- the decision, without I/O ----------------------------------------------------


@pytest.mark.parametrize("error", LEAVING, ids=lambda e: e.__name__)
def test_the_fanout_contains_them_on_a_broker_s_thread(
    error: type[BaseException],
) -> None:
    fanout = Fanout()
    inbox = Inbox()
    quitter = FunctionalEventSubscriber(raiser(error), with_event_info=False)
    fanout.add("c", quitter)
    fanout.add("c", inbox.subscriber)
    delivery = fanout.deliver("c", OrderPlaced(1, 1.0), "c", None)
    assert delivery.handled == 1
    assert [type(e) for _, e in delivery.failed] == [error]
    assert fanout.subscriber_errors == 1


@pytest.mark.parametrize("error", LEAVING, ids=lambda e: e.__name__)
def test_the_fanout_lets_them_through_on_the_event_loop(
    error: type[BaseException],
) -> None:
    fanout = Fanout(on_event_loop=True)
    quitter = FunctionalEventSubscriber(raiser(error), with_event_info=False)
    fanout.add("c", quitter)
    with pytest.raises(error):
        fanout.deliver("c", OrderPlaced(1, 1.0), "c", None)
    # An Exception is still isolated there, as LocalBroker does.
    failing = Fanout(on_event_loop=True)
    bug = FunctionalEventSubscriber(raiser(ValueError), with_event_info=False)
    failing.add("c", bug)
    assert failing.deliver("c", OrderPlaced(1, 1.0), "c", None).handled == 0
    assert failing.subscriber_errors == 1


# -- the brokers -------------------------------------------------------------------


@pytest.mark.parametrize("error", LEAVING, ids=lambda e: e.__name__)
def test_async_redis_broker_lets_them_end_the_loop(
    async_client: Callable[[], Any], error: type[BaseException]
) -> None:
    reached_the_end = []

    async def scenario() -> None:
        client = async_client()
        broker = AsyncRedisBroker(client, channel_prefix=unique_prefix())
        broker.register_event_class(OrderPlaced)
        try:
            publisher = publisher_for(broker, "orders", OrderPlaced)
            quitter = FunctionalEventSubscriber(raiser(error), with_event_info=False)
            publisher.add_subscriber(quitter)
            await broker.wait_until_subscribed()
            await publisher.publish_async(OrderPlaced(1, 1.0))
            # Bounded: the handler's exception ends the loop well before.
            for _ in range(1000):
                await asyncio.sleep(0.01)
            reached_the_end.append(True)
        finally:
            await broker.aclose()

    with pytest.raises(error):
        asyncio.run(scenario())
    assert reached_the_end == []


@pytest.mark.parametrize("error", LEAVING, ids=lambda e: e.__name__)
def test_a_coroutine_subscriber_lets_them_end_the_loop(
    error: type[BaseException],
) -> None:
    async def scenario() -> None:
        async def leave(event: Any) -> None:
            raise error("raised by a handler")

        publisher = publisher_for(LocalBroker(), "orders", OrderPlaced)
        subscriber = AsyncFunctionalEventSubscriber(leave, with_event_info=False)
        publisher.add_subscriber(subscriber)
        publisher.publish(OrderPlaced(1, 1.0))
        for _ in range(1000):
            await asyncio.sleep(0.01)

    with pytest.raises(error):
        asyncio.run(scenario())


@pytest.mark.parametrize("error", LEAVING, ids=lambda e: e.__name__)
def test_redis_broker_s_listener_thread_logs_counts_and_survives_them(
    client: redis.Redis,
    broker: RedisBroker,
    prefix: str,
    error: type[BaseException],
    caplog: pytest.LogCaptureFixture,
) -> None:
    publisher = publisher_for(broker, "orders", OrderPlaced)
    quitter = FunctionalEventSubscriber(raiser(error), with_event_info=False)
    inbox = Inbox()
    publisher.add_subscriber(quitter)
    publisher.add_subscriber(inbox.subscriber)
    broker.wait_until_subscribed(timeout=10)
    publisher.publish(OrderPlaced(1, 1.0))
    publisher.publish(OrderPlaced(2, 1.0))
    assert inbox.wait_for(2) == [OrderPlaced(1, 1.0), OrderPlaced(2, 1.0)]
    assert broker.stats().subscriber_errors == 2
    assert f"{error.__name__}: raised by a handler" in caplog.text


def test_a_flush_waiting_when_the_writer_task_is_cancelled_returns() -> None:
    # What asyncio.run does after a handler's SystemExit ended the loop: it
    # cancels every task at once, the writer's and the one in aclose()'s
    # flush(). Before, that flush() waited forever.
    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis(server=fakeredis.FakeServer())
        broker = AsyncRedisBroker(client, channel_prefix=unique_prefix())
        stuck: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        sender: Any = broker._writer._sender

        async def write(messages: Any) -> None:
            await stuck  # Redis never takes it

        sender.write = write
        broker.publish("orders", OrderPlaced(1, 1.0), "orders", None)
        broker.publish("orders", OrderPlaced(2, 1.0), "orders", None)
        flushing = asyncio.ensure_future(broker.flush())
        await asyncio.sleep(0.05)
        assert not flushing.done()
        writer_task = broker._writer._task
        assert writer_task is not None
        writer_task.cancel()
        await asyncio.wait_for(flushing, 10)
        assert broker.stats().publish_errors == 2
        await broker.aclose()

    run_bounded(scenario, 30)
