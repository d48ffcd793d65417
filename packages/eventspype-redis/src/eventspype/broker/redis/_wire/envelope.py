"""The Redis wire format: one JSON envelope per event, as eventspype 1.4.2 writes it.

``{"event_tag": tag, "event_class": qualname, "event_module": module,
"payload": "<serializer output as text>"}``. Serializer output that is not valid
UTF-8 (MessagePack, for instance) travels as base64 text with an extra field
``"payload_encoding": "base64"``; eventspype 1.4.2 never produces it because it
has no binary serializer. Extra unknown fields are ignored on receipt, so a later
version can add some without breaking this one.

An optional ``"headers"`` object (string to string: W3C trace context, for
instance) follows, when the publisher has any; eventspype 1.4.2 ignores it. A
received one is untrusted like the rest: at most :data:`MAX_HEADERS` entries
in at most :data:`MAX_HEADERS_BYTES` bytes of JSON, each key and value a
string. Headers that break a bound are dropped, and the event is delivered
without them (:attr:`Decoded.headers_problem` says why, for the counters).

:class:`_Envelope` is the one schema: msgspec encodes it (field order is the
wire order of 1.4.2) and decodes it with every field's type checked, in one
pass over the bytes in C, linear in their size whatever their shape. Nesting is
bounded by msgspec itself: past the interpreter's recursion limit it raises
``RecursionError``, which becomes the drop reason ``too_deep``. No second scan
of the text is made (a regular-expression pre-scan used to be: it backtracked
quadratically on escape runs and held the GIL for seconds).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, NamedTuple

import msgspec

from eventspype.broker.redis._wire.stats import DropReason
from eventspype.event import NormalizedTag

__all__ = [
    "BASE64",
    "MAX_HEADERS",
    "MAX_HEADERS_BYTES",
    "Decoded",
    "EnvelopeError",
    "decode",
    "encode",
]

#: The only ``payload_encoding`` this version writes or reads.
BASE64: Final = "base64"
#: At most this many headers are accepted on receipt (more: all dropped).
MAX_HEADERS: Final = 16
#: The received ``headers`` object may take at most this many bytes of JSON
#: (the W3C baggage limit); a larger one is dropped without being parsed.
MAX_HEADERS_BYTES: Final = 8192

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class EnvelopeError(ValueError):
    """A message that cannot become an event; ``reason`` is the drop reason."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(detail)
        self.reason: DropReason = reason


class _Envelope(msgspec.Struct, omit_defaults=True):
    # Field order is the wire order of eventspype 1.4.2.
    event_tag: int | str
    event_class: str
    event_module: str
    payload: str
    payload_encoding: str | None = None
    # Kept raw on receipt: parsed (and bounded) apart, so bad headers never
    # cost the event.
    headers: msgspec.Raw = msgspec.Raw()


class Decoded(NamedTuple):
    """A validated envelope: what the receiver needs to build the event."""

    event_tag: NormalizedTag
    event_module: str
    event_class: str
    payload: bytes
    #: The headers that travelled with the event (empty when none or dropped).
    headers: Mapping[str, str] = _NO_HEADERS
    #: Why received headers were dropped, ``None`` if they were not.
    headers_problem: str | None = None


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_encode_envelope = msgspec.json.Encoder().encode
_decode_headers = msgspec.json.Decoder(dict[str, str]).decode


def encode(
    event_tag: NormalizedTag,
    event_class: type,
    payload: bytes,
    headers: Mapping[str, str] | None = None,
) -> bytes:
    """Wrap serializer output (and ``headers``, if any) in the envelope."""
    try:
        text, encoding = payload.decode("utf-8"), None
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), BASE64
    envelope = _Envelope(
        event_tag, event_class.__qualname__, event_class.__module__, text, encoding
    )
    if headers:
        envelope.headers = msgspec.Raw(_encode_envelope(dict(headers)))
    return _encode_envelope(envelope)


def decode_headers(raw: msgspec.Raw) -> tuple[Mapping[str, str], str | None]:
    """The received headers, or none and why (see the module docs).

    Linear in ``len(raw)``; nothing is parsed past :data:`MAX_HEADERS_BYTES`.
    """
    size = len(raw)
    if size > MAX_HEADERS_BYTES:
        return _NO_HEADERS, f"{size} bytes of headers exceed {MAX_HEADERS_BYTES}"
    try:
        headers = _decode_headers(raw)
    except (msgspec.DecodeError, msgspec.ValidationError, ValueError, RecursionError):
        if bytes(raw) == b"null":  # as good as none
            return _NO_HEADERS, None
        return _NO_HEADERS, "headers are not an object of strings"
    if len(headers) > MAX_HEADERS:
        return _NO_HEADERS, f"{len(headers)} headers exceed {MAX_HEADERS}"
    return headers, None


def decode(data: bytes, *, max_bytes: int) -> Decoded:
    """Validate one received message and return its parts.

    Time and memory are linear in ``len(data)``, and nothing is parsed when
    it is over ``max_bytes``.

    Raises:
        EnvelopeError: the message must be dropped; ``reason`` says why.
    """
    if len(data) > max_bytes:
        raise EnvelopeError(
            "oversized", f"message of {len(data)} bytes exceeds {max_bytes}"
        )
    try:
        envelope = _decode_envelope(data)
    except msgspec.ValidationError as error:
        raise EnvelopeError(
            "invalid_envelope", f"not an event envelope: {error}"
        ) from None
    except RecursionError:
        raise EnvelopeError("too_deep", "JSON nests too deeply") from None
    # DecodeError is a ValueError since msgspec 0.19 only; UnicodeDecodeError.
    except (msgspec.DecodeError, ValueError) as error:
        raise EnvelopeError("invalid_json", f"not valid JSON: {error}") from None
    tag = envelope.event_tag
    if isinstance(tag, str) and not tag:
        raise EnvelopeError("invalid_envelope", "empty event_tag")
    if not envelope.event_class or not envelope.event_module:
        raise EnvelopeError("invalid_envelope", "empty event_class or event_module")
    encoding = envelope.payload_encoding
    if encoding is None:
        try:
            payload = envelope.payload.encode("utf-8")
        except UnicodeEncodeError:  # a lone surrogate from a \udXXX escape
            raise EnvelopeError(
                "invalid_envelope", "payload is not valid Unicode text"
            ) from None
    elif encoding == BASE64:
        try:
            payload = base64.b64decode(envelope.payload, validate=True)
        except (binascii.Error, ValueError):
            raise EnvelopeError(
                "invalid_envelope", "payload is not valid base64"
            ) from None
    else:
        raise EnvelopeError(
            "invalid_envelope", f"unknown payload_encoding {encoding!r}"
        )
    raw = envelope.headers
    if not raw:
        return Decoded(tag, envelope.event_module, envelope.event_class, payload)
    headers, problem = decode_headers(raw)
    return Decoded(
        tag, envelope.event_module, envelope.event_class, payload, headers, problem
    )
