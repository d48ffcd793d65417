"""Benchmark: what a hostile message costs the receiver, per kB, by size.

    python benchmarks/bench_adversarial.py [--json PATH]

Everything a Redis broker receives goes through one sans-I/O path
(``eventspype.broker.redis._wire.inbound.Inbound.decode``): size, envelope, tag,
class, typed payload. A regular expression there once backtracked
quadratically: the 160 kB message of 65 ``[``, a ``"`` and 40,000 ``\\"``
pairs took 12 s, holding the GIL. This script decodes messages of about
10 kB, 100 kB and 1 MiB of each shape meant to be slow, placed both in the
payload (which the serializer decodes into an event class with an ``Any``
field, so it is parsed in full) and in the envelope itself (an unknown field,
which msgspec skips), and reports microseconds per kB. Cost is linear when
the 1 MiB figure per kB stays within 1.5x of the 10 kB one; the script exits
1 otherwise. Each time is the best of several runs (noise only adds time).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

from _timing import write_results

from eventspype.broker.redis._wire.envelope import EnvelopeError, encode
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.serializers import JsonEventSerializer

SIZES = {"10 kB": 10_000, "100 kB": 100_000, "1 MiB": 1 << 20}
LIMIT = 1.5


@dataclasses.dataclass
class Anything:
    value: Any


def _repeat(unit: str, size: int) -> str:
    return unit * max(1, size // len(unit))


#: shape -> the text of about ``size`` characters, meant to be slow to scan.
SHAPES: dict[str, Callable[[int], str]] = {
    "escape run after 65 [ (issue 8)": lambda n: "[" * 65 + '"' + _repeat('\\"', n),
    "unclosed string": lambda n: '"' + _repeat("a", n),
    "long escape run": lambda n: '"' + _repeat("\\\\", n) + '"',
    "bracket run": lambda n: _repeat("[", n),
    "deep nesting": lambda n: _repeat("[", n // 2) + _repeat("]", n // 2),
    "long number": lambda n: _repeat("7", n),
    "huge unicode escapes": lambda n: '"' + _repeat("\\ud83d\\ude00", n) + '"',
}


def in_payload(shape: str, size: int) -> bytes:
    text = '{"value": ' + SHAPES[shape](size) + "}"
    return encode("HOSTILE", Anything, text.encode())


def in_envelope(shape: str, size: int) -> bytes:
    return b'{"event_tag": "HOSTILE", "junk": ' + SHAPES[shape](size).encode() + b"}"


def time_decode(inbound: Inbound, message: bytes) -> float:
    """Best time of one ``Inbound.decode`` of ``message``, in seconds."""
    runs = max(3, min(200, 2_000_000 // len(message)))
    best = float("inf")
    for _ in range(runs):
        start = time.perf_counter()
        with contextlib.suppress(EnvelopeError):
            inbound.decode("HOSTILE", message)
        best = min(best, time.perf_counter() - start)
    return best


def run() -> list[dict[str, Any]]:
    registry = ClassRegistry()
    registry.register(Anything)
    inbound = Inbound(JsonEventSerializer(), registry, max_bytes=1 << 22)
    rows = []
    for shape in SHAPES:
        for placement, build in (("payload", in_payload), ("envelope", in_envelope)):
            per_kb = {}
            for label, size in SIZES.items():
                message = build(shape, size)
                per_kb[label] = (
                    time_decode(inbound, message) * 1e6 / (len(message) / 1000)
                )
            ratio = per_kb["1 MiB"] / per_kb["10 kB"]
            rows.append(
                {"shape": shape, "placement": placement, "us_per_kb": per_kb,
                 "ratio_1mib_to_10kb": ratio, "linear": ratio <= LIMIT}
            )  # fmt: skip
    return rows


def print_table(rows: list[dict[str, Any]]) -> None:
    sizes = "".join(f"{label:>10}" for label in SIZES)
    print(f"{'shape (us per kB)':34} {'in':9}{sizes} {'1MiB/10kB':>10}  target")
    for r in rows:
        cells = "".join(f"{r['us_per_kb'][label]:>10.3f}" for label in SIZES)
        verdict = "ok" if r["linear"] else "NOT LINEAR"
        print(
            f"{r['shape']:34} {r['placement']:9}{cells} "
            f"{r['ratio_1mib_to_10kb']:>9.2f}x  <= {LIMIT}x {verdict}"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", help="where to write results")
    args = parser.parse_args()
    rows = run()
    print_table(rows)
    print("results:", write_results("adversarial", rows, args.json))
    return 0 if all(r["linear"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
