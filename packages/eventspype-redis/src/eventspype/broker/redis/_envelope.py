"""The Redis wire format: one JSON envelope per event, as eventspype 1.4.2 writes it.

``{"event_tag": tag, "event_class": qualname, "event_module": module,
"payload": "<serializer output as text>"}``. Serializer output that is not valid
UTF-8 (MessagePack, for instance) travels as base64 text with an extra field
``"payload_encoding": "base64"``; eventspype 1.4.2 never produces it because it
has no binary serializer. Extra unknown fields are ignored on receipt, so a later
version can add some without breaking this one.

Decoding validates everything before a serializer sees the payload: size, JSON
syntax, the type of every field, and how deeply the payload nests. Each failure
is an :class:`EnvelopeError` carrying the drop reason the listener counts.
"""

from __future__ import annotations

import base64
import binascii
import re
from functools import lru_cache
from typing import Final, NamedTuple

import msgspec

from eventspype.broker.redis._stats import DropReason
from eventspype.event import NormalizedTag

__all__ = ["BASE64", "Decoded", "EnvelopeError", "decode", "encode"]

#: The only ``payload_encoding`` this version writes or reads.
BASE64: Final = "base64"

# A JSON string literal (unrolled loop: linear, no backtracking blow-up).
_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKET: Final = re.compile(r"[^\[\]]+")
_CURLY_TO_SQUARE: Final = str.maketrans("{}", "[]")


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
    """A validated envelope: what the listener needs to build the event."""

    event_tag: NormalizedTag
    event_module: str
    event_class: str
    payload: bytes


_decode_envelope = msgspec.json.Decoder(_Envelope).decode
_encode_json = msgspec.json.Encoder().encode


@lru_cache(maxsize=1024)
def _prefix(event_tag: NormalizedTag, event_class: type) -> bytes:
    # Everything before the payload is the same for every event of one
    # (tag, class): build it once.
    head = _encode_json(
        {
            "event_tag": event_tag,
            "event_class": event_class.__qualname__,
            "event_module": event_class.__module__,
        }
    )
    return head[:-1] + b',"payload":'


def encode(event_tag: NormalizedTag, event_class: type, payload: bytes) -> bytes:
    """Wrap serializer output in the envelope, ready to PUBLISH."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return b"".join(
            (
                _prefix(event_tag, event_class),
                _encode_json(base64.b64encode(payload).decode("ascii")),
                b',"payload_encoding":"base64"}',
            )
        )
    return _prefix(event_tag, event_class) + _encode_json(text) + b"}"


def decode(data: bytes, *, max_bytes: int, max_depth: int) -> Decoded:
    """Validate one received message and return its parts.

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
    except ValueError as error:  # msgspec.DecodeError, UnicodeDecodeError
        raise EnvelopeError("invalid_json", f"not valid JSON: {error}") from None
    tag = envelope.event_tag
    if isinstance(tag, str) and not tag:
        raise EnvelopeError("invalid_envelope", "empty event_tag")
    if not envelope.event_class or not envelope.event_module:
        raise EnvelopeError("invalid_envelope", "empty event_class or event_module")
    encoding = envelope.payload_encoding
    if encoding is None:
        text = envelope.payload
        if _nests_deeper_than(text, max_depth):
            raise EnvelopeError(
                "too_deep", f"payload nests deeper than {max_depth} levels"
            )
        try:
            payload = text.encode("utf-8")
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


def _nests_deeper_than(text: str, limit: int) -> bool:
    """Whether the brackets of a JSON-like text nest more than ``limit`` deep.

    Runs before a serializer recurses into the payload. Cheap for ordinary
    events: with no more brackets than ``limit`` the answer is known at once.
    Otherwise, string literals are removed, the remaining brackets are made
    one kind, and innermost pairs are peeled level by level in C
    (``str.replace``) rather than walked character by character in Python.
    Unbalanced brackets are left for the serializer to reject.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    brackets = _NOT_BRACKET.sub(
        "", _JSON_STRING.sub("", text).translate(_CURLY_TO_SQUARE)
    )
    for _ in range(limit):
        peeled = brackets.replace("[]", "")
        if len(peeled) == len(brackets):
            return False
        brackets = peeled
    return "[]" in brackets
