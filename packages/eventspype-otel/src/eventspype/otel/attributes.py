"""The names eventspype-otel puts on spans and metrics.

They follow the OpenTelemetry semantic conventions for messaging, version
1.30.0 (:data:`SCHEMA_URL`), where a name exists; the ``eventspype.*`` ones
are this package's own.
"""

from __future__ import annotations

from typing import Final

#: The semantic-conventions schema the names below follow.
SCHEMA_URL: Final = "https://opentelemetry.io/schemas/1.30.0"

# Span and metric attributes (semantic conventions).
SYSTEM: Final = "messaging.system"
DESTINATION: Final = "messaging.destination.name"
OPERATION_TYPE: Final = "messaging.operation.type"
OPERATION_NAME: Final = "messaging.operation.name"
MESSAGE_ID: Final = "messaging.message.id"
CONSUMER_GROUP: Final = "messaging.consumer.group.name"
ERROR_TYPE: Final = "error.type"

# This package's own attributes.
#: How many times the message was delivered, this delivery included.
DELIVERY_COUNT: Final = "eventspype.delivery_count"
#: The event's class, ``module.QualName``.
EVENT_CLASS: Final = "eventspype.event.class"
#: Why a message was dropped (a broker's drop reason).
DROP_REASON: Final = "eventspype.drop.reason"

# Metrics (semantic conventions).
SENT_MESSAGES: Final = "messaging.client.sent.messages"
CONSUMED_MESSAGES: Final = "messaging.client.consumed.messages"
PROCESS_DURATION: Final = "messaging.process.duration"

# Metrics of this package (read from the brokers' stats()).
DROPPED: Final = "eventspype.messages.dropped"
HEADERS_DROPPED: Final = "eventspype.headers.dropped"
DEAD_LETTERS: Final = "eventspype.messages.dead_lettered"
RECONNECTS: Final = "eventspype.reconnects"
STREAM_LAG: Final = "eventspype.stream.lag"
STREAM_PENDING: Final = "eventspype.stream.pending"

#: The ``messaging.system`` of in-process delivery.
IN_PROCESS: Final = "eventspype"
