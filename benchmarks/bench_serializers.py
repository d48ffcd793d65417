"""Benchmark: eventspype serializers against raw msgspec, measured in one run.

For a flat event and a nested event (a list of dataclasses, a datetime, a
UUID, an Enum, a Decimal) it times one serialize + deserialize round trip with
``JsonEventSerializer`` and ``MsgpackEventSerializer``, and the same round trip
with a raw msgspec Encoder and a Decoder built with ``type=`` (the floor any
wrapper can reach). The ratio to raw msgspec is the number to watch: the
target is at most 1.5x for JSON. When eventspype 1.4.2 is importable (set
``EVENTSPYPE_REFERENCE_SRC`` to its ``src`` directory) its JsonEventSerializer
is timed too, for the record.

Usage::

    python benchmarks/bench_serializers.py [--json PATH] [--repeat N]

Results go to ``benchmarks/results/serializers.json`` unless ``--json`` says
otherwise. Each figure is the best of ``--repeat`` timeit runs, in ns per
round trip.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import enum
import importlib.util
import json
import os
import platform
import sys
import timeit
import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec

from eventspype.serializers import JsonEventSerializer, MsgpackEventSerializer

DEFAULT_OUTPUT = Path(__file__).resolve().parent / "results" / "serializers.json"


@dataclasses.dataclass
class OrderPlaced:
    """The flat event of the documentation."""

    order_id: int
    amount: float


class Status(enum.Enum):
    PENDING = "pending"
    SHIPPED = "shipped"


@dataclasses.dataclass
class LineItem:
    sku: str
    quantity: int
    unit_price: Decimal


@dataclasses.dataclass
class OrderShipped:
    """A nested event: list of dataclasses, datetime, UUID, Enum, Decimal."""

    order_id: uuid.UUID
    shipped_at: dt.datetime
    status: Status
    total: Decimal
    items: list[LineItem]


def make_events() -> dict[str, Any]:
    return {
        "flat": OrderPlaced(order_id=1, amount=49.99),
        "nested": OrderShipped(
            order_id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
            shipped_at=dt.datetime(2024, 5, 1, 12, 30, tzinfo=dt.timezone.utc),
            status=Status.SHIPPED,
            total=Decimal("109.97"),
            items=[
                LineItem("sku-1", 1, Decimal("9.99")),
                LineItem("sku-2", 2, Decimal("49.99")),
            ],
        ),
    }


def raw_round_trip(module: Any, cls: type) -> Callable[[Any], Any]:
    encode = module.Encoder().encode
    decode = module.Decoder(cls).decode

    def run(event: Any) -> Any:
        return decode(encode(event))

    return run


def serializer_round_trip(serializer: Any, cls: type) -> Callable[[Any], Any]:
    serialize = serializer.serialize
    deserialize = serializer.deserialize

    def run(event: Any) -> Any:
        return deserialize(serialize(event), cls)

    return run


def reference_serializer() -> Any | None:
    src = os.environ.get("EVENTSPYPE_REFERENCE_SRC")
    if not src:
        return None
    # The reference is another copy of the `eventspype` package: load it under
    # its own name from its file so it cannot shadow the installed one.
    path = Path(src) / "eventspype" / "broker" / "serializer.py"
    spec = importlib.util.spec_from_file_location("_reference_serializer", path)
    if spec is None or spec.loader is None:
        return None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.JsonEventSerializer()


def best_ns(run: Callable[[Any], Any], event: Any, repeat: int) -> float:
    """Best-of-``repeat`` time of one call, in nanoseconds."""
    timer = timeit.Timer(lambda: run(event))
    number, _ = timer.autorange()
    return min(timer.repeat(repeat=repeat, number=number)) / number * 1e9


def measure(repeat: int) -> list[dict[str, Any]]:
    candidates: list[tuple[str, str, Callable[[type], Callable[[Any], Any]]]] = [
        ("json", "raw msgspec.json", lambda c: raw_round_trip(msgspec.json, c)),
        (
            "json",
            "JsonEventSerializer",
            lambda c: serializer_round_trip(JsonEventSerializer(), c),
        ),
        (
            "msgpack",
            "raw msgspec.msgpack",
            lambda c: raw_round_trip(msgspec.msgpack, c),
        ),
        (
            "msgpack",
            "MsgpackEventSerializer",
            lambda c: serializer_round_trip(MsgpackEventSerializer(), c),
        ),
    ]
    reference = reference_serializer()
    if reference is not None:
        candidates.append(
            (
                "json",
                "eventspype 1.4.2 JsonEventSerializer",
                lambda c: serializer_round_trip(reference, c),
            )
        )
    rows: list[dict[str, Any]] = []
    for event_name, event in make_events().items():
        baselines: dict[str, float] = {}
        for fmt, name, factory in candidates:
            run = factory(type(event))
            try:
                ok = run(event) == event
            except Exception as exc:  # the reference cannot encode the nested event
                rows.append(_row(event_name, fmt, name, None, None, repr(exc)))
                continue
            if not ok:
                rows.append(_row(event_name, fmt, name, None, None, "not equal"))
                continue
            ns = best_ns(run, event, repeat)
            if name.startswith("raw "):
                baselines[fmt] = ns
            ratio = ns / baselines[fmt] if fmt in baselines else None
            rows.append(_row(event_name, fmt, name, ns, ratio, None))
    return rows


def _row(
    event: str,
    fmt: str,
    name: str,
    ns: float | None,
    ratio: float | None,
    error: str | None,
) -> dict[str, Any]:
    return {
        "event": event,
        "format": fmt,
        "implementation": name,
        "ns_per_round_trip": None if ns is None else round(ns, 1),
        "ratio_to_raw_msgspec": None if ratio is None else round(ratio, 3),
        "error": error,
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    header = f"{'event':<7} {'implementation':<37} {'ns/op':>10} {'x raw':>7}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ns = row["ns_per_round_trip"]
        ratio = row["ratio_to_raw_msgspec"]
        ns_text = f"{ns:10.0f}" if ns is not None else f"{'-':>10}"
        ratio_text = f"{ratio:7.2f}" if ratio is not None else f"{'-':>7}"
        suffix = f"  ({row['error'][:60]})" if row["error"] else ""
        name = f"{row['event']:<7} {row['implementation']:<37}"
        print(f"{name} {ns_text} {ratio_text}{suffix}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_OUTPUT, help="output file")
    parser.add_argument("--repeat", type=int, default=7, help="timeit repeats")
    args = parser.parse_args(argv)
    rows = measure(args.repeat)
    print_table(rows)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    result = {
        "benchmark": "serializers",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "msgspec": msgspec.__version__,
        "platform": platform.platform(),
        "repeat": args.repeat,
        "results": rows,
    }
    args.json.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {args.json}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
