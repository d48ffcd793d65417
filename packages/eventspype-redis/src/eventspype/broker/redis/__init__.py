"""RedisBroker: cross-process event delivery over Redis Pub/Sub.

Provided by the eventspype-redis distribution::

    import redis
    from eventspype.broker.redis import RedisBroker

    broker = RedisBroker(redis.Redis(host="localhost", port=6379))
    broker.register_event_class(OrderPlacedEvent)
"""

from eventspype.broker.redis._batch import Batch
from eventspype.broker.redis._broker import RedisBroker
from eventspype.broker.redis._channel_book import SubscriptionRefused
from eventspype.broker.redis._registry import UnsafeClassImportWarning
from eventspype.broker.redis._stats import DROP_REASONS, DropReason, RedisBrokerStats
from eventspype.broker.redis._stream_broker import RedisStreamBroker
from eventspype.broker.redis._version import __version__

__all__ = [
    "DROP_REASONS",
    "Batch",
    "DropReason",
    "RedisBroker",
    "RedisBrokerStats",
    "RedisStreamBroker",
    "SubscriptionRefused",
    "UnsafeClassImportWarning",
    "__version__",
]
