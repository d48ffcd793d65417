"""The event both sides of a cross-process test agree on.

Imported by ``redis_peer.py`` (run by any interpreter, eventspype 1.4.2's
included) and by the tests, under the same module name, so that the envelope's
``event_module`` resolves on both sides.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ShipmentEvent:
    order_id: int
    weight: float
    note: str = ""
    items: list[str] = field(default_factory=list)


def make_event(index: int) -> ShipmentEvent:
    """The ``index``-th event of a run: non-ASCII text, nested list, floats."""
    return ShipmentEvent(
        order_id=index,
        weight=index + 0.25,
        note=f'café ☕ #{index} "quoted" \\ back',
        items=[f"item-{index}-{n}" for n in range(index % 3)],
    )
