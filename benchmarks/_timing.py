"""Timing, pacing and result helpers shared by the benchmarks (not a test module)."""

from __future__ import annotations

import asyncio
import gc
import json
import platform
import selectors
import statistics
import sys
import time
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any, TypeVar

RESULTS_DIR = Path(__file__).resolve().parent / "results"
T = TypeVar("T")


def best_ns(func: Callable[[], object], number: int, repeat: int = 7) -> float:
    """Best-of-``repeat`` time of one ``func()`` call, in nanoseconds.

    The minimum is the least noisy estimate on a shared machine: noise only
    ever adds time. The garbage collector is paused while timing.
    """
    gc_was_enabled = gc.isenabled()
    gc.disable()
    try:
        runs = timeit.repeat(func, number=number, repeat=repeat)
    finally:
        if gc_was_enabled:
            gc.enable()
    return min(runs) / number * 1e9


def write_results(name: str, rows: list[dict[str, Any]], path: str | None) -> Path:
    """Write ``rows`` with the interpreter details to JSON; return the path."""
    target = Path(path) if path else RESULTS_DIR / f"{name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "benchmark": name,
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "machine": platform.machine(),
        "rows": rows,
    }
    target.write_text(json.dumps(payload, indent=2) + "\n")
    return target


def percentiles_ms(latencies: list[float]) -> tuple[float, float]:
    """p50 and p99 of ``latencies`` (seconds), in milliseconds.

    p99 is the sample at the 99th rank (the largest for fewer than 100).
    """
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered) * 1e3, p99 * 1e3


def paced(count: int, rate: float) -> Iterator[int]:
    """Yield ``0 .. count - 1``, the i-th no earlier than ``i / rate`` s after
    the first: a steady publishing rate, whatever each step costs (a late
    step is not made up for by skipping pauses later)."""
    start = time.monotonic()
    for i in range(count):
        pause = start + i / rate - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        yield i


async def paced_async(
    count: int, rate: float, start: float, together: int = 1
) -> AsyncIterator[int]:
    """:func:`paced` on the running asyncio loop, from loop time ``start``;
    ``together`` events at a time (every ``together / rate`` s).

    The loop's timers are only as fine as its selector: the default one
    (epoll) sleeps whole milliseconds, so at 2,000/s the events come two at
    a time every 1 ms whatever ``together`` says. Run the loop with
    :func:`run_precise` for pacing below a millisecond.
    """
    loop = asyncio.get_running_loop()
    for i in range(count):
        pause = start + (i // together) * together / rate - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        yield i


def run_precise(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on a loop whose timers are microsecond-precise.

    ``select()`` takes its timeout in microseconds, epoll in milliseconds
    (asyncio rounds a 0.5 ms sleep up to 1 ms there). The select selector
    handles at most 1,024 descriptors: plenty for a benchmark.
    """
    loop = asyncio.SelectorEventLoop(selectors.SelectSelector())
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        asyncio.set_event_loop(None)
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


#: The implementations a comparison alternates, the baseline first.
IMPLS = ("raw", "eventspype")


def alternate(measure: Callable[[str], Any], rounds: int = 3) -> dict[str, list[Any]]:
    """``measure(impl)`` for raw then eventspype, ``rounds`` times over.

    The two alternate round by round (the machine's load drifts: alternating
    shares it fairly); returns each impl's results in order.
    """
    results: dict[str, list[Any]] = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl in IMPLS:
            results[impl].append(measure(impl))
    return results


async def alternate_async(
    measure: Callable[[str], Awaitable[Any]], rounds: int = 3
) -> dict[str, list[Any]]:
    """:func:`alternate` for a coroutine function."""
    results: dict[str, list[Any]] = {impl: [] for impl in IMPLS}
    for _ in range(rounds):
        for impl in IMPLS:
            results[impl].append(await measure(impl))
    return results


class Comparison:
    """The result rows of a benchmark that sets eventspype against a raw
    baseline, each under the keys scenario, unit, ``baseline``, eventspype,
    ratio (eventspype / baseline) and target."""

    def __init__(self, baseline: str = "raw_redis_py") -> None:
        self.baseline = baseline
        self.rows: list[dict[str, Any]] = []

    def add(
        self, scenario: str, unit: str, raw: float | None, ours: float, target: str
    ) -> None:
        """One row; ``raw`` is ``None`` where the scenario has no baseline."""
        ratio = None if raw is None else (ours / raw if raw else float("nan"))
        self.rows.append(
            {"scenario": scenario, "unit": unit, self.baseline: raw,
             "eventspype": ours, "ratio": ratio, "target": target}
        )  # fmt: skip

    def add_best(
        self, scenario: str, unit: str, results: dict[str, list[float]], target: str
    ) -> None:
        """The best (highest) of each impl's rates, as :func:`alternate` gives them."""
        self.add(
            scenario, unit, max(results["raw"]), max(results["eventspype"]), target
        )

    def add_percentiles(
        self,
        scenario: str,
        results: dict[str, list[tuple[float, float]]],
        targets: tuple[str, str],
    ) -> None:
        """Two rows, p50 and p99 in ms: the median over the rounds of each
        impl's :func:`percentiles_ms`. ``scenario`` has a ``{}`` for
        ``p50``/``p99``; ``targets`` are theirs."""
        for index, name in enumerate(("p50", "p99")):
            raw, ours = (
                statistics.median(r[index] for r in results[impl]) for impl in IMPLS
            )
            self.add(scenario.format(name), "ms", raw, ours, targets[index])


def print_comparison(
    rows: list[dict[str, Any]],
    baseline: str = "raw_redis_py",
    label: str = "raw redis-py",
    width: int = 34,
) -> None:
    """:attr:`Comparison.rows` as a table (blank where there is no baseline)."""
    header = f"{'scenario':{width}} {'unit':>12} {label:>13} {'eventspype':>11}"
    print(header + f" {'ratio':>7}  target")
    for r in rows:
        raw = "" if r[baseline] is None else f"{r[baseline]:.3f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(
            f"{r['scenario']:{width}} {r['unit']:>12} {raw:>13} "
            f"{r['eventspype']:>11.3f} {ratio:>7}  {r['target']}"
        )


#: ``read(parser, stream)``: reads what one ``feed`` put on ``stream``.
StreamRead = Callable[[Any, asyncio.StreamReader], Awaitable[Any]]


async def parser_timings(
    wire: bytes,
    theirs: StreamRead,
    ours: StreamRead,
    *,
    per_feed: int = 1,
    rounds: int = 5,
    number: int = 20_000,
) -> tuple[float, float]:
    """us per reply to read ``wire`` (``per_feed`` replies) fed to an asyncio
    stream ``number`` times: by ``theirs``, then by ``ours``, best of
    ``rounds``.

    Both get redis-py's own asyncio parser for RESP3 (hiredis's where it is
    installed: its private ``_parser``), reading the stream as it does on a
    connection after ``connect()``; ``ours`` ignores it.
    """
    import redis.asyncio

    connection = redis.asyncio.Connection(protocol=3)
    parser = connection._parser
    best: list[float] = []
    for read in (theirs, ours):
        times = []
        for _ in range(rounds):
            stream = asyncio.StreamReader()
            parser.on_connect(
                SimpleNamespace(_reader=stream, encoder=connection.encoder)
            )
            start = time.perf_counter()
            for _ in range(number):
                stream.feed_data(wire)
                await read(parser, stream)
            times.append((time.perf_counter() - start) / number / per_feed * 1e6)
        best.append(min(times))
    return best[0], best[1]
