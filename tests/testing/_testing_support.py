"""Events and helpers of the eventspype-testing tests (a unique module name:
every tier shares one pytest run in ``nox -s tests_all``)."""

from __future__ import annotations

from dataclasses import dataclass

from eventspype import EventPublication


@dataclass
class OrderPlaced:
    order_id: int
    amount: float


@dataclass
class OrderCancelled:
    order_id: int
    reason: str = ""


@dataclass
class Basket:
    """Changes when it crosses JSON with a tuple in ``items``."""

    items: list[int]


ORDER_PLACED = EventPublication("order_placed", OrderPlaced)
ORDER_CANCELLED = EventPublication("order_cancelled", OrderCancelled)
