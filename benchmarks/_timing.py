"""Timing helpers shared by the benchmark scripts (not a test module)."""

from __future__ import annotations

import gc
import json
import platform
import sys
import timeit
from collections.abc import Callable
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
