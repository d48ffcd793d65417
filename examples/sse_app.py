"""Server-Sent Events: stream published events to HTTP clients (Starlette).

    pip install eventspype-core starlette uvicorn
    uvicorn examples.sse_app:app          # then: curl -N localhost:8000/events
    python examples/sse_app.py            # a self-contained run (needs httpx)

One ``QueueEventSubscriber`` (``feed``) is subscribed to the publisher; every
HTTP client iterates over it with ``async for`` and so gets its own bounded
queue: a slow client loses events (counted in ``feed.dropped``) instead of
slowing the publisher or the other clients. ``POST /prices`` publishes with
``await publish_async``; any other code of the process may publish too, from
any thread. Closing the feed at shutdown ends every stream.

The publisher is in-process here; give it a broker (``RedisBroker``,
``AsyncRedisBroker``) and the stream carries events from other processes.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, StreamingResponse
from starlette.routing import Route

from eventspype import EventPublication, EventPublisher, QueueEventSubscriber


@dataclass
class PriceChanged:
    symbol: str
    price: float


PRICE_CHANGED = EventPublication("price_changed", PriceChanged)
prices = EventPublisher(PRICE_CHANGED)
# Held here: publishers hold subscribers weakly.
feed = QueueEventSubscriber(max_queue_size=100)
prices.add_subscriber(feed)


def sse_message(item: dict[str, Any]) -> str:
    """One event as an SSE message: the tag as ``event:``, the data as JSON."""
    return f"event: {item['event_tag']}\ndata: {json.dumps(item['data'])}\n\n"


async def events(request: Request) -> StreamingResponse:
    """``GET /events[?limit=N]``: the stream; it ends after ``limit`` events
    (if given), when the client goes away, or at shutdown."""
    limit = int(request.query_params.get("limit", 0))

    async def stream() -> AsyncIterator[str]:
        yield ": connected\n\n"  # a comment line: the client sees the stream open
        sent = 0
        # aclosing: leaving the loop early unsubscribes this client at once.
        async with aclosing(aiter(feed)) as items:
            async for item in items:
                yield sse_message(item)
                sent += 1
                if sent == limit:
                    break

    return StreamingResponse(stream(), media_type="text/event-stream")


async def publish_price(request: Request) -> JSONResponse:
    """``POST /prices`` with ``{"symbol": ..., "price": ...}``."""
    body = await request.json()
    await prices.publish_async(PriceChanged(body["symbol"], float(body["price"])))
    return JSONResponse({"clients": feed.consumer_count})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    yield
    feed.close()  # ends every open stream


app = Starlette(
    routes=[
        Route("/events", events),
        Route("/prices", publish_price, methods=["POST"]),
    ],
    lifespan=lifespan,
)


async def demo() -> None:
    """One client streams three events published through the HTTP API."""
    import httpx

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sse") as client:
        listening = asyncio.ensure_future(client.get("/events?limit=3"))
        while feed.consumer_count == 0:  # until the client is subscribed
            await asyncio.sleep(0.01)
        for symbol, price in [("ACME", 10.5), ("ACME", 11.0), ("INIT", 3.25)]:
            await client.post("/prices", json={"symbol": symbol, "price": price})
        response = await listening
    print(response.headers["content-type"])
    print(response.text, end="")


if __name__ == "__main__":
    asyncio.run(demo())
