"""What every Redis broker does the same way, written once (no I/O).

``RedisBroker``, ``AsyncRedisBroker`` and ``RedisStreamBroker`` differ in how
they move bytes (a thread, an asyncio task, a Streams consumer); the options
they share, the class registry, the envelope they publish, the subscription
entry points and the publish counters are :class:`RedisBrokerBase`'s. A broker
sets ``_tables`` (its :class:`SubscriptionTables`) and the attributes
:meth:`RedisBrokerBase._configure` does not.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

from redis.backoff import NoBackoff

from eventspype.broker.broker import MessageBroker
from eventspype.broker.redis._wire import envelope as _envelope
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.event import NormalizedTag
from eventspype.hooks import outgoing_headers
from eventspype.serializers import EventSerializer, JsonEventSerializer

if TYPE_CHECKING:
    from eventspype.broker.redis._wire.stats import Counters
    from eventspype.pub.publication import EventPublication
    from eventspype.sub.subscriber import EventSubscriber

__all__ = [
    "RedisBrokerBase",
    "SubscriptionTables",
    "check_pubsub_options",
    "url_client_options",
]

_B = TypeVar("_B", bound="RedisBrokerBase")
_T = TypeVar("_T")


def check_pubsub_options(
    publish_timeout: float | None, max_nesting_depth: int | None
) -> None:
    """Validate the Pub/Sub brokers' shared options (call from ``__init__``).

    Raises:
        ValueError: ``publish_timeout`` is not positive.
    """
    if publish_timeout is not None and not publish_timeout > 0:
        raise ValueError(f"publish_timeout must be > 0, got {publish_timeout}")
    if max_nesting_depth is not None:
        warnings.warn(
            "max_nesting_depth is deprecated and ignored: msgspec refuses "
            "nesting past the recursion limit by itself (drop reason too_deep)",
            DeprecationWarning,
            stacklevel=3,  # the caller of the broker's __init__
        )


def url_client_options(
    socket_timeout: float,
    socket_connect_timeout: float,
    options: Mapping[str, Any] | None,
    retry: Any,
) -> dict[str, Any]:
    """The options of the client ``from_url`` makes: timeouts, keepalive, ``retry``.

    ``retry`` is a no-retry policy of the client's flavour (sync or asyncio),
    so that a PUBLISH is never sent twice; ``options`` win over these defaults.
    """
    return {
        "socket_timeout": socket_timeout,
        "socket_connect_timeout": socket_connect_timeout,
        "socket_keepalive": True,
        "retry": retry,
        **(options or {}),
    }


class SubscriptionTables(Protocol):
    """Who a broker delivers which channel to: ``Subscriptions`` (Pub/Sub) or
    ``StreamReceiving`` (Streams)."""

    def add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> object:
        """Deliver ``channel`` to ``subscriber`` through ``publication``'s rule."""

    def discard(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """Undo ``add`` (every rule of ``subscriber`` without ``publication``)."""


class RedisBrokerBase(MessageBroker):
    """The shared part of the Redis brokers (see the module docs)."""

    #: The name in "... is closed" errors.
    _kind: ClassVar[str]
    #: The transport, as instrumentation names it (``PublishInfo.system``).
    messaging_system: ClassVar[str] = "redis"
    #: What :meth:`from_url` makes: the client, and its no-retry policy.
    _client_class: ClassVar[Any]
    _retry_class: ClassVar[Any]
    _serializer: EventSerializer
    _channel_prefix: str
    _classes: ClassRegistry
    _counters: Counters
    _tables: SubscriptionTables
    _closed: bool
    _owns_client: bool

    def _configure(
        self,
        serializer: EventSerializer | None,
        channel_prefix: str,
        allow_unregistered_classes: bool,
        allowed_modules: Iterable[str],
    ) -> None:
        """Set the options every Redis broker has (first thing in ``__init__``)."""
        self._serializer = (
            serializer if serializer is not None else JsonEventSerializer()
        )
        self._channel_prefix = channel_prefix
        self._classes = ClassRegistry(allow_unregistered_classes, allowed_modules)
        self._closed = False
        self._owns_client = False

    @classmethod
    def from_url(
        cls: type[_B],
        url: str,
        serializer: EventSerializer | None = None,
        channel_prefix: str = "eventspype:",
        allow_unregistered_classes: bool = False,
        *,
        socket_timeout: float = 5.0,
        socket_connect_timeout: float = 2.0,
        client_options: Mapping[str, Any] | None = None,
        **broker_options: Any,
    ) -> _B:
        """A broker on a new client for ``url`` (``redis://``, ``rediss://``, ``unix://``).

        The client (``redis.Redis``; ``redis.asyncio.Redis`` for
        ``AsyncRedisBroker``) gets timeouts (publishing raises instead of
        hanging when the server is down or stuck), TCP keepalive and no
        retries (a PUBLISH is never sent twice). ``client_options`` go to its
        ``from_url`` (and win over these defaults); ``broker_options`` are the
        keyword-only options of the constructor. The broker owns the client:
        closing the broker closes it.
        """
        retry = cls._retry_class(NoBackoff(), 0)
        options = url_client_options(
            socket_timeout, socket_connect_timeout, client_options, retry
        )
        client = cls._client_class.from_url(url, **options)
        # An asyncio client's close() is a coroutine; one that never
        # connected holds nothing, so it is left to the collector.
        close = None if inspect.iscoroutinefunction(client.close) else client.close
        return cls._owning(
            client,
            close,
            serializer,
            channel_prefix,
            allow_unregistered_classes,
            **broker_options,
        )

    @classmethod
    def _owning(
        cls: type[_B],
        client: Any,
        close: Callable[[], object] | None,
        *args: Any,
        **options: Any,
    ) -> _B:
        """``cls(client, *args, **options)``, which then owns (closes) ``client``.

        ``close`` closes ``client`` if the constructor raises (``None``: leave it).
        """
        make: Callable[..., _B] = cls  # each broker has its own signature
        try:
            broker = make(client, *args, **options)
        except BaseException:
            if close is not None:
                close()
            raise
        broker._owns_client = True
        return broker

    # -- configuration ----------------------------------------------------

    def register_event_class(self, event_class: type) -> None:
        """Accept ``event_class`` in received messages (see the class docs)."""
        self._classes.register(event_class)

    def register_event_classes(self, *event_classes: type) -> None:
        """:meth:`register_event_class` for each class."""
        for event_class in event_classes:
            self._classes.register(event_class)

    @property
    def channel_prefix(self) -> str:
        """The prefix of every channel name (or stream key) on the server."""
        return self._channel_prefix

    @property
    def serializer(self) -> EventSerializer:
        """The serializer of event payloads."""
        return self._serializer

    @property
    def closed(self) -> bool:
        """Whether the broker was closed."""
        return self._closed

    # -- subscribing ------------------------------------------------------

    def subscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """:meth:`subscribe` on ``str(publication.event_tag)``, for a publisher.

        ``subscriber`` then gets only events whose tag is the publication's
        and that are instances of its event class (subclasses included); the
        others are dropped for it, counted as ``tag_mismatch`` or
        ``class_mismatch``. Subscribed through several publications on one
        channel, it gets what any of them accepts.

        Raises:
            SubscriptionRefused: as :meth:`subscribe` (the brokers that wait
                for Redis's confirmation).
            RuntimeError: the broker is closed.
        """
        self._add(str(publication.event_tag), subscriber, publication)

    def unsubscribe(self, channel: str, subscriber: EventSubscriber) -> None:
        """Stop delivering ``channel`` to ``subscriber`` (however it subscribed).

        With no subscriber left, the broker stops receiving the channel
        (within about a second when the last ones were garbage-collected).
        """
        self._tables.discard(channel, subscriber, None)

    def unsubscribe_publication(
        self, publication: EventPublication, subscriber: EventSubscriber
    ) -> None:
        """Undo :meth:`subscribe_publication` for this publication only."""
        self._tables.discard(str(publication.event_tag), subscriber, publication)

    def _add(
        self,
        channel: str,
        subscriber: EventSubscriber,
        publication: EventPublication | None,
    ) -> None:
        """Subscribe (``RedisBroker`` also waits for Redis's confirmation)."""
        self._tables.add(channel, subscriber, publication)

    # -- publishing -------------------------------------------------------

    def _check_open(self) -> None:
        """Raise ``RuntimeError`` if the broker is closed."""
        if self._closed:
            raise RuntimeError(f"{self._kind} is closed")

    def _envelope(self, event: Any, event_tag: NormalizedTag) -> bytes:
        """The envelope of ``event`` (raises ``RuntimeError`` once closed).

        It carries the headers hooks added to the publish in progress
        (:func:`eventspype.hooks.outgoing_headers`), if any.
        """
        self._check_open()
        return _envelope.encode(
            event_tag,
            type(event),
            self._serializer.serialize(event),
            outgoing_headers(),
        )

    def _counted(self, send: Callable[[_T], object], messages: _T, count: int) -> None:
        """``send(messages)``, counting ``count`` published or one publish error."""
        try:
            send(messages)
        except Exception:
            self._counters.add_publish_error()
            raise
        self._counters.add_published(count)
