"""MessagePack events: the same contract as JSON in a smaller binary form."""

from __future__ import annotations

import msgspec

from eventspype.serializers._engine import MsgspecEventSerializer, WireFormat

__all__ = ["MsgpackEventSerializer"]

_MSGPACK = WireFormat(
    name="MessagePack",
    encoder=msgspec.msgpack.Encoder,
    decoder=msgspec.msgpack.Decoder,
    # The MessagePack timestamp extension stores only the UTC instant.
    datetimes_lose_offset=True,
)


class MsgpackEventSerializer(MsgspecEventSerializer):
    """Exact, validated MessagePack serialization of events (msgspec engine).

    Same contract and same supported types as
    :class:`~eventspype.serializers.JsonEventSerializer`: the document has the
    same shape (events are maps keyed by field names), bytes are binary
    rather than base64, floats may be NaN or infinite, and integers are
    limited to the 64-bit range of the format. Aware datetimes are written as
    RFC 3339 text so that their UTC offset survives; the decoder also accepts
    the timestamp extension that other MessagePack producers write.

    Use it between processes that all run this serializer; eventspype 1.4.2
    only speaks JSON. Instances are thread-safe.

    .. versionadded:: 1.0.0
    """

    wire_format = _MSGPACK
