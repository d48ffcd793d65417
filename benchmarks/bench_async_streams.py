"""AsyncRedisStreamBroker against a raw redis.asyncio Streams loop, on a loopback Redis.

    python benchmarks/bench_async_streams.py [--redis-url URL] [--events 20000]
                                             [--json PATH]

A consumer runs in a subprocess and this process publishes on an asyncio loop.
Both sides have coroutine subscribers. The raw loop does the job by hand:
``await client.xadd(...)`` of pre-encoded envelopes (``MAXLEN ~``), one round
trip per event; the consumer ``XREADGROUP COUNT 100 BLOCK 1000``, awaits a
coroutine handler per entry, then XACKs the batch. eventspype does it with an
``EventPublisher`` on an ``AsyncRedisStreamBroker`` (``publish()`` queues, a
writer task sends what one loop turn queued in one pipeline) and an
``AsyncFunctionalEventSubscriber`` on the consumer's broker (decoding, checks,
the coroutine awaited, then the acknowledgement). Raw and eventspype alternate
round by round:

- burst: ``--events`` events published as fast as the loop goes (the
  eventspype side yields to the loop every 1,000 events), first publish to
  last receipt, best of 3;
- latency: events paced at 2,000/s for 3 s, p50/p99 publish-to-receipt,
  median of 3 runs; evenly (one every 0.5 ms, on a loop with microsecond
  timers: ``_timing.run_precise``), and two at a time every 1 ms (what an
  asyncio loop on epoll, whose timers are whole milliseconds, makes of
  2,000/s; the second of a pair waits for the consumer to finish the first);
- reading one ack + ``XREADGROUP`` reply (one entry, RESP3): redis-py's
  asyncio parser and response callback against the consumer's, the one RESP
  reader (``_io.resp_reader``, kept only while it wins), best of 5;
- kill -9 (eventspype only): 10,000 events, two consumer processes of one
  group with coroutine subscribers that log each event before returning; one
  is killed with SIGKILL after 1,000 events; the survivor claims what the
  victim held. Reports events lost (must be 0) and handled twice.

Targets (issue 15): burst >= 1.3x raw, p50 <= 1.0x (evenly paced; the pairs
are reported). Only loopback traffic, on
streams with a unique prefix that are deleted afterwards. Exits 0 with a
message when no server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis.asyncio
from _peer import (
    ORDER_PLACED,
    OrderPlaced,
    Peer,
    Receipts,
    command_line,
    raw_payload,
    raw_sent_at,
    unique_prefix,
)
from _timing import (
    Comparison,
    alternate_async,
    best_ns,
    paced_async,
    parser_timings,
    percentiles_ms,
    print_comparison,
    run_precise,
)

from eventspype import AsyncFunctionalEventSubscriber, EventPublisher
from eventspype.broker.redis import AsyncRedisStreamBroker

PACED_RATE = 2000
PACED_SECONDS = 3.0
YIELD_EVERY = 1000
ROUNDS = 3
GROUP = "bench"
MAXLEN = 1_000_000
KILL_EVENTS = 10_000
KILL_AFTER = 1_000
BASELINE = "raw_redis_asyncio"


# --- the consumer subprocess ------------------------------------------------


async def child(mode: str, url: str, prefix: str, count: int) -> None:
    """Join the group, print READY, then one JSON result line; exit.

    ``mode`` is ``<impl>-<scenario>``: impl ``raw`` or ``eventspype``,
    scenario ``count`` or ``latency`` (see ``_peer.Receipts``); or
    ``eventspype-log:<path>``: append each order id to ``path`` (one
    ``write()`` on an ``O_APPEND`` file, before the handler returns) until
    SIGTERM or SIGKILL.
    """
    impl, scenario = mode.split("-", 1)
    stream = f"{prefix}{{ORDER_PLACED}}"
    finished = asyncio.Event()
    on_event = Receipts(scenario, count, finished.set)
    latency = scenario == "latency"

    if impl == "raw":
        client = redis.asyncio.Redis.from_url(url)
        with contextlib.suppress(redis.ResponseError):  # BUSYGROUP
            await client.xgroup_create(stream, GROUP, id="$", mkstream=True)
        consumer = f"raw-{os.getpid()}"

        async def handle(sent_at: float) -> None:  # the coroutine subscriber
            on_event(sent_at)

        print("READY", flush=True)
        while not finished.is_set():
            reply = await client.xreadgroup(
                GROUP, consumer, {stream: ">"}, count=100, block=1000
            )
            for _, entries in reply or []:
                for _, fields in entries:
                    await handle(raw_sent_at(fields[b"event"]) if latency else 0)
                await client.xack(stream, GROUP, *[entry for entry, _ in entries])
        await close(client)
        print(on_event.report())
        return

    broker = AsyncRedisStreamBroker.from_url(
        url, channel_prefix=prefix, group=GROUP, maxlen=MAXLEN, claim_idle=1.0
    )
    broker.register_event_class(OrderPlaced)
    if scenario.startswith("log:"):
        out = os.open(scenario[4:], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

        async def log(event: OrderPlaced) -> None:
            os.write(out, b"%d\n" % event.order_id)
            await asyncio.sleep(0.0002)  # a little I/O: the kill lands mid-stream

        subscriber = AsyncFunctionalEventSubscriber(log, with_event_info=False)
        EventPublisher(ORDER_PLACED, broker=broker).add_subscriber(subscriber)
        await broker.wait_until_subscribed()
        print("READY", flush=True)
        await broker.aserve()
        print(json.dumps({"stats": str(broker.stats())}))
        return

    async def receive(event: OrderPlaced) -> None:
        on_event(event.sent_at)

    subscriber = AsyncFunctionalEventSubscriber(receive, with_event_info=False)
    EventPublisher(ORDER_PLACED, broker=broker).add_subscriber(subscriber)
    await broker.wait_until_subscribed()
    print("READY", flush=True)
    await asyncio.wait_for(finished.wait(), 300)
    await broker.aclose()
    print(on_event.report())


async def close(client: Any) -> None:
    """``aclose()``, or ``close()`` before redis-py 5.0.1 added it."""
    await (getattr(client, "aclose", None) or client.close)()


# --- the parent ---------------------------------------------------------------


def start_consumer(mode: str, url: str, prefix: str, count: int) -> Peer:
    """A consumer subprocess (see :func:`child`)."""
    return Peer(__file__, mode, url, prefix, count)


async def result(peer: Peer, timeout: float = 300) -> dict[str, Any]:
    """The peer's result, awaited without blocking the loop."""
    return await asyncio.to_thread(peer.result, timeout)


class Publisher:
    """Publishes one event at a time, raw or through eventspype."""

    def __init__(self, url: str, prefix: str) -> None:
        self.stream = f"{prefix}{{ORDER_PLACED}}"
        self.raw = redis.asyncio.Redis.from_url(url)
        self.broker = AsyncRedisStreamBroker.from_url(
            url, channel_prefix=prefix, maxlen=MAXLEN
        )
        self.publisher = EventPublisher(ORDER_PLACED, broker=self.broker)

    async def warm_up(self) -> None:
        """Both sides connected before a clock starts."""
        await self.raw.ping()
        await self.broker.publish_async("WARMUP", OrderPlaced(-1, 0, 0), "WARMUP", None)

    async def send_raw(self, payload: bytes) -> None:
        await self.raw.xadd(
            self.stream, {"event": payload}, maxlen=MAXLEN, approximate=True
        )

    async def close(self) -> None:
        await self.raw.delete(self.stream, f"{self.stream}:dead")
        await self.raw.delete(f"{self.broker.stream_key('WARMUP')}")
        await self.broker.aclose()
        await close(self.raw)


async def burst(url: str, impl: str, events: int) -> float:
    prefix = unique_prefix("bench-astreams")
    peer = start_consumer(f"{impl}-count", url, prefix, events)
    side = Publisher(url, prefix)
    items = [OrderPlaced(i, 49.99, 0.0) for i in range(events)]
    payloads = [raw_payload(item) for item in items] if impl == "raw" else []
    await side.warm_up()
    start = time.time()
    if impl == "raw":
        for payload in payloads:
            await side.send_raw(payload)
    else:
        publish = side.publisher.publish
        for index, item in enumerate(items):
            publish(item)
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        await side.broker.flush()
    done = float((await result(peer))["done"])
    await side.close()
    return events / (done - start)


async def latency(url: str, impl: str, together: int = 1) -> tuple[float, float]:
    prefix = unique_prefix("bench-astreams")
    count = int(PACED_RATE * PACED_SECONDS)
    peer = start_consumer(f"{impl}-latency", url, prefix, count)
    side = Publisher(url, prefix)
    await side.warm_up()
    start = asyncio.get_running_loop().time() + 0.05
    async for i in paced_async(count, PACED_RATE, start, together):
        event = OrderPlaced(i, 49.99, time.time())
        if impl == "raw":
            await side.send_raw(raw_payload(event))
        else:
            side.publisher.publish(event)
    latencies = (await result(peer))["latencies"]
    await side.close()
    return percentiles_ms(latencies)


async def kill_nine(url: str) -> tuple[int, int]:
    """(lost, handled twice) when one of two consumers is killed mid-stream."""
    prefix = unique_prefix("bench-astreams")
    with tempfile.TemporaryDirectory() as folder:
        logs = [Path(folder, "victim.log"), Path(folder, "survivor.log")]
        victim, survivor = (
            start_consumer(f"eventspype-log:{log}", url, prefix, 0) for log in logs
        )
        side = Publisher(url, prefix)
        await side.warm_up()
        for index in range(KILL_EVENTS):
            side.publisher.publish(OrderPlaced(index, 49.99, 0.0))
            if index % YIELD_EVERY == YIELD_EVERY - 1:
                await asyncio.sleep(0)
        await side.broker.flush()
        while len(read_log(logs[0])) < KILL_AFTER:
            await asyncio.sleep(0.01)
        victim.process.send_signal(signal.SIGKILL)
        await asyncio.to_thread(victim.process.wait)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            seen = set(read_log(logs[0])) | set(read_log(logs[1]))
            if len(seen) >= KILL_EVENTS:
                break
            await asyncio.sleep(0.05)
        survivor.process.send_signal(signal.SIGTERM)
        await asyncio.to_thread(survivor.process.communicate, None, 60)
        handled = read_log(logs[0]) + read_log(logs[1])
        await side.close()
    lost = KILL_EVENTS - len(set(handled) & set(range(KILL_EVENTS)))
    return lost, len(handled) - len(set(handled))


async def read_timings() -> tuple[float, float]:
    """us to read the replies of one consumer batch (an XACK, an XREADGROUP
    with one entry) from an asyncio stream: redis-py's parser, then ours
    (``_timing.parser_timings``)."""
    from redis._parsers.helpers import parse_xread_resp3

    from eventspype.broker.redis._io.resp_reader import RespReader

    def bulk(data: bytes) -> bytes:
        return b"$%d\r\n%s\r\n" % (len(data), data)

    entry = raw_payload(OrderPlaced(1, 49.99, time.time()))
    stream_name, entry_id = bulk(b"bench:{ORDER_PLACED}"), bulk(b"1765119000123-0")
    fields = b"*2\r\n" + bulk(b"event") + bulk(entry)
    wire = b":1\r\n%1\r\n" + stream_name + b"*1\r\n*2\r\n" + entry_id + fields

    async def theirs(parser: Any, stream: asyncio.StreamReader) -> Any:
        await parser.read_response()
        return parse_xread_resp3(await parser.read_response())

    async def ours(parser: Any, stream: asyncio.StreamReader) -> Any:
        reader = RespReader(skip_pushes=True)
        reader.feed(await stream.read(1 << 16))
        return parse_xread_resp3(reader.replies()[1])

    return await parser_timings(wire, theirs, ours)


def pack_timings() -> tuple[float, float]:
    """us to pack one consumer batch (an XACK of a new id, the XREADGROUP
    that repeats): redis-py's ``pack_commands``, then the consumer's
    ``PipelinePacker`` (``_io.resp``), best of 7."""
    from eventspype.broker.redis._io.aio_pipeline import packer_for

    connection = redis.asyncio.Connection(protocol=3)
    packer = packer_for(connection, repeated=("XREADGROUP",))
    stream = b"bench:{ORDER_PLACED}"
    ids = [b"1765119000%03d-0" % i for i in range(1000)]
    # As redis-py's xack and xreadgroup queue them.
    batches = [
        [("XACK", stream, b"bench", entry_id),
         ("XREADGROUP", b"GROUP", b"bench", b"c1", b"COUNT", "100", b"BLOCK",
          "1000", b"STREAMS", stream, ">")]
        for entry_id in ids
    ]  # fmt: skip

    def theirs() -> None:
        for batch in batches:
            connection.pack_commands(batch)

    def ours() -> None:
        for batch in batches:
            packer.pack(batch)

    theirs_ns, ours_ns = best_ns(theirs, 20), best_ns(ours, 20)
    return theirs_ns / len(batches) / 1e3, ours_ns / len(batches) / 1e3


def read_log(path: Path) -> list[int]:
    """The order ids a consumer logged (complete lines only)."""
    if not path.exists():
        return []
    text = path.read_text()
    return [int(line) for line in text[: text.rfind("\n") + 1].split()]


async def run(url: str, events: int) -> list[dict[str, Any]]:
    """Every scenario, raw and eventspype alternating round by round."""
    table = Comparison(BASELINE)

    async def rounds(function: Any, *args: Any) -> dict[str, list[Any]]:
        return await alternate_async(lambda impl: function(url, impl, *args), ROUNDS)

    table.add_best(f"burst, {events} events (best of {ROUNDS})", "events/s",
                   await rounds(burst, events), ">= 1.3x")  # fmt: skip
    table.add_percentiles(f"latency {{}} at {PACED_RATE}/s, evenly",
                          await rounds(latency), ("<= 1.0x", ""))  # fmt: skip
    table.add_percentiles(f"latency {{}} at {PACED_RATE}/s, in pairs",
                          await rounds(latency, 2), ("reported", ""))  # fmt: skip
    raw_us, ours_us = await read_timings()
    table.add("read an ack + XREADGROUP reply (speed)", "k/s", 1e3 / raw_us,
              1e3 / ours_us, "keep ours if > 1x")  # fmt: skip
    raw_us, ours_us = pack_timings()
    table.add("pack an ack + XREADGROUP (speed)", "k/s", 1e3 / raw_us,
              1e3 / ours_us, "keep ours if > 1x")  # fmt: skip
    lost, twice = await kill_nine(url)
    table.add(f"kill -9, {KILL_EVENTS} events: lost", "events", None, lost, "0")
    table.add("kill -9: handled twice", "events", None, twice, "reported")
    return table.rows


def print_table(rows: list[dict[str, Any]]) -> None:
    print_comparison(rows, BASELINE, "raw asyncio", width=38)


def main() -> int:
    def run_sync(url: str, events: int) -> list[dict[str, Any]]:
        return run_precise(run(url, events))

    return command_line("async_streams", __doc__ or "", 20_000, run_sync, print_table)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--child"]:
        asyncio.run(child(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(main())
