"""Hooks around publishing and delivery, for instrumentation (tracing, metrics, tests).

An instrumentation subclasses :class:`Hook` and installs it with
:func:`add_hook`. From then on, every publish through an
:class:`~eventspype.EventPublisher` (and so through a ``MultiPublisher``) calls
:meth:`Hook.publish_started` before the event leaves and
:meth:`Hook.publish_finished` after, and every call of a subscriber by a
publisher, a ``LocalBroker`` or a Redis broker (Pub/Sub and Streams alike) is
wrapped in :meth:`Hook.delivery_started` / :meth:`Hook.delivery_finished`.
A coroutine subscriber (:class:`~eventspype.AsyncEventSubscriber`) is wrapped
around the run of its handler on its loop, not around the scheduling.

Everything a hook may want is in the :class:`PublishInfo` and
:class:`DeliveryInfo` it is given: the publication, the event, the channel,
the transport (``system``), the headers, the transport's details of a remote
delivery (a :class:`~eventspype.delivery.Delivery`: stream entry id, group,
delivery count), the outcome and the duration. No broker package is imported.

**Headers.** :attr:`PublishInfo.headers` starts empty; what a hook puts in it
during :meth:`Hook.publish_started` travels with the event when a broker that
carries headers sends it (the Redis brokers do, in the envelope), and arrives
as :attr:`Delivery.headers <eventspype.delivery.Delivery.headers>` in the
receiving process. A broker reads them with :func:`outgoing_headers`.

**Cost.** With no hook installed, ``EventPublisher.publish`` and
``LocalBroker.publish`` are the plain fast paths, with not even a test for
hooks in them: installing the first hook switches them to their observed
twins, removing the last switches them back (so install hooks before taking
``send = publisher.publish``: a bound method keeps the path it was taken
from; one taken while hooks were installed still works after, only slower).
The other paths (``publish_async``, the Redis fan-out) test one empty tuple.
With hooks, each publish and each subscriber call allocates one info object
and reads a monotonic clock twice.

**Errors.** A hook that raises is logged (at most once per 10 seconds per
hook method) and otherwise ignored: instrumentation never stops an event.
What the subscriber or the broker raised reaches the hook as ``error`` and
then goes on as if no hook were installed.
"""

from __future__ import annotations

import contextvars
import logging
import sys
import threading
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from time import perf_counter_ns
from typing import TYPE_CHECKING, Any

from eventspype._internal.fork import register_for_fork
from eventspype._internal.ratelimit import RateLimitedWarning

if TYPE_CHECKING:
    from eventspype.delivery import Delivery
    from eventspype.event import NormalizedTag
    from eventspype.pub.publication import EventPublication

__all__ = [
    "DeliveryInfo",
    "Hook",
    "PublishInfo",
    "add_hook",
    "installed_hooks",
    "outgoing_headers",
    "remove_hook",
]

_logger = logging.getLogger(__name__)

#: The ``system`` of in-process delivery (no broker, ``LocalBroker``).
IN_PROCESS = "eventspype"


@dataclass(slots=True)
class PublishInfo:
    """One publish, as hooks see it (one object per publish, shared by hooks)."""

    #: The channel, ``str(publication.event_tag)``.
    channel: str
    #: The event object being published.
    event: Any
    #: Its normalized tag.
    event_tag: NormalizedTag
    #: The publication it is published under.
    publication: EventPublication
    #: The broker it goes through, ``None`` for direct in-process delivery.
    broker: Any
    #: ``"eventspype"`` in-process, else the broker's ``messaging_system``
    #: attribute (``"redis"`` for the Redis brokers).
    system: str
    #: Headers to send with the event; hooks add to it in ``publish_started``.
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)
class DeliveryInfo:
    """One call of one subscriber with one event, as hooks see it."""

    #: The channel the event was delivered on.
    channel: str
    #: The event object.
    event: Any
    #: Its normalized tag.
    event_tag: NormalizedTag
    #: The subscriber being called.
    subscriber: Any
    #: What the subscriber receives as ``caller``.
    caller: Any
    #: The transport's details of a remote delivery, ``None`` in-process.
    delivery: Delivery | None
    #: For a coroutine subscriber, the context of the thread or task that
    #: handed it the event (its handler runs later, in a task of its loop);
    #: ``None`` otherwise (the hook runs in that context itself).
    context: contextvars.Context | None = None

    @property
    def system(self) -> str:
        """``delivery.system`` for a remote delivery, else ``"eventspype"``."""
        return IN_PROCESS if self.delivery is None else self.delivery.system


class Hook:
    """Base class of a hook; override the methods you need (all do nothing).

    What ``*_started`` returns is given back to the matching ``*_finished``
    (a span, a start time, a context token): the hook keeps no per-call state.
    ``duration_ns`` is measured by eventspype with ``time.perf_counter_ns``
    around the publish or the subscriber call (for a coroutine subscriber,
    around its handler's run). ``error`` is what it raised, ``None`` if
    nothing; the exception then propagates as usual (a publisher isolates a
    subscriber's error from the other subscribers).
    """

    def publish_started(self, info: PublishInfo) -> object:
        """An event is about to be published; add outgoing headers here."""
        return None

    def publish_finished(
        self,
        info: PublishInfo,
        state: object,
        error: BaseException | None,
        duration_ns: int,
    ) -> None:
        """The publish returned (or raised ``error``)."""

    def delivery_started(self, info: DeliveryInfo) -> object:
        """A subscriber is about to handle an event."""
        return None

    def delivery_finished(
        self,
        info: DeliveryInfo,
        state: object,
        error: BaseException | None,
        duration_ns: int,
    ) -> None:
        """The subscriber returned (or raised ``error``)."""


class _Registry:
    """The installed hooks: a tuple replaced whole, read without a lock."""

    __slots__ = ("__weakref__", "hooks", "lock", "switches", "warnings")

    def __init__(self) -> None:
        self.hooks: tuple[Hook, ...] = ()
        self.lock = threading.Lock()
        self.warnings: dict[tuple[int, str], RateLimitedWarning] = {}
        self.switches: list[Callable[[bool], None]] = []
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held the lock at the fork; the hooks stay.
        self.lock = threading.Lock()

    def switch(self, use_hooks: Callable[[bool], None]) -> None:
        """Call ``use_hooks(True)`` when the first hook is installed and
        ``use_hooks(False)`` when the last one is removed (now, too, with
        the current state): how a fast path swaps in its observed twin."""
        with self.lock:
            self.switches.append(use_hooks)
            use_hooks(bool(self.hooks))

    def _set(self, hooks: tuple[Hook, ...]) -> None:
        # Caller holds the lock.
        was, self.hooks = bool(self.hooks), hooks
        if bool(hooks) != was:
            for use_hooks in self.switches:
                use_hooks(bool(hooks))


#: Read by the publish and delivery paths: ``if REGISTRY.hooks:``.
REGISTRY = _Registry()

_outgoing: contextvars.ContextVar[Mapping[str, str] | None] = contextvars.ContextVar(
    "eventspype_outgoing_headers", default=None
)


def add_hook(hook: Hook) -> None:
    """Install ``hook``, run after those already installed (twice: no effect)."""
    if not isinstance(hook, Hook):
        raise TypeError(f"add_hook needs a Hook, got {type(hook).__name__}")
    with REGISTRY.lock:
        if hook not in REGISTRY.hooks:
            REGISTRY._set((*REGISTRY.hooks, hook))


def remove_hook(hook: Hook) -> None:
    """Uninstall ``hook``; an unknown hook is ignored."""
    with REGISTRY.lock:
        REGISTRY._set(tuple(h for h in REGISTRY.hooks if h is not hook))
        for key in [k for k in REGISTRY.warnings if k[0] == id(hook)]:
            del REGISTRY.warnings[key]


def installed_hooks() -> tuple[Hook, ...]:
    """The installed hooks, in the order they run."""
    return REGISTRY.hooks


def outgoing_headers() -> Mapping[str, str] | None:
    """The headers of the publish in progress in this context, for brokers.

    A broker that carries headers calls it from its ``publish`` (or
    ``publish_async``) while a publisher publishes through it; ``None`` when
    no hook is installed or no hook added any header.
    """
    return _outgoing.get()


def _hook_failed(hook: Hook, method: str) -> None:
    key = (id(hook), method)
    log = REGISTRY.warnings.get(key)
    if log is None:
        log = REGISTRY.warnings.setdefault(key, RateLimitedWarning(_logger))
    error = sys.exc_info()[1]
    log.warning("Hook %r raised in %s; ignored: %r", hook, method, error)


def _publish_started(
    hooks: tuple[Hook, ...], info: PublishInfo
) -> tuple[list[object], contextvars.Token[Mapping[str, str] | None] | None]:
    states: list[object] = []
    for hook in hooks:
        try:
            states.append(hook.publish_started(info))
        except Exception:
            states.append(None)
            _hook_failed(hook, "publish_started")
    token = _outgoing.set(info.headers) if info.headers else None
    return states, token


def _publish_finished(
    hooks: tuple[Hook, ...],
    info: PublishInfo,
    states: list[object],
    token: contextvars.Token[Mapping[str, str] | None] | None,
    error: BaseException | None,
    duration_ns: int,
) -> None:
    if token is not None:
        _outgoing.reset(token)
    # Last started, first finished: spans and context tokens nest.
    index = len(hooks)
    while index:
        index -= 1
        try:
            hooks[index].publish_finished(info, states[index], error, duration_ns)
        except Exception:
            _hook_failed(hooks[index], "publish_finished")


def _delivery_started(hooks: tuple[Hook, ...], info: DeliveryInfo) -> list[object]:
    states: list[object] = []
    for hook in hooks:
        try:
            states.append(hook.delivery_started(info))
        except Exception:
            states.append(None)
            _hook_failed(hook, "delivery_started")
    return states


def _delivery_finished(
    hooks: tuple[Hook, ...],
    info: DeliveryInfo,
    states: list[object],
    error: BaseException | None,
    duration_ns: int,
) -> None:
    index = len(hooks)
    while index:
        index -= 1
        try:
            hooks[index].delivery_finished(info, states[index], error, duration_ns)
        except Exception:
            _hook_failed(hooks[index], "delivery_finished")


async def _observe_run(info: DeliveryInfo, run: Awaitable[object]) -> None:
    """Await a coroutine subscriber's handler ``run`` between the hooks."""
    hooks = REGISTRY.hooks
    states = _delivery_started(hooks, info)
    error: BaseException | None = None
    start = perf_counter_ns()
    try:
        await run
    except BaseException as raised:
        error = raised
        raise
    finally:
        _delivery_finished(hooks, info, states, error, perf_counter_ns() - start)
