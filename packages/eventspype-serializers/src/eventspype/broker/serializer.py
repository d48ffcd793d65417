"""Compatibility module: the import path eventspype 1.4.2 used for serializers.

``from eventspype.broker.serializer import JsonEventSerializer`` keeps working;
new code should import from :mod:`eventspype.serializers` (or ``eventspype``).
``make_json_safe`` lives in eventspype-core and is re-exported here because
1.4.2 defined it in this module.
"""

from eventspype import make_json_safe
from eventspype.serializers import (
    EventSerializer,
    JsonEventSerializer,
    MsgpackEventSerializer,
    SerializationError,
)

__all__ = [
    "EventSerializer",
    "JsonEventSerializer",
    "MsgpackEventSerializer",
    "SerializationError",
    "make_json_safe",
]
