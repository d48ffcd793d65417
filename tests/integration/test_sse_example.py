"""examples/sse_app.py through ASGI test clients (httpx and Starlette's).

Starlette and httpx are test and docs dependencies only. Each test loads a
fresh copy of the example module, so closing its feed concerns that test only.
"""

from __future__ import annotations

import asyncio
import importlib.util
import sys
import threading
import time
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("starlette")
httpx = pytest.importorskip("httpx")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sse_app.py"
PATIENCE = 10.0  # only reached when something is lost; never asserted on


def load_example() -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"sse_app_{id(object())}", EXAMPLE)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def messages(body: str) -> list[tuple[str, str]]:
    """(event, data) of each SSE message, comments left out."""
    found = []
    for chunk in body.split("\n\n"):
        fields = dict(
            line.split(": ", 1) for line in chunk.splitlines() if ": " in line
        )
        if "event" in fields:
            found.append((fields["event"], fields["data"]))
    return found


async def until(condition: Any) -> None:
    deadline = time.monotonic() + PATIENCE
    while not condition():
        assert time.monotonic() < deadline, "condition never became true"
        await asyncio.sleep(0.01)


def test_every_client_gets_every_event_in_order() -> None:
    sse = load_example()

    async def scenario() -> list[Any]:
        transport = httpx.ASGITransport(app=sse.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as c:
            streams = [
                asyncio.ensure_future(c.get("/events?limit=3")) for _ in range(2)
            ]
            await until(lambda: sse.feed.consumer_count == 2)
            reply = await c.post("/prices", json={"symbol": "ACME", "price": 1})
            assert reply.json() == {"clients": 2}
            # Published by other code of the process, from another thread.
            thread = threading.Thread(
                target=sse.prices.publish, args=(sse.PriceChanged("ACME", 2.5),)
            )
            thread.start()
            thread.join(PATIENCE)
            await c.post("/prices", json={"symbol": "INIT", "price": "3"})
            responses = await asyncio.gather(*streams)
        # Each stream ended at its limit and unsubscribed its queue.
        assert sse.feed.consumer_count == 0
        return responses

    responses = asyncio.run(scenario())
    expected = [
        ("PRICE_CHANGED", '{"symbol": "ACME", "price": 1.0}'),
        ("PRICE_CHANGED", '{"symbol": "ACME", "price": 2.5}'),
        ("PRICE_CHANGED", '{"symbol": "INIT", "price": 3.0}'),
    ]
    for response in responses:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert messages(response.text) == expected


# Starlette 1.x suggests httpx2 for its TestClient; httpx still works.
@pytest.mark.filterwarnings("ignore:Using .httpx. with")
def test_closing_the_feed_ends_open_streams_and_shutdown_closes_it() -> None:
    from starlette.testclient import TestClient

    sse = load_example()
    with TestClient(sse.app) as client:
        with client.stream("GET", "/events") as response:  # no limit
            lines = response.iter_lines()
            assert next(lines) == ": connected"
            deadline = time.monotonic() + PATIENCE
            while sse.feed.consumer_count == 0:
                assert time.monotonic() < deadline, "the client never subscribed"
                time.sleep(0.01)
            client.post("/prices", json={"symbol": "ACME", "price": 7})
            sse.feed.close()  # what the lifespan does at shutdown
            body = "\n".join(lines)  # ends: the stream is over
        assert messages(body) == [("PRICE_CHANGED", '{"symbol": "ACME", "price": 7.0}')]
    assert sse.feed.consumer_count == 0


@pytest.mark.filterwarnings("ignore:Using .httpx. with")
def test_the_lifespan_closes_the_feed_at_shutdown() -> None:
    from starlette.testclient import TestClient

    sse = load_example()
    with TestClient(sse.app):
        assert not sse.feed.closed
    assert sse.feed.closed


def test_a_client_that_stops_reading_loses_events_counted_not_others() -> None:
    sse = load_example()
    queue_size = 100  # the example's max_queue_size

    async def scenario() -> tuple[int, int]:
        stuck = sse.feed.subscribe_consumer()  # a client that never reads
        for i in range(queue_size + 5):
            sse.prices.publish(sse.PriceChanged("ACME", float(i)))  # never blocks
        await until(lambda: stuck.qsize() == queue_size)
        return sse.feed.dropped, stuck.qsize()

    assert asyncio.run(scenario()) == (5, 100)
