"""JSON events: the default format of ``RedisBroker`` and of eventspype 1.4.2."""

from __future__ import annotations

import msgspec

from eventspype.serializers._engine import MsgspecEventSerializer, WireFormat

__all__ = ["JsonEventSerializer"]

_JSON = WireFormat(
    name="JSON",
    encoder=msgspec.json.Encoder,
    decoder=msgspec.json.Decoder,
    # RFC 3339 text keeps the UTC offset as it is.
    datetimes_lose_offset=False,
)


class JsonEventSerializer(MsgspecEventSerializer):
    """Exact, validated JSON serialization of events, with msgspec as the engine.

    ``deserialize(serialize(event), type(event)) == event`` with every nested
    value of its annotated type, for dataclasses (nested, frozen, slotted,
    with defaults), NamedTuples, attrs classes, pydantic v2 models, objects
    with ``to_dict()`` and a ``from_dict()`` classmethod, and fields of type
    datetime (naive or aware, offset kept), date, time, timedelta, UUID,
    Decimal, Enum / IntEnum / StrEnum, bytes (base64), tuple, set, frozenset,
    Optional, unions, and lists and dicts of all of these.

    The output is what eventspype 1.4.2 reads and writes for plain events: a
    JSON object keyed by field names (a NamedTuple event too; a NamedTuple
    *inside* an event is a JSON array, as 1.4.2's ``dataclasses.asdict``
    writes it). Data is validated against the annotations while it is decoded:
    bad input raises :class:`~eventspype.serializers.SerializationError`
    naming the class and the field, and unknown fields are ignored so that a
    newer producer can add fields.

    Limits (msgspec's and JSON's): a union may hold at most one object-like
    type (dataclass, attrs class, dict, ...) and one array-like type, and at
    most one type written as a string (str, datetime, UUID, Decimal, enum of
    strings, bytes, ...); such an annotation raises ``SerializationError`` on
    first use. Fields annotated ``Any`` come back as plain JSON values. JSON has
    no NaN or infinity. UTC offsets are kept to the minute.

    Encoders and decoders are built once per event class and cached, so the
    first call for a class costs a few microseconds and later ones are close
    to raw msgspec. Instances are thread-safe.

    .. versionadded:: 1.0.0
    """

    wire_format = _JSON
