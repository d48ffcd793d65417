"""Serializers: events to bytes and back, exactly, with validation.

    python examples/serializers.py

Needs eventspype-serializers. A nested, frozen dataclass with a UUID, an aware
datetime, Decimals, an enum, a tuple and a frozenset makes the round trip
through JSON and MessagePack and comes back equal, every field with its own
type. Then a payload that does not match the class is refused with an error
that names the class and the field.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from enum import Enum

from eventspype import JsonEventSerializer, MsgpackEventSerializer, SerializationError


class Currency(Enum):
    EUR = "EUR"
    USD = "USD"


@dataclass(frozen=True)
class Money:
    amount: Decimal
    currency: Currency


@dataclass(frozen=True)
class LineItem:
    sku: str
    quantity: int
    price: Money


@dataclass(frozen=True)
class OrderPlaced:
    order_id: uuid.UUID
    placed_at: datetime
    items: tuple[LineItem, ...]
    tags: frozenset[str] = frozenset()
    coupon: str | None = None


def main() -> None:
    order = OrderPlaced(
        order_id=uuid.UUID("6f1c2d4e-8a7b-4c3d-9e0f-1a2b3c4d5e6f"),
        placed_at=datetime(2024, 5, 1, 12, 30, tzinfo=timezone(timedelta(hours=2))),
        items=(
            LineItem("keyboard", 1, Money(Decimal("49.99"), Currency.EUR)),
            LineItem("cable", 3, Money(Decimal("7.50"), Currency.EUR)),
        ),
        tags=frozenset({"gift"}),
    )

    for serializer in (JsonEventSerializer(), MsgpackEventSerializer()):
        data = serializer.serialize(order)
        back = serializer.deserialize(data, OrderPlaced)
        assert back == order, (back, order)
        assert isinstance(back.items[0].price.amount, Decimal)
        print(f"{type(serializer).__name__}: {len(data)} bytes, round trip exact")

    print("JSON text:", JsonEventSerializer().serialize(order).decode()[:72], "...")

    bad = b'{"order_id": "6f1c2d4e-8a7b-4c3d-9e0f-1a2b3c4d5e6f",'
    bad += b' "placed_at": "2024-05-01T12:30:00+02:00",'
    bad += b' "items": [{"sku": "mouse", "quantity": "two",'
    bad += b' "price": {"amount": "9.90", "currency": "EUR"}}]}'
    try:
        JsonEventSerializer().deserialize(bad, OrderPlaced)
    except SerializationError as error:
        print(f"refused: {error}")
        print(f"  field: {error.path}, class: {error.event_class.__name__}")


if __name__ == "__main__":
    main()
