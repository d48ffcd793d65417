"""Round trips of attrs classes and pydantic v2 models (each skipped when absent).

No ``from __future__ import annotations`` here: the classes are local to the
tests, and string annotations could not be resolved from the module.
"""

import dataclasses
import datetime as dt
import uuid
from decimal import Decimal

import pytest
from _serializers_support import (
    SERIALIZER_IDS,
    SERIALIZERS,
    Level,
    Priority,
    assert_exact,
    aware_datetimes,
    decimals,
    ints,
    naive_datetimes,
    texts,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from eventspype.serializers import EventSerializer, SerializationError

PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))


@pytest.fixture(params=SERIALIZERS, ids=SERIALIZER_IDS)
def serializer(request: pytest.FixtureRequest) -> EventSerializer:
    return request.param()  # type: ignore[no-any-return]


def test_attrs_classes(serializer: EventSerializer) -> None:
    attrs = pytest.importorskip("attrs")

    @attrs.frozen
    class Address:
        street: str
        zip_code: str | None = None

    @attrs.define
    class Customer:
        name: str
        since: dt.datetime
        addresses: list[Address] = attrs.Factory(list)
        priority: Priority = Priority.LOW

    event = Customer(
        "Ada", dt.datetime(2020, 1, 1, tzinfo=PLUS_0530), [Address("Main St", "123")]
    )
    copy = serializer.deserialize(serializer.serialize(event), Customer)
    assert_exact(event, copy)
    assert type(copy.addresses[0]) is Address
    assert type(copy.priority) is Priority


@pytest.fixture
def pydantic_models() -> tuple[type, type]:
    pydantic = pytest.importorskip("pydantic", minversion="2")

    class Address(pydantic.BaseModel):
        street: str
        zip_code: str | None = None

    class Customer(pydantic.BaseModel):
        # Strict: pydantic must see its own JSON form, not a lax Python dict.
        model_config = pydantic.ConfigDict(strict=True)

        name: str = pydantic.Field(alias="fullName")
        since: dt.datetime
        token: uuid.UUID
        tags: frozenset[str] = frozenset()
        balance: Decimal = Decimal("0")
        address: Address | None = None
        level: Level = Level.DEBUG

    return Address, Customer


def make_customer(customer_class: type) -> object:
    return customer_class(
        fullName="Ada",
        since=dt.datetime(2020, 1, 1, tzinfo=PLUS_0530),
        token=uuid.UUID(int=7),
        tags=frozenset({"vip"}),
        balance=Decimal("10.50"),
        address={"street": "Main St"},
        level=Level.ERROR,
    )


def test_pydantic_models(
    serializer: EventSerializer, pydantic_models: tuple[type, type]
) -> None:
    address_class, customer_class = pydantic_models
    event = make_customer(customer_class)
    copy = serializer.deserialize(serializer.serialize(event), customer_class)
    assert_exact(event, copy)
    assert type(copy.address) is address_class


def test_pydantic_model_nested_in_a_dataclass(
    serializer: EventSerializer, pydantic_models: tuple[type, type]
) -> None:
    _, customer_class = pydantic_models
    customer = make_customer(customer_class)

    @dataclasses.dataclass
    class Envelope:
        customer: customer_class  # type: ignore[valid-type]
        customers: list[customer_class]  # type: ignore[valid-type]

    event = Envelope(customer, [customer, customer])
    assert_exact(event, serializer.deserialize(serializer.serialize(event), Envelope))


def test_pydantic_validation_errors_name_the_field(
    serializer: EventSerializer, pydantic_models: tuple[type, type]
) -> None:
    _, customer_class = pydantic_models
    data = serializer.serialize({"fullName": "Ada", "since": "yesterday", "token": 5})
    with pytest.raises(SerializationError, match="since") as caught:
        serializer.deserialize(data, customer_class)
    assert "Customer" in str(caught.value)
    assert caught.value.event_class is customer_class


# --- generated instances ----------------------------------------------------------


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=SERIALIZER_IDS)
def test_generated_attrs_events_round_trip_exactly(serializer_class: type) -> None:
    attrs = pytest.importorskip("attrs")

    @attrs.frozen
    class Reading:
        at: dt.datetime
        value: Decimal
        level: Level
        raw: bytes = b""

    @attrs.define
    class Batch:
        readings: list[Reading]
        labels: dict[str, tuple[int, ...]]
        origin: uuid.UUID | None = None

    serializer = serializer_class()
    readings = st.builds(
        Reading, naive_datetimes | aware_datetimes, decimals, st.sampled_from(Level),
        st.binary(max_size=8),
    )  # fmt: skip
    batches = st.builds(
        Batch,
        st.lists(readings, max_size=3),
        st.dictionaries(texts, st.lists(ints, max_size=3).map(tuple), max_size=2),
        st.none() | st.uuids(),
    )

    @settings(max_examples=100, deadline=None)
    @given(batches)
    def check(event: object) -> None:
        assert_exact(event, serializer.deserialize(serializer.serialize(event), Batch))

    check()


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=SERIALIZER_IDS)
def test_generated_pydantic_events_round_trip_exactly(
    serializer_class: type, pydantic_models: tuple[type, type]
) -> None:
    address_class, customer_class = pydantic_models
    serializer = serializer_class()
    addresses = st.builds(address_class, street=texts, zip_code=st.none() | texts)
    customers = st.builds(
        customer_class,
        fullName=texts,
        since=naive_datetimes | aware_datetimes,
        token=st.uuids(),
        tags=st.frozensets(texts, max_size=3),
        balance=st.decimals(allow_nan=False, allow_infinity=False),
        address=st.none() | addresses,
        level=st.sampled_from(Level),
    )

    @settings(max_examples=100, deadline=None)
    @given(customers)
    def check(event: object) -> None:
        copy = serializer.deserialize(serializer.serialize(event), customer_class)
        assert_exact(event, copy)

    check()
