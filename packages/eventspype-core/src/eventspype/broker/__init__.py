"""Brokers: the transports between publishers and subscribers.

``MessageBroker`` and ``LocalBroker`` come with eventspype-core; the Redis
brokers (``RedisBroker``, ``AsyncRedisBroker``, ``RedisStreamBroker``,
``AsyncRedisStreamBroker``) and the
serializers are loaded on first access from their distributions.
"""

# Siblings (eventspype-serializers, eventspype-redis) add modules to this package
# from their own directories; extend_path merges them and must run first.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from typing import TYPE_CHECKING, Any

from eventspype._lazy import available, load_lazy
from eventspype.broker.broker import MessageBroker
from eventspype.broker.local import LocalBroker

if TYPE_CHECKING:
    from eventspype.broker.redis import AsyncRedisBroker as AsyncRedisBroker
    from eventspype.broker.redis import (
        AsyncRedisStreamBroker as AsyncRedisStreamBroker,
    )
    from eventspype.broker.redis import RedisBroker as RedisBroker
    from eventspype.broker.redis import RedisStreamBroker as RedisStreamBroker
    from eventspype.serializers import EventSerializer as EventSerializer
    from eventspype.serializers import JsonEventSerializer as JsonEventSerializer

__all__ = ["LocalBroker", "MessageBroker"]

_LAZY = {
    "RedisBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "AsyncRedisBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "RedisStreamBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "AsyncRedisStreamBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "EventSerializer": ("eventspype.serializers", "eventspype-serializers"),
    "JsonEventSerializer": ("eventspype.serializers", "eventspype-serializers"),
}


def __getattr__(name: str) -> Any:
    return load_lazy(_LAZY, __name__, name, globals())


def __dir__() -> list[str]:
    return sorted([*__all__, *available(_LAZY)])
