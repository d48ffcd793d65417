"""Redis brokers: cross-process event delivery over Pub/Sub or Streams.

``RedisBroker`` (Pub/Sub, a listener thread), ``AsyncRedisBroker`` (Pub/Sub,
an asyncio task), ``RedisStreamBroker`` (Streams, at-least-once per consumer
group, a reader thread) and ``AsyncRedisStreamBroker`` (the same, an asyncio
task); ``StreamAdmin``, a read-only view of the streams for operators.

Provided by the eventspype-redis distribution::

    import redis
    from eventspype.broker.redis import RedisBroker

    broker = RedisBroker(redis.Redis(host="localhost", port=6379))
    broker.register_event_class(OrderPlacedEvent)
"""

from eventspype.broker.redis._io.batch import Batch
from eventspype.broker.redis._version import __version__
from eventspype.broker.redis._wire.peek import MessageView, describe_message
from eventspype.broker.redis._wire.registry import UnsafeClassImportWarning
from eventspype.broker.redis._wire.stats import (
    DROP_REASONS,
    DropReason,
    RedisBrokerStats,
)
from eventspype.broker.redis.pubsub.aio import AsyncRedisBroker
from eventspype.broker.redis.pubsub.aio_writer import PublishQueueFull
from eventspype.broker.redis.pubsub.subscribing import SubscriptionRefused
from eventspype.broker.redis.pubsub.sync import RedisBroker
from eventspype.broker.redis.streams.admin import StreamAdmin
from eventspype.broker.redis.streams.admin_model import (
    ConsumerInfo,
    GroupInfo,
    Readiness,
    Replay,
    StreamInfo,
    UnknownChannel,
    UnknownGroup,
)
from eventspype.broker.redis.streams.aio import AsyncRedisStreamBroker
from eventspype.broker.redis.streams.dead_letters import DeadLetter
from eventspype.broker.redis.streams.health import GroupBacklog, StreamHealth
from eventspype.broker.redis.streams.stats import ChannelBacklog, RedisStreamStats
from eventspype.broker.redis.streams.sync import RedisStreamBroker

__all__ = [
    "DROP_REASONS",
    "AsyncRedisBroker",
    "AsyncRedisStreamBroker",
    "Batch",
    "ChannelBacklog",
    "ConsumerInfo",
    "DeadLetter",
    "DropReason",
    "GroupBacklog",
    "GroupInfo",
    "MessageView",
    "PublishQueueFull",
    "Readiness",
    "RedisBroker",
    "RedisBrokerStats",
    "RedisStreamBroker",
    "RedisStreamStats",
    "Replay",
    "StreamAdmin",
    "StreamHealth",
    "StreamInfo",
    "SubscriptionRefused",
    "UnknownChannel",
    "UnknownGroup",
    "UnsafeClassImportWarning",
    "__version__",
    "describe_message",
]
