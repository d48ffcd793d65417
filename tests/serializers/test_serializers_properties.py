"""Properties, checked with hypothesis.

1. Generated events of every supported kind round-trip exactly.
2. Generated garbage, random or almost valid, only ever raises SerializationError.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec
import pytest
from _serializers_support import (
    EVENT_CLASSES,
    EVENT_STRATEGIES,
    SERIALIZER_IDS,
    SERIALIZERS,
    Everything,
    assert_exact,
    everything,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventspype.serializers import (
    EventSerializer,
    JsonEventSerializer,
    MsgpackEventSerializer,
    SerializationError,
)

# Codecs are built on first use (a few microseconds), which must not count as
# a deadline overrun; the suite stays fast with a moderate example count.
PROPERTY = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# One instance per format for the whole module: sharing exercises the cache.
INSTANCES = {name: cls() for name, cls in zip(SERIALIZER_IDS, SERIALIZERS, strict=True)}


@pytest.fixture(params=SERIALIZER_IDS, scope="module")
def serializer(request: pytest.FixtureRequest) -> EventSerializer:
    return INSTANCES[request.param]


# --- exact round trips ---------------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(EVENT_STRATEGIES))
@PROPERTY
@given(data=st.data())
def test_generated_events_round_trip_exactly(
    serializer: EventSerializer, kind: str, data: st.DataObject
) -> None:
    event = data.draw(EVENT_STRATEGIES[kind], label=kind)
    copy = serializer.deserialize(serializer.serialize(event), type(event))
    assert_exact(event, copy)


@PROPERTY
@given(event=everything, floats=st.lists(st.floats(), max_size=4))
def test_messagepack_round_trips_any_float(
    event: Everything, floats: list[float]
) -> None:
    serializer = INSTANCES["msgpack"]
    event.floats = tuple(floats)
    copy = serializer.deserialize(serializer.serialize(event), Everything)
    assert_exact(event.floats, copy.floats)
    assert all(
        math.isnan(a) == math.isnan(b)
        for a, b in zip(event.floats, copy.floats, strict=True)
    )


# --- garbage only ever raises SerializationError -------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


def decodes_or_rejects(
    serializer: EventSerializer, data: Any, event_class: type
) -> None:
    """Decoding either succeeds with an ``event_class`` or raises SerializationError."""
    try:
        result = serializer.deserialize(data, event_class)
    except SerializationError as exc:
        error = exc
    else:
        assert isinstance(result, event_class)
        return
    assert error.event_class is event_class
    assert type(error).__name__ in repr(error)


@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda c: c.__name__)
@PROPERTY
@given(data=st.binary(max_size=200))
def test_random_bytes_only_raise_serialization_error(
    serializer: EventSerializer, event_class: type, data: bytes
) -> None:
    decodes_or_rejects(serializer, data, event_class)


def _field_names(event_class: type) -> list[str]:
    fields = getattr(event_class, "__dataclass_fields__", None) or {}
    return [*fields, *getattr(event_class, "_fields", ())]


@pytest.mark.parametrize("event_class", EVENT_CLASSES, ids=lambda c: c.__name__)
@PROPERTY
@given(data=st.data())
def test_well_formed_documents_of_the_wrong_shape(
    serializer: EventSerializer, event_class: type, data: st.DataObject
) -> None:
    # Objects with the event's own field names and arbitrary values get past
    # the parser and exercise validation of every field.
    names = _field_names(event_class)
    document = data.draw(
        st.dictionaries(st.sampled_from(names), json_values, max_size=len(names))
        if names
        else json_values
    )
    encode = (
        msgspec.json.encode
        if isinstance(serializer, JsonEventSerializer)
        else msgspec.msgpack.encode
    )
    decodes_or_rejects(serializer, encode(document), event_class)


@pytest.mark.parametrize("kind", sorted(EVENT_STRATEGIES))
@PROPERTY
@given(data=st.data())
def test_corrupted_valid_payloads(
    serializer: EventSerializer, kind: str, data: st.DataObject
) -> None:
    event = data.draw(EVENT_STRATEGIES[kind], label=kind)
    payload = bytearray(serializer.serialize(event))
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        position = data.draw(st.integers(0, len(payload)), label="position")
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]), label="action")
        if action == "flip" and position < len(payload):
            payload[position] ^= data.draw(st.integers(1, 255), label="mask")
        elif action == "cut":
            del payload[position:]
        else:
            payload[position:position] = data.draw(st.binary(min_size=1, max_size=3))
    decodes_or_rejects(serializer, bytes(payload), type(event))


def test_instances_cover_both_formats() -> None:
    assert isinstance(INSTANCES["json"], JsonEventSerializer)
    assert isinstance(INSTANCES["msgpack"], MsgpackEventSerializer)
