"""The Redis wire format: one JSON envelope per event, as eventspype 1.4.2 writes it.

``{"event_tag": tag, "event_class": qualname, "event_module": module,
"payload": "<serializer output as text>"}``. Serializer output that is not valid
UTF-8 (MessagePack, for instance) travels as base64 text with an extra field
``"payload_encoding": "base64"``; eventspype 1.4.2 never produces it because it
has no binary serializer. Extra unknown fields are ignored on receipt, so a later
version can add some without breaking this one.

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
from typing import Final, NamedTuple

import msgspec

from eventspype.broker.redis._wire.stats import DropReason
from eventspype.event import NormalizedTag

__all__ = ["BASE64", "Decoded", "EnvelopeError", "decode", "encode"]

#: The only ``payload_encoding`` this version writes or reads.
BASE64: Final = "base64"


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


class Decoded(NamedTuple):
    """A validated envelope: what the receiver needs to build the event."""

    event_tag: NormalizedTag
    event_module: str
    event_class: str
    payload: bytes


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_encode_envelope = msgspec.json.Encoder().encode


def encode(event_tag: NormalizedTag, event_class: type, payload: bytes) -> bytes:
    """Wrap serializer output in the envelope, ready to PUBLISH."""
    try:
        text, encoding = payload.decode("utf-8"), None
    except UnicodeDecodeError:
        text, encoding = base64.b64encode(payload).decode("ascii"), BASE64
    return _encode_envelope(
        _Envelope(
            event_tag, event_class.__qualname__, event_class.__module__, text, encoding
        )
    )


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
    return Decoded(tag, envelope.event_module, envelope.event_class, payload)
