"""The delivery context a broker sets around each subscriber call."""

from __future__ import annotations

import asyncio
import threading

from eventspype import AsyncFunctionalEventSubscriber, Delivery, current_delivery
from eventspype.delivery import delivering


def test_outside_a_delivery_there_is_none() -> None:
    assert current_delivery() is None


def test_delivering_sets_and_restores_even_when_nested() -> None:
    outer = Delivery(channel="a", system="redis", message_id="1-0", delivery_count=2)
    inner = Delivery(channel="b", system="redis")
    with delivering(outer):
        assert current_delivery() is outer
        with delivering(inner):
            assert current_delivery() is inner
        assert current_delivery() is outer
    assert current_delivery() is None


def test_delivering_restores_after_an_exception() -> None:
    try:
        with delivering(Delivery(channel="a", system="redis")):
            raise KeyError("x")
    except KeyError:
        pass
    assert current_delivery() is None


def test_another_thread_does_not_see_this_thread_s_delivery() -> None:
    seen: list[Delivery | None] = []
    with delivering(Delivery(channel="a", system="redis")):
        thread = threading.Thread(target=lambda: seen.append(current_delivery()))
        thread.start()
        thread.join()
    assert seen == [None]


def test_a_task_keeps_the_delivery_it_was_created_under() -> None:
    async def main() -> list[str | None]:
        async def handler() -> str | None:
            await asyncio.sleep(0)
            d = current_delivery()
            return d.message_id if d else None

        tasks = []
        for i in range(3):
            with delivering(Delivery(channel="c", system="redis", message_id=str(i))):
                tasks.append(asyncio.ensure_future(handler()))
        return list(await asyncio.gather(*tasks))

    assert asyncio.run(main()) == ["0", "1", "2"]


def test_headers_default_to_an_empty_read_only_mapping() -> None:
    d = Delivery(channel="a", system="redis")
    assert dict(d.headers) == {}
    assert d.delivery_count == 1
    assert d.message_id is None
    assert d.group is None


def test_a_coroutine_subscriber_sees_the_delivery_each_event_was_scheduled_under() -> (
    None
):
    # One worker task handles the backlog (max_concurrency=1): it was started
    # under the first delivery, yet each handler call sees its own, through
    # call() (what brokers use) and call_async() alike; none leaks outside.
    async def main() -> tuple[list[str | None], Delivery | None]:
        seen: list[str | None] = []

        async def handler(event: int) -> None:
            await asyncio.sleep(0)
            d = current_delivery()
            seen.append(d.message_id if d else None)

        subscriber = AsyncFunctionalEventSubscriber(handler, with_event_info=False)
        for i in range(3):
            with delivering(Delivery(channel="c", system="redis", message_id=str(i))):
                subscriber.call(i, "TAG", None)
        subscriber.call(3, "TAG", None)  # no delivery: none seen
        with delivering(Delivery(channel="c", system="redis", message_id="4")):
            await subscriber.call_async(4, "TAG", None)
        await subscriber.drain()
        return seen, current_delivery()

    seen, after = asyncio.run(main())
    assert seen == ["0", "1", "2", None, "4"]
    assert after is None
