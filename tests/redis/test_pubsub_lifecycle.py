"""Pub/Sub brokers' tasks and threads: replaced when they end, released when dropped.

Regression tests of issue 16 (each failed before it): an asyncio listener
task cancelled from outside was never replaced; an ``AsyncRedisBroker``
dropped without ``aclose()`` was never collected and its tasks ran on; a
``RedisBroker`` dropped without ``close()`` said nothing; ``max_queued`` did
not count the events the asyncio writer had on their way.
"""

from __future__ import annotations

import asyncio
import gc
import queue
import re
import warnings
import weakref
from collections.abc import Sequence
from typing import Any

import fakeredis
import pytest
from _redis_support import OrderPlaced, publisher_for, unique_prefix, wait_until
from test_async_broker import Inbox, run
from test_async_broker_writer import Setup
from test_pubsub_sharded_routing import Holder

from eventspype.broker.redis import AsyncRedisBroker, PublishQueueFull, RedisBroker
from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.link import Link, Reply
from eventspype.broker.redis.pubsub.listener import Listener
from eventspype.broker.redis.pubsub.subscribing import Subscription


def assert_warned(caught: list[warnings.WarningMessage], pattern: str) -> None:
    """A ``ResourceWarning`` matching ``pattern`` was caught."""
    messages = [str(w.message) for w in caught if w.category is ResourceWarning]
    assert any(re.search(pattern, m) for m in messages), messages


def test_a_cancelled_listener_task_is_replaced_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        prefix = unique_prefix()
        broker = AsyncRedisBroker(
            fakeredis.FakeAsyncRedis(server=server), channel_prefix=prefix
        )
        broker.register_event_class(OrderPlaced)
        first, second = Inbox(), Inbox()
        publisher_for(broker, "a", OrderPlaced).add_subscriber(first.subscriber)
        await broker.wait_until_subscribed()
        task = broker._listener._task
        assert task is not None
        task.cancel()  # from outside: nothing of the broker's did it
        await asyncio.sleep(0.05)

        # A new channel is subscribed, by a new task; the old channel too.
        publisher_for(broker, "b", OrderPlaced).add_subscriber(second.subscriber)
        await broker.wait_until_subscribed(timeout=5)
        await broker.publish_async("A", OrderPlaced(1, 1.0), "A", None)
        await broker.publish_async("B", OrderPlaced(2, 1.0), "B", None)
        assert await first.wait_for(1) == [OrderPlaced(1, 1.0)]
        assert await second.wait_for(1) == [OrderPlaced(2, 1.0)]
        assert broker.stats().listener_restarts == 1
        await broker.aclose()

    run(scenario)
    assert "Redis listener task had ended; starting a new one" in caplog.text


def test_an_async_broker_dropped_without_aclose_is_collected_and_stops() -> None:
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        client = fakeredis.FakeAsyncRedis(server=server)
        broker = AsyncRedisBroker(client, channel_prefix=unique_prefix())
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        publisher = publisher_for(broker, "a", OrderPlaced)
        publisher.add_subscriber(inbox.subscriber)
        await broker.wait_until_subscribed()
        await publisher.publish_async(OrderPlaced(1, 1.0))
        await inbox.wait_for(1)
        tasks = [broker._listener._task, broker._writer._task]
        assert all(task is not None and not task.done() for task in tasks)
        inbox.items.clear()  # they name the broker as caller
        dropped = weakref.ref(broker)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            del broker, publisher
            gc.collect()
        assert_warned(caught, r"AsyncRedisBroker\(.*aclose")
        assert dropped() is None
        await asyncio.sleep(0.05)
        assert all(task is not None and task.done() for task in tasks)

    run(scenario)


def test_a_redis_broker_dropped_without_close_warns_naming_its_thread() -> None:
    server = fakeredis.FakeServer()
    broker = RedisBroker(
        fakeredis.FakeRedis(server=server), channel_prefix=unique_prefix()
    )
    broker.register_event_class(OrderPlaced)
    inbox = Inbox()
    publisher_for(broker, "a", OrderPlaced).add_subscriber(inbox.subscriber)
    thread = broker._listener._thread
    assert thread is not None
    dropped = weakref.ref(broker)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        del broker
        gc.collect()
    assert_warned(caught, r"RedisBroker\(.*listener thread.*eventspype-redis-listener")
    assert dropped() is None
    thread.join(5)
    assert not thread.is_alive()


def test_max_queued_counts_the_events_awaiting_their_reply() -> None:
    async def scenario() -> None:
        async with Setup(max_queued=5) as setup:
            sender: Any = setup.sender._writer._sender
            gate = asyncio.Event()
            read_replies = sender.read_replies

            async def held_back(count: int) -> None:  # Redis paused, say
                await gate.wait()
                await read_replies(count)

            sender.read_replies = held_back
            for index in range(5):
                setup.publisher.publish(OrderPlaced(index, 1.0))
            await asyncio.sleep(0.05)  # the writer sent them; no reply yet
            assert setup.sender.queued == 0
            with pytest.raises(PublishQueueFull, match="max_queued=5"):
                setup.publisher.publish(OrderPlaced(5, 1.0))
            waiting = asyncio.ensure_future(
                setup.sender.publish_async(
                    "ORDERS", OrderPlaced(6, 1.0), "ORDERS", None
                )
            )
            await asyncio.sleep(0.05)
            assert not waiting.done()  # waits for room, as with a full queue
            gate.set()
            await waiting
            events = await setup.inbox.wait_for(6)
            assert [e.order_id for e in events] == [0, 1, 2, 3, 4, 6]

    run(scenario)


def test_the_thread_listener_and_the_task_share_one_health_rule() -> None:
    # Both drivers build the one protocol with the broker's options.
    async def scenario() -> None:
        server = fakeredis.FakeServer()
        aio = AsyncRedisBroker(
            fakeredis.FakeAsyncRedis(server=server), health_check_interval=3.0
        )
        sync = RedisBroker(
            fakeredis.FakeRedis(server=server), health_check_interval=3.0
        )
        try:
            for broker in (aio, sync):
                proto = broker._listener._proto
                assert (proto.health_check_interval, proto.ping_timeout) == (3.0, 3.0)
        finally:
            sync.close()
            await aio.aclose()

    run(scenario)


_KINDS = {"SUBSCRIBE": b"subscribe", "UNSUBSCRIBE": b"unsubscribe"}


class ScriptedLink(Link):
    """A connection that answers every command at once, as Redis would."""

    def __init__(self) -> None:
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.closed = False

    def open(self) -> None:
        pass

    def send(self, commands: Sequence[tuple[Any, ...]]) -> None:
        for command, *args in commands:
            kind = {"SUBSCRIBE": b"subscribe", "UNSUBSCRIBE": b"unsubscribe"}
            self.replies.put(
                (kind.get(command, b"pong"), args[0] if args else None, None)
            )

    def read(self, timeout: float) -> Reply | None:
        try:
            return self.replies.get(timeout=min(timeout, 0.05))
        except queue.Empty:
            return None

    def interrupt(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


def test_a_channel_wanted_while_the_connection_is_given_back_keeps_its_waiter(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The last UNSUBSCRIBE is confirmed; before the reader gives the unused
    # connection back, subscribe() wants a new channel and sends its
    # SUBSCRIBE there. The connection must stay (it released the new
    # subscriber's waiter as not subscribed: issue 16, seen as a flaky test).
    links: list[ScriptedLink] = []

    def new_link() -> ScriptedLink:
        links.append(ScriptedLink())
        return links[-1]

    handlers = Holder()
    listener = Listener(
        new_link,
        handlers.deliver,
        handlers.tidy,
        Counters(),
        idle_timeout=0.05,
        health_check_interval=5.0,
        reconnect_delay=(0.01, 0.02),
    )
    late: list[Subscription | None] = []
    give_back = Listener._give_back

    def racing(self: Listener, link: Link) -> None:
        late.append(self.add(b"late"))
        self.sync()
        give_back(self, link)

    monkeypatch.setattr(Listener, "_give_back", racing)
    try:
        first = listener.add(b"first")
        listener.sync()
        assert first is not None
        assert first.wait(5)
        listener.remove(b"first")
        listener.sync()
        wait_until(lambda: bool(late))
        waiting = late[0]
        assert waiting is not None
        assert waiting.wait(5)  # confirmed on the connection that was kept
        assert len(links) == 1
        assert not links[0].closed
    finally:
        listener.request_stop()
        listener.join(5)
