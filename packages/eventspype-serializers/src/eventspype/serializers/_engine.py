"""The msgspec engine shared by the JSON and MessagePack serializers.

Each serializer has one :class:`WireFormat` and builds one :class:`Codec` per
event class on first use. A codec is a pair of callables that are, in the
common case, the bound ``encode``/``decode`` methods of a msgspec Encoder and
typed Decoder themselves, so the per-call cost over raw msgspec is a dict
lookup and a Python call.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, TypeVar

import msgspec
import msgspec.structs

from eventspype.serializers._errors import decode_error, encode_error, plan_error
from eventspype.serializers._types import (
    UnsupportedTypeError,
    is_pydantic_model,
    named_tuple_shadow,
    plan_for,
    type_name,
)
from eventspype.serializers.base import EventSerializer

__all__ = ["Codec", "MsgspecEventSerializer", "WireFormat"]

_T = TypeVar("_T")

# What a failing encode can raise: our hook's TypeError, msgspec's errors,
# OverflowError (ints beyond 64 bits in MessagePack), UnicodeEncodeError (lone
# surrogates), a pydantic serialization error (a ValueError), RecursionError
# (self-referencing containers).
_ENCODE_ERRORS = (
    msgspec.MsgspecError,
    TypeError,
    ValueError,
    OverflowError,
    RecursionError,
)
# What a failing decode can raise: msgspec's ValidationError and DecodeError
# (plain Exceptions before msgspec 0.19, ValueErrors since), TypeError for
# input that is not bytes-like, RecursionError for pathologically nested
# input into an untyped (Any) field.
_DECODE_ERRORS = (msgspec.MsgspecError, ValueError, TypeError, RecursionError)
# Kept as-is by the MessagePack text-datetime pass: MessagePack has a binary
# type, so bytes must not become base64 text on the way.
_MSGPACK_BUILTINS = (bytes, bytearray, memoryview)


@dataclasses.dataclass(frozen=True)
class WireFormat:
    """One msgspec protocol: how to build its encoder and its typed decoders."""

    name: str
    encoder: Callable[..., Any]
    decoder: Callable[..., Any]
    #: Whether aware datetimes must be converted to text before encoding.
    datetimes_lose_offset: bool


class Codec:
    """The encode and decode callables for one event class in one format."""

    __slots__ = ("decode", "encode")

    def __init__(
        self, encode: Callable[[Any], bytes], decode: Callable[[Any], Any]
    ) -> None:
        self.encode = encode
        self.decode = decode


def enc_hook(obj: Any) -> Any:
    """Give msgspec a native value for an object it does not know."""
    if is_pydantic_model(type(obj)):
        # pydantic's JSON form (aliases included) is what its own JSON
        # validation reads back exactly, strict models included.
        return obj.model_dump(mode="json", by_alias=True)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    raise TypeError(
        f"objects of type {type_name(type(obj))} are not supported (not a "
        "dataclass, attrs class, NamedTuple or pydantic model, and no to_dict())"
    )


def dec_hook(cls: Any, obj: Any) -> Any:
    """Build an instance of a user type msgspec does not know from decoded data.

    Only the class named by the annotation is ever constructed; anything it
    raises becomes a ValueError, which msgspec reports with the field path.
    """
    if is_pydantic_model(cls):
        try:
            return cls.model_validate_json(msgspec.json.encode(obj))
        except ValueError as exc:
            raise ValueError(_pydantic_reason(cls, exc)) from exc
    try:
        return cls.from_dict(obj)
    except Exception as exc:
        raise ValueError(f"{type_name(cls)}.from_dict() failed: {exc!r}") from exc


def _pydantic_reason(cls: Any, exc: ValueError) -> str:
    errors = getattr(exc, "errors", None)
    if not callable(errors):
        return f"{type_name(cls)}: {exc}"
    first = errors()[0]
    loc = ".".join(str(part) for part in first.get("loc", ()))
    where = f" field `{loc}`" if loc else ""
    return f"{type_name(cls)}{where}: {first.get('msg', exc)}"


def build_codec(event_class: Any, fmt: WireFormat, encoder: Any) -> Codec:
    """Inspect ``event_class`` once and return its codec for ``fmt``."""
    plan = plan_for(event_class)
    encode: Callable[[Any], bytes] = encoder.encode
    if fmt.datetimes_lose_offset and plan.datetimes_as_text:
        raw_encode = encode

        def encode(event: Any) -> bytes:
            return raw_encode(
                msgspec.to_builtins(
                    event, builtin_types=_MSGPACK_BUILTINS, enc_hook=enc_hook
                )
            )

    if not plan.named_tuple:
        return Codec(encode, fmt.decoder(event_class, dec_hook=dec_hook).decode)

    # NamedTuple events travel as objects (eventspype 1.4.2 writes _asdict()).
    shadow_decode = fmt.decoder(
        named_tuple_shadow(event_class), dec_hook=dec_hook
    ).decode
    element_encode = encode
    make = event_class._make
    astuple = msgspec.structs.astuple

    def encode_named_tuple(event: Any) -> bytes:
        return element_encode(event._asdict())

    def decode_named_tuple(data: Any) -> Any:
        return make(astuple(shadow_decode(data)))

    return Codec(encode_named_tuple, decode_named_tuple)


class MsgspecEventSerializer(EventSerializer):
    """Serializer base running msgspec with one :class:`WireFormat`.

    Subclasses set ``wire_format``. Instances are thread-safe: msgspec encoders
    and decoders are, and the codec caches only ever gain entries (two threads
    building the same entry at once waste a little work, nothing else).
    """

    wire_format: WireFormat

    def __init__(self) -> None:
        self._encoder = self.wire_format.encoder(enc_hook=enc_hook)
        # Two plain dicts of bound msgspec methods: the hit path is one
        # subscript and one C call (a Codec object would add an attribute load).
        self._encoders: dict[Any, Callable[[Any], bytes]] = {}
        self._decoders: dict[Any, Callable[[Any], Any]] = {}

    def serialize(self, event: Any) -> bytes:
        """Encode ``event``; see the class docstring for what round-trips.

        Raises:
            SerializationError: ``type(event)`` cannot be supported, or the
                event holds a value the format cannot represent (the message
                names its type).
        """
        try:
            encode = self._encoders[type(event)]
        except KeyError:
            encode = self._build(type(event)).encode
        try:
            return encode(event)
        except _ENCODE_ERRORS as exc:
            raise encode_error(exc, type(event), self.wire_format.name) from exc

    def deserialize(self, data: bytes, event_class: type[_T]) -> _T:
        """Decode ``data`` (bytes-like) into a fully validated ``event_class``.

        Raises:
            SerializationError: ``data`` is malformed or does not match
                ``event_class``; the message names the class and the field.
                Nothing is half-built and nothing named by the data is
                imported or called.
        """
        try:
            decode = self._decoders[event_class]
        except KeyError:
            decode = self._build(event_class).decode
        try:
            return decode(data)  # type: ignore[no-any-return]
        except _DECODE_ERRORS as exc:
            raise decode_error(exc, event_class, self.wire_format.name) from exc

    def _build(self, event_class: Any) -> Codec:
        try:
            codec = build_codec(event_class, self.wire_format, self._encoder)
        except UnsupportedTypeError as exc:
            raise plan_error(exc, event_class, self.wire_format.name) from exc
        self._encoders[event_class] = codec.encode
        self._decoders[event_class] = codec.decode
        return codec

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"
