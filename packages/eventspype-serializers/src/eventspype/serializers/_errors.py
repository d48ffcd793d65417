"""Turning msgspec's (and the hooks') exceptions into :class:`SerializationError`.

msgspec reports where validation failed as a suffix of its message
(``Expected `int`, got `str` - at `$.items[0].price```); the path is lifted out
so that the error says which field of which event class is at fault.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from eventspype.serializers._types import UnsupportedTypeError, type_name
from eventspype.serializers.errors import SerializationError

__all__ = ["decode_error", "encode_error", "plan_error"]

_AT = re.compile(r" - at `(?P<path>\$[^`]*)`$")
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


def decode_error(exc: BaseException, event_class: Any, fmt: str) -> SerializationError:
    """The error for bytes that could not be read back as ``event_class``."""
    prefix = f"cannot deserialize {type_name(event_class)} from {fmt}"
    if isinstance(exc, msgspec.ValidationError):
        reason, path = _split_path(str(exc))
        missing = _MISSING.match(reason)
        if missing:
            # Point at the missing field itself, not at the object lacking it.
            path = f"{path or '$'}.{missing['field']}"
        path = path or "$"
        where = "the event" if path == "$" else f"field `{path}`"
        return SerializationError(
            f"{prefix}: {where}: {reason}", event_class=event_class, path=path
        )
    if isinstance(exc, msgspec.DecodeError):
        reason = f"malformed input: {exc}"
    elif isinstance(exc, RecursionError):
        reason = "input is nested too deeply"
    elif isinstance(exc, TypeError):
        reason = f"expected bytes-like data: {exc}"
    else:
        reason = str(exc)
    return SerializationError(f"{prefix}: {reason}", event_class=event_class)


def encode_error(exc: BaseException, event_class: Any, fmt: str) -> SerializationError:
    """The error for an event holding a value ``fmt`` cannot represent."""
    reason = "it is nested too deeply" if isinstance(exc, RecursionError) else exc
    return SerializationError(
        f"cannot serialize {type_name(event_class)} to {fmt}: {reason}",
        event_class=event_class,
    )


def plan_error(
    exc: UnsupportedTypeError, event_class: Any, fmt: str
) -> SerializationError:
    """The error for an event class whose annotations cannot round-trip."""
    where = f"field `{exc.field}`: " if exc.field else ""
    return SerializationError(
        f"{type_name(event_class)} cannot be serialized to {fmt}: {where}{exc}",
        event_class=event_class,
        path=f"$.{exc.field}" if exc.field else None,
    )


def _split_path(message: str) -> tuple[str, str | None]:
    match = _AT.search(message)
    if match is None:
        return message, None
    return message[: match.start()], match["path"]
