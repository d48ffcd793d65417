"""Redis brokers: cross-process event delivery over Pub/Sub or Streams.

``RedisBroker`` (Pub/Sub, a listener thread), ``AsyncRedisBroker`` (Pub/Sub,
an asyncio task) and ``RedisStreamBroker`` (Streams, at-least-once per
consumer group).

Provided by the eventspype-redis distribution::

    import redis
    from eventspype.broker.redis import RedisBroker

    broker = RedisBroker(redis.Redis(host="localhost", port=6379))
    broker.register_event_class(OrderPlacedEvent)
"""

from eventspype.broker.redis._async_broker import AsyncRedisBroker
from eventspype.broker.redis._async_writer import PublishQueueFull
from eventspype.broker.redis._batch import Batch
from eventspype.broker.redis._broker import RedisBroker
from eventspype.broker.redis._channel_book import SubscriptionRefused
from eventspype.broker.redis._dead_letters import DeadLetter
from eventspype.broker.redis._registry import UnsafeClassImportWarning
from eventspype.broker.redis._stats import DROP_REASONS, DropReason, RedisBrokerStats
from eventspype.broker.redis._stream_broker import RedisStreamBroker
from eventspype.broker.redis._stream_stats import ChannelBacklog, RedisStreamStats
from eventspype.broker.redis._version import __version__

__all__ = [
    "DROP_REASONS",
    "AsyncRedisBroker",
    "Batch",
    "ChannelBacklog",
    "DeadLetter",
    "DropReason",
    "PublishQueueFull",
    "RedisBroker",
    "RedisBrokerStats",
    "RedisStreamBroker",
    "RedisStreamStats",
    "SubscriptionRefused",
    "UnsafeClassImportWarning",
    "__version__",
]
