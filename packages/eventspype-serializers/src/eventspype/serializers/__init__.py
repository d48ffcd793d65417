"""Exact, validated event serializers for eventspype, with msgspec as the engine.

``from eventspype import JsonEventSerializer`` works too: core re-exports these
names lazily when this distribution (eventspype-serializers) is installed.
"""

from eventspype.serializers._version import __version__
from eventspype.serializers.base import EventSerializer
from eventspype.serializers.errors import SerializationError
from eventspype.serializers.json_serializer import JsonEventSerializer
from eventspype.serializers.msgpack_serializer import MsgpackEventSerializer

__all__ = [
    "EventSerializer",
    "JsonEventSerializer",
    "MsgpackEventSerializer",
    "SerializationError",
    "__version__",
]
