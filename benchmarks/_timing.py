"""Timing, pacing and result helpers shared by the benchmarks (not a test module)."""

from __future__ import annotations

import asyncio
import gc
import json
import platform
import statistics
import sys
import time
import timeit
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"


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


async def paced_async(count: int, rate: float, start: float) -> AsyncIterator[int]:
    """:func:`paced` on the running asyncio loop, from loop time ``start``."""
    loop = asyncio.get_running_loop()
    for i in range(count):
        pause = start + i / rate - loop.time()
        if pause > 0:
            await asyncio.sleep(pause)
        yield i


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


def comparison_row(
    scenario: str,
    unit: str,
    raw: float | None,
    ours: float,
    target: str,
    baseline: str = "raw_redis_py",
) -> dict[str, Any]:
    """One result row: eventspype's figure against the baseline's (``raw``,
    ``None`` when the scenario has none), under the key ``baseline``."""
    ratio = None if raw is None else (ours / raw if raw else float("nan"))
    return {
        "scenario": scenario, "unit": unit, baseline: raw, "eventspype": ours,
        "ratio": ratio, "target": target,
    }  # fmt: skip


def print_comparison(
    rows: list[dict[str, Any]],
    baseline: str = "raw_redis_py",
    label: str = "raw redis-py",
    width: int = 34,
) -> None:
    """Rows of :func:`comparison_row` as a table (blank where there is no
    baseline)."""
    header = f"{'scenario':{width}} {'unit':>12} {label:>13} {'eventspype':>11}"
    print(header + f" {'ratio':>7}  target")
    for r in rows:
        raw = "" if r[baseline] is None else f"{r[baseline]:.3f}"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        print(
            f"{r['scenario']:{width}} {r['unit']:>12} {raw:>13} "
            f"{r['eventspype']:>11.3f} {ratio:>7}  {r['target']}"
        )
