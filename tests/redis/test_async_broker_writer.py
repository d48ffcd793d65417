"""AsyncRedisBroker's writer: batching per loop turn, the bounded queue, failures,
cancellation (fakeredis: no server needed; the real-server versions with a
private redis-server are in tests/integration/test_async_redis_faults.py)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

import fakeredis
import pytest
import redis
import redis.asyncio
from _redis_support import OrderPlaced, publisher_for, unique_prefix
from test_async_broker import Inbox, run

from eventspype.broker.redis import AsyncRedisBroker, PublishQueueFull


class Setup:
    """A fakeredis server, a receiving broker and a sending one (in a scenario)."""

    def __init__(self, **sender_options: Any) -> None:
        self.server = fakeredis.FakeServer()
        self.prefix = unique_prefix()
        self.receiver = AsyncRedisBroker(self.client(), channel_prefix=self.prefix)
        self.receiver.register_event_class(OrderPlaced)
        self.inbox = Inbox()
        publisher_for(self.receiver, "orders", OrderPlaced).add_subscriber(
            self.inbox.subscriber
        )
        self.sender = AsyncRedisBroker(
            self.client(), channel_prefix=self.prefix, **sender_options
        )
        self.publisher = publisher_for(self.sender, "orders", OrderPlaced)
        self.batches: list[int] = []
        sender: Any = self.sender._writer._sender
        write = sender.write

        async def counting(messages: Sequence[tuple[bytes, bytes]]) -> None:
            self.batches.append(len(messages))
            await write(messages)

        sender.write = counting

    def client(self) -> redis.asyncio.Redis:
        return fakeredis.FakeAsyncRedis(server=self.server)

    async def __aenter__(self) -> Setup:
        await self.receiver.wait_until_subscribed()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.connected = True
        await self.sender.aclose()
        await self.receiver.aclose()


def test_events_of_one_loop_turn_go_in_one_pipeline() -> None:
    async def scenario() -> None:
        async with Setup() as setup:
            for index in range(300):
                setup.publisher.publish(OrderPlaced(index, 1.0))
            await setup.sender.flush()
            for index in range(300, 310):
                setup.publisher.publish(OrderPlaced(index, 1.0))
            await setup.sender.flush()
            assert setup.batches == [300, 10]
            events = await setup.inbox.wait_for(310)
            assert events == [OrderPlaced(i, 1.0) for i in range(310)]
            assert setup.sender.stats().published == 310

    run(scenario)


def test_publish_and_publish_async_keep_their_order() -> None:
    async def scenario() -> None:
        async with Setup() as setup:
            setup.publisher.publish(OrderPlaced(1, 1.0))
            await setup.sender.publish_async(
                "ORDERS", OrderPlaced(2, 1.0), "ORDERS", None
            )
            setup.publisher.publish(OrderPlaced(3, 1.0))
            await setup.sender.flush()
            assert [e.order_id for e in await setup.inbox.wait_for(3)] == [1, 2, 3]

    run(scenario)


def test_a_full_queue_refuses_publish_and_counts_it() -> None:
    async def scenario() -> None:
        async with Setup(max_queued=5) as setup:
            for index in range(5):
                setup.publisher.publish(OrderPlaced(index, 1.0))
            with pytest.raises(PublishQueueFull, match="max_queued=5"):
                setup.publisher.publish(OrderPlaced(5, 1.0))
            assert isinstance(PublishQueueFull(), asyncio.QueueFull)
            assert setup.sender.stats().publish_errors == 1
            await setup.sender.flush()
            setup.publisher.publish(OrderPlaced(6, 1.0))  # room again
            await setup.sender.flush()
            events = await setup.inbox.wait_for(6)
            assert [e.order_id for e in events] == [0, 1, 2, 3, 4, 6]
            assert setup.sender.stats().published == 6

    run(scenario)


def test_publish_async_waits_for_room_in_a_full_queue() -> None:
    async def scenario() -> None:
        async with Setup(max_queued=3) as setup:
            for index in range(3):
                setup.publisher.publish(OrderPlaced(index, 1.0))
            waiting = asyncio.ensure_future(
                setup.sender.publish_async(
                    "ORDERS", OrderPlaced(3, 1.0), "ORDERS", None
                )
            )
            await waiting  # no PublishQueueFull: it waited for the writer
            events = await setup.inbox.wait_for(4)
            assert [e.order_id for e in events] == [0, 1, 2, 3]
            assert setup.sender.stats().publish_errors == 0

    run(scenario)


def test_an_outage_raises_from_publish_async_and_is_logged_for_publish(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        async with Setup() as setup:
            await setup.sender.publish_async(
                "ORDERS", OrderPlaced(1, 1.0), "ORDERS", None
            )
            setup.server.connected = False
            with pytest.raises(redis.ConnectionError):
                await setup.sender.publish_async(
                    "ORDERS", OrderPlaced(2, 1.0), "ORDERS", None
                )
            setup.publisher.publish(OrderPlaced(3, 1.0))
            setup.publisher.publish(OrderPlaced(4, 1.0))
            await setup.sender.flush()
            assert setup.sender.stats().publish_errors == 3
            setup.server.connected = True
            # The writer's connection is usable again, without any help.
            await setup.sender.publish_async(
                "ORDERS", OrderPlaced(5, 1.0), "ORDERS", None
            )
            events = await setup.inbox.wait_for(2)
            assert [e.order_id for e in events] == [1, 5]
            assert setup.sender.stats().published == 2

    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        run(scenario)
    assert "2 published event(s) not sent to Redis (ConnectionError" in caplog.text


def test_cancelled_before_sending_is_not_sent() -> None:
    async def scenario() -> None:
        async with Setup() as setup:
            task = asyncio.ensure_future(
                setup.sender.publish_async(
                    "ORDERS", OrderPlaced(1, 1.0), "ORDERS", None
                )
            )
            await asyncio.sleep(0)  # queued, the writer has not run yet
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            await setup.sender.publish_async(
                "ORDERS", OrderPlaced(2, 1.0), "ORDERS", None
            )
            events = await setup.inbox.wait_for(1)
            await asyncio.sleep(0.05)
            assert [e.order_id for e in setup.inbox.events] == [2]
            assert events[0].order_id == 2
            assert setup.sender.stats().published == 1

    run(scenario)


def test_cancelled_while_in_flight_leaves_the_connection_usable() -> None:
    async def scenario() -> None:
        async with Setup() as setup:
            gate = asyncio.Event()
            in_flight = asyncio.Event()
            sender: Any = setup.sender._writer._sender
            write = sender.write

            async def slow(messages: Sequence[tuple[bytes, bytes]]) -> None:
                in_flight.set()
                await gate.wait()
                await write(messages)

            sender.write = slow
            task = asyncio.ensure_future(
                setup.sender.publish_async(
                    "ORDERS", OrderPlaced(1, 1.0), "ORDERS", None
                )
            )
            await in_flight.wait()
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            gate.set()
            # Sent anyway (it had left the queue), and the next one works.
            await setup.sender.publish_async(
                "ORDERS", OrderPlaced(2, 1.0), "ORDERS", None
            )
            events = await setup.inbox.wait_for(2)
            assert [e.order_id for e in events] == [1, 2]

    run(scenario)


def test_fast_publish_off_and_subclassed_clients_use_the_clients_pipeline() -> None:
    class InstrumentedRedis(fakeredis.FakeAsyncRedis):  # type: ignore[misc]
        pipelines = 0

        def pipeline(self, *args: Any, **kwargs: Any) -> Any:
            InstrumentedRedis.pipelines += 1
            return super().pipeline(*args, **kwargs)

    async def scenario() -> None:
        server = fakeredis.FakeServer()
        prefix = unique_prefix()
        receiver = AsyncRedisBroker(
            fakeredis.FakeAsyncRedis(server=server), channel_prefix=prefix
        )
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher_for(receiver, "orders", OrderPlaced).add_subscriber(inbox.subscriber)
        await receiver.wait_until_subscribed()
        client = InstrumentedRedis(server=server, socket_timeout=5)
        for sender in (
            AsyncRedisBroker(client, channel_prefix=prefix),
            AsyncRedisBroker(
                fakeredis.FakeAsyncRedis(server=server, socket_timeout=5),
                channel_prefix=prefix,
                fast_publish=False,
            ),
        ):
            publisher = publisher_for(sender, "orders", OrderPlaced)
            publisher.publish(OrderPlaced(1, 1.0))
            publisher.publish(OrderPlaced(2, 1.0))
            await sender.publish_async("ORDERS", OrderPlaced(3, 1.0), "ORDERS", None)
            await sender.aclose()
        assert InstrumentedRedis.pipelines == 1  # one turn, one pipeline
        events = await inbox.wait_for(6)
        assert [e.order_id for e in events] == [1, 2, 3, 1, 2, 3]
        await receiver.aclose()

    run(scenario)


def test_events_queued_when_the_loop_ends_without_aclose_are_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = fakeredis.FakeServer()

    async def scenario() -> AsyncRedisBroker:
        broker = AsyncRedisBroker(fakeredis.FakeAsyncRedis(server=server))
        gate = asyncio.Event()

        async def stuck(messages: Sequence[tuple[bytes, bytes]]) -> None:
            await gate.wait()

        sender: Any = broker._writer._sender
        sender.write = stuck
        for index in range(3):
            broker.publish("ORDERS", OrderPlaced(index, 1.0), "ORDERS", None)
        await asyncio.sleep(0)  # the writer took the first batch and is stuck
        for index in range(3, 5):
            broker.publish("ORDERS", OrderPlaced(index, 1.0), "ORDERS", None)
        return broker  # asyncio.run cancels the writer task

    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        broker = asyncio.run(scenario())
    assert broker.stats().publish_errors == 5
    assert (
        "5 published event(s) not sent to Redis "
        "(RuntimeError: the writer task was cancelled)" in caplog.text
    )


def test_a_client_without_socket_timeout_is_warned_about() -> None:
    async def scenario() -> None:
        client = fakeredis.FakeAsyncRedis(socket_timeout=None)
        with pytest.warns(RuntimeWarning, match="socket_timeout"):
            broker = AsyncRedisBroker(client, fast_publish=False)
        await broker.aclose()

    run(scenario)
