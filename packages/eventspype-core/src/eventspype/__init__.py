"""eventspype: typed publish/subscribe with pluggable transports.

This module is a manifest: everything importable from ``eventspype``. Names that
live in optional distributions (the serializers, the visualizer) are loaded on
first access and raise an ``ImportError`` naming the distribution to install
when it is missing; importing a missing optional subpackage
(``eventspype.broker.redis``, ...) raises a ``ModuleNotFoundError`` that names
it too.

``__version__`` is the version of eventspype-core, the distribution that owns
this package; :func:`versions` lists every installed eventspype distribution.
"""

# Several distributions (eventspype-core, -serializers, -redis) install into the
# `eventspype` package. extend_path merges their directories when they sit in
# different sys.path entries (editable installs, PYTHONPATH); it must run first.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

from typing import TYPE_CHECKING, Any

from eventspype import _missing
from eventspype._distributions import versions
from eventspype._json_safe import make_json_safe
from eventspype._lazy import available, load_lazy
from eventspype._version import __version__
from eventspype.broker.broker import MessageBroker
from eventspype.broker.local import LocalBroker
from eventspype.delivery import Delivery, current_delivery
from eventspype.event import (
    Event,
    EventTag,
    NormalizedTag,
    TagEnum,
    format_event_tag,
    normalize_event_tag,
)
from eventspype.pub.multipublisher import MultiPublisher
from eventspype.pub.publication import EventPublication
from eventspype.pub.publisher import EventPublisher
from eventspype.sub.asynchronous import (
    AsyncEventSubscriber,
    AsyncFunctionalEventSubscriber,
)
from eventspype.sub.functional import FunctionalEventSubscriber
from eventspype.sub.multisubscriber import MultiSubscriber
from eventspype.sub.queue import QueueEventSubscriber
from eventspype.sub.reporter import ReportingEventSubscriber
from eventspype.sub.subscriber import (
    EventSubscriber,
    OwnedEventSubscriber,
    SubscriberLostWarning,
)
from eventspype.sub.subscription import EventSubscription, PublicationSubscription
from eventspype.sub.tracker import TrackingEventSubscriber

if TYPE_CHECKING:
    from eventspype.serializers import EventSerializer as EventSerializer
    from eventspype.serializers import JsonEventSerializer as JsonEventSerializer
    from eventspype.serializers import (
        MsgpackEventSerializer as MsgpackEventSerializer,
    )
    from eventspype.serializers import SerializationError as SerializationError

    # eventspype-viz may be absent from the tree mypy checks.
    from eventspype.viz.visualizer import (  # type: ignore[import-not-found,import-untyped,unused-ignore]
        EventVisualizer as EventVisualizer,
    )

__all__ = [
    "AsyncEventSubscriber",
    "AsyncFunctionalEventSubscriber",
    "Delivery",
    "Event",
    "EventPublication",
    "EventPublisher",
    "EventSubscriber",
    "EventSubscription",
    "EventTag",
    "FunctionalEventSubscriber",
    "LocalBroker",
    "MessageBroker",
    "MultiPublisher",
    "MultiSubscriber",
    "NormalizedTag",
    "OwnedEventSubscriber",
    "PublicationSubscription",
    "QueueEventSubscriber",
    "ReportingEventSubscriber",
    "SubscriberLostWarning",
    "TagEnum",
    "TrackingEventSubscriber",
    "__version__",
    "current_delivery",
    "format_event_tag",
    "make_json_safe",
    "normalize_event_tag",
    "versions",
]

# name -> (module, distribution). Kept out of __all__: a star import must not
# fail just because an optional distribution is absent.
_LAZY = {
    "EventSerializer": ("eventspype.serializers", "eventspype-serializers"),
    "JsonEventSerializer": ("eventspype.serializers", "eventspype-serializers"),
    "MsgpackEventSerializer": ("eventspype.serializers", "eventspype-serializers"),
    "SerializationError": ("eventspype.serializers", "eventspype-serializers"),
    "EventVisualizer": ("eventspype.viz.visualizer", "eventspype-viz"),
}

# Names looked for here that live elsewhere: the error says where.
_ELSEWHERE = {
    "RedisBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "AsyncRedisBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "RedisStreamBroker": ("eventspype.broker.redis", "eventspype-redis"),
    "AsyncRedisStreamBroker": ("eventspype.broker.redis", "eventspype-redis"),
}

# Last in sys.meta_path: consulted only by imports that already failed.
_missing.install()


def __getattr__(name: str) -> Any:
    return load_lazy(_LAZY, __name__, name, globals(), _ELSEWHERE)


def __dir__() -> list[str]:
    return sorted([*__all__, *available(_LAZY)])
