"""AsyncRedisBroker's writer sends at once when idle (real Redis).

An idle writer's ``publish()`` and ``publish_async()`` write the message to
the socket from the call (no loop turn through the writer task); the rest of
that loop turn still goes in one pipeline. The shortcut reads redis-py's
private ``Connection._reader`` / ``_writer``: these tests fail if a redis-py
release renames them (the broker would still work, the slow way).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import redis.asyncio
from _redis_support import (
    REDIS_URL,
    OrderPlaced,
    publisher_for,
    require_real_redis,
    unique_prefix,
)
from test_async_broker import Inbox, run

from eventspype.broker.redis import AsyncRedisBroker
from eventspype.broker.redis.pubsub.aio_senders import ConnectionSender


def test_redis_py_connections_still_hold_asyncio_streams() -> None:
    require_real_redis()

    async def scenario() -> None:
        client = redis.asyncio.Redis.from_url(REDIS_URL)
        connection = client.connection_pool.make_connection()
        await connection.connect()
        try:
            assert isinstance(connection._reader, asyncio.StreamReader)
            assert isinstance(connection._writer, asyncio.StreamWriter)
            sender = ConnectionSender(connection)
            assert sender.write_now(b"%sx" % unique_prefix().encode(), b"m")
            await sender.read_replies(1)  # the reply of a real PUBLISH
        finally:
            await connection.disconnect()
            await (getattr(client, "aclose", None) or client.close)()

    run(scenario)


def test_an_idle_writer_sends_at_once_and_a_burst_still_goes_in_one_pipeline() -> None:
    require_real_redis()

    async def scenario() -> None:
        prefix = unique_prefix()
        receiver = AsyncRedisBroker.from_url(REDIS_URL, channel_prefix=prefix)
        receiver.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher_for(receiver, "orders", OrderPlaced).add_subscriber(inbox.subscriber)
        sender = AsyncRedisBroker.from_url(REDIS_URL, channel_prefix=prefix)
        publisher = publisher_for(sender, "orders", OrderPlaced)
        transport: Any = sender._writer._sender
        batches: list[int] = []
        direct: list[bool] = []
        write, write_now = transport.write, transport.write_now

        async def counting(messages: Sequence[tuple[bytes, bytes]]) -> None:
            batches.append(len(messages))
            await write(messages)

        def counting_now(channel: bytes, message: bytes) -> bool:
            direct.append(write_now(channel, message))
            return bool(direct[-1])

        transport.write, transport.write_now = counting, counting_now
        try:
            await receiver.wait_until_subscribed()
            await sender.publish_async("ORDERS", OrderPlaced(0, 1.0), "ORDERS", None)
            assert batches == [1]  # the first opens the connection, the slow way
            for index in range(1, 4):  # idle between events: each goes at once
                publisher.publish(OrderPlaced(index, 1.0))
                await sender.flush()
                await sender.publish_async(
                    "ORDERS", OrderPlaced(index + 100, 1.0), "ORDERS", None
                )
            assert batches == [1]
            assert direct == [True] * 6
            for index in range(4, 304):  # one loop turn
                publisher.publish(OrderPlaced(index, 1.0))
            await sender.flush()
            assert batches == [1, 299]
            assert direct == [True] * 7
            events = await inbox.wait_for(307)
            expected = [0] + [n for i in range(1, 4) for n in (i, i + 100)]
            assert [e.order_id for e in events] == expected + list(range(4, 304))
            stats = sender.stats()
            assert (stats.published, stats.publish_errors) == (307, 0)
        finally:
            await sender.aclose()
            await receiver.aclose()

    run(scenario)
