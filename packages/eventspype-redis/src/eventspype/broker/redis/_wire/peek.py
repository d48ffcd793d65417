"""A received message described for a human, without its event class.

The operator's tools (``eventspype tail``, the dead-letter views) show what
arrived on a channel: they run the receiver's envelope checks of
:mod:`~_wire.envelope` and the channel-tag check of :mod:`~_wire.inbound`, and
stop there. The class is named, never resolved nor imported, and the payload
is parsed untyped, so nothing a message says is executed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import msgspec

from eventspype.broker.redis._wire.envelope import EnvelopeError, decode

__all__ = ["MessageView", "describe_message"]

#: The default size limit (the brokers' default ``max_message_bytes``).
MAX_BYTES = 1024 * 1024


@dataclass(frozen=True)
class MessageView:
    """A received message as an operator sees it; no class was imported.

    ``payload`` is the payload parsed as plain JSON (or MessagePack, for a
    base64 payload) when it parses; ``problem`` is ``"<reason>: <detail>"``
    when the message fails a receiver check (then only the fields that were
    read are set).
    """

    channel: str
    event_tag: str | int | None = None
    event_class: str | None = None
    event_module: str | None = None
    payload: Any = None
    problem: str | None = None


def describe_message(
    channel: str, data: bytes, max_bytes: int = MAX_BYTES
) -> MessageView:
    """Check ``data`` received on ``channel`` as a broker would, without its classes.

    The receiver's envelope checks run (size, JSON, shape, the tag of the
    channel); the class is named, never resolved or imported, and the payload
    is parsed untyped. Linear in ``len(data)``; never raises.
    """
    try:
        message = decode(data, max_bytes=max_bytes)
    except EnvelopeError as error:
        return MessageView(channel, problem=f"{error.reason}: {error}")
    tag = message.event_tag
    view = MessageView(channel, tag, message.event_class, message.event_module)
    if (tag if isinstance(tag, str) else str(tag)) != channel:
        problem = (
            f"tag_mismatch: event_tag {tag!r} is not the tag of channel {channel!r}"
        )
        return replace(view, problem=problem)
    try:
        payload = msgspec.json.decode(message.payload)
    except (msgspec.DecodeError, RecursionError, ValueError):
        try:
            payload = msgspec.msgpack.decode(message.payload)
            json.dumps(payload)  # only what JSON can show
        except (msgspec.DecodeError, RecursionError, TypeError, ValueError):
            return replace(
                view, problem="invalid_payload: neither JSON nor MessagePack"
            )
    return replace(view, payload=payload)
