"""``with broker.batch():`` and the publish counters."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from typing import Any

import pytest
import redis
from _redis_support import Inbox, OrderPlaced, publish_in_batch, publisher_for

from eventspype.broker.redis import RedisBroker


@pytest.fixture
def orders(broker: RedisBroker) -> tuple[Any, Inbox]:
    publisher = publisher_for(broker, "orders", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    return publisher, inbox


def test_a_batch_is_sent_at_the_end_in_order(
    broker: RedisBroker, orders: tuple[Any, Inbox]
) -> None:
    publisher, inbox = orders
    with broker.batch() as batch:
        for i in range(100):
            publisher.publish(OrderPlaced(i, float(i)))
        assert batch.pending == 100
        assert broker.stats().published == 0
    assert batch.pending == 0
    assert broker.stats().published == 100
    assert inbox.wait_for(100) == [OrderPlaced(i, float(i)) for i in range(100)]


def test_a_batch_is_one_round_trip(
    broker: RedisBroker, orders: tuple[Any, Inbox], monkeypatch: pytest.MonkeyPatch
) -> None:
    publisher, inbox = orders
    sends: list[int] = []
    original = broker._transport._send

    def counting(packed: bytes, replies: int) -> None:
        sends.append(replies)
        original(packed, replies)

    monkeypatch.setattr(broker._transport, "_send", counting)
    with broker.batch():
        for i in range(10):
            publisher.publish(OrderPlaced(i, 0.0))
    assert sends == [10]
    inbox.wait_for(10)


def test_nested_batches_join_the_outermost(
    broker: RedisBroker, orders: tuple[Any, Inbox]
) -> None:
    publisher, inbox = orders
    with broker.batch():
        publisher.publish(OrderPlaced(1, 0.0))
        with broker.batch():
            publisher.publish(OrderPlaced(2, 0.0))
        assert broker.stats().published == 0
    assert broker.stats().published == 2
    assert [e.order_id for e in inbox.wait_for(2)] == [1, 2]


def test_a_raising_block_sends_nothing(
    broker: RedisBroker, orders: tuple[Any, Inbox]
) -> None:
    publisher, inbox = orders

    def abort() -> None:
        with broker.batch():
            publisher.publish(OrderPlaced(1, 0.0))
            raise KeyError("abort")

    with pytest.raises(KeyError):
        abort()
    publisher.publish(OrderPlaced(2, 0.0))
    assert [e.order_id for e in inbox.wait_for(1)] == [2]
    assert broker.stats().published == 1


def test_an_empty_batch_sends_nothing(broker: RedisBroker) -> None:
    with broker.batch():
        pass
    assert broker.stats().published == 0


def test_batches_are_per_thread(broker: RedisBroker, orders: tuple[Any, Inbox]) -> None:
    publisher, inbox = orders
    with broker.batch():
        publisher.publish(OrderPlaced(1, 0.0))
        worker = threading.Thread(target=publisher.publish, args=(OrderPlaced(2, 0.0),))
        worker.start()
        worker.join()
        # The other thread's event went out at once.
        assert [e.order_id for e in inbox.wait_for(1)] == [2]
    assert [e.order_id for e in inbox.wait_for(2)] == [2, 1]


def test_batches_are_per_asyncio_task(
    broker: RedisBroker, orders: tuple[Any, Inbox]
) -> None:
    # Tasks interleave on one thread: a plain publish() of another task must
    # not join this task's batch (and be dropped with it when it raises).
    publisher, inbox = orders

    async def scenario() -> None:
        in_batch, other_done = asyncio.Event(), asyncio.Event()

        async def batching() -> None:
            with contextlib.suppress(KeyError), broker.batch():
                publisher.publish(OrderPlaced(1, 0.0))
                in_batch.set()
                await other_done.wait()
                raise KeyError("abort")

        async def other() -> None:
            await in_batch.wait()
            publisher.publish(OrderPlaced(2, 0.0))
            other_done.set()

        await asyncio.gather(batching(), other())

    asyncio.run(scenario())
    assert [e.order_id for e in inbox.wait_for(1)] == [2]
    assert broker.stats().published == 1


def test_a_task_started_in_a_batch_is_not_in_it(
    broker: RedisBroker, orders: tuple[Any, Inbox]
) -> None:
    # It inherits the context, but may outlive the block: its events would
    # be held by a batch that has already been sent.
    publisher, inbox = orders

    async def scenario() -> None:
        async def child() -> None:
            publisher.publish(OrderPlaced(2, 0.0))

        with broker.batch():
            publisher.publish(OrderPlaced(1, 0.0))
            await asyncio.create_task(child())
            assert broker.stats().published == 1  # the child's, at once

    asyncio.run(scenario())
    assert [e.order_id for e in inbox.wait_for(2)] == [2, 1]


def test_concurrent_publishers_all_get_through(
    broker: RedisBroker, orders: tuple[Any, Inbox]
) -> None:
    publisher, inbox = orders

    def work(base: int) -> None:
        for i in range(50):
            publisher.publish(OrderPlaced(base + i, 0.0))

    threads = [threading.Thread(target=work, args=(n * 1000,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(e.order_id for e in inbox.wait_for(200)) == sorted(
        n * 1000 + i for n in range(4) for i in range(50)
    )
    assert broker.stats().published == 200


def test_a_refused_command_raises_and_is_counted(
    broker: RedisBroker, client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An error reply (not a connection problem) must surface too.
    monkeypatch.setattr(
        "eventspype.broker.redis._io.transport.pack_publish",
        lambda channel, message: b"*1\r\n$11\r\nNOSUCHCMD42\r\n",
    )
    publisher = publisher_for(broker, "orders", OrderPlaced)
    with pytest.raises(redis.ResponseError):
        publisher.publish(OrderPlaced(1, 0.0))
    with pytest.raises(redis.ResponseError):
        publish_in_batch(broker, publisher, [OrderPlaced(2, 0.0), OrderPlaced(3, 0.0)])
    assert broker.stats().publish_errors == 2
    assert broker.stats().published == 0
    monkeypatch.undo()
    publisher.publish(OrderPlaced(4, 0.0))  # the connection is still in sync
    assert broker.stats().published == 1


class _Pipeline:
    def __init__(self, client: Any, error: Exception | None) -> None:
        self.client, self.error, self.sent = client, error, []

    def publish(self, channel: bytes, message: bytes) -> None:
        if self.error is not None:
            raise self.error
        self.sent.append((channel, message))

    def execute(self) -> None:
        self.client.published.extend(self.sent)


class _Client:
    """Just enough of a client for ClientTransport."""

    def __init__(self, pipeline_error: Exception | None) -> None:
        self.pipeline_error = pipeline_error
        self.published: list[tuple[bytes, bytes]] = []
        self.pipelines = 0

    def pipeline(self, transaction: bool) -> _Pipeline:
        self.pipelines += 1
        return _Pipeline(self, self.pipeline_error)

    def publish(self, channel: bytes, message: bytes) -> None:
        self.published.append((channel, message))


def test_a_cluster_pipeline_refusing_publish_is_said_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from redis.exceptions import RedisClusterException

    from eventspype.broker.redis._io.transport import ClientTransport

    caplog.set_level(logging.INFO, logger="eventspype.broker.redis")
    client = _Client(RedisClusterException("PUBLISH is blocked in pipelines"))
    transport = ClientTransport(client)
    transport.publish_many([(b"a", b"1"), (b"b", b"2")])
    transport.publish_many([(b"c", b"3")])
    assert client.published == [(b"a", b"1"), (b"b", b"2"), (b"c", b"3")]
    assert client.pipelines == 1  # not tried again
    assert caplog.text.count("refuse PUBLISH") == 1


def test_other_pipeline_errors_propagate_and_keep_pipelining() -> None:
    from eventspype.broker.redis._io.transport import ClientTransport

    client = _Client(redis.ConnectionError("down"))
    transport = ClientTransport(client)
    with pytest.raises(redis.ConnectionError):
        transport.publish_many([(b"a", b"1")])
    client.pipeline_error = None
    transport.publish_many([(b"b", b"2")])
    assert client.pipelines == 2  # still pipelined
    assert client.published == [(b"b", b"2")]
