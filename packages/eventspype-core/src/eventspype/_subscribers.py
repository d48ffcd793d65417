"""A thread-safe, ordered list of subscribers held by weak reference.

Shared by :class:`~eventspype.pub.publisher.EventPublisher` and
:class:`~eventspype.broker.local.LocalBroker`. Dispatch reads ``snapshot``, an
immutable tuple swapped in whole under the lock whenever the list changes, so
publishing never takes a lock and never sees a half-updated list.
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from eventspype._fork import register_for_fork

if TYPE_CHECKING:
    from eventspype.sub.subscriber import EventSubscriber

__all__ = ["WeakSubscriberList", "log_subscriber_error"]

_Ref = weakref.ReferenceType["EventSubscriber"]


class WeakSubscriberList:
    """Subscribers in the order they were added, each held by a weak reference.

    A subscriber that is garbage-collected disappears by itself: its weakref
    callback queues it in ``pending`` and the queue is applied under the lock by
    the next operation (including the next dispatch, see :meth:`reconcile`).
    The callback never takes the lock itself, because garbage collection can run
    it on a thread that already holds the lock, in the middle of a mutation.

    Entries are keyed by ``id(subscriber)`` rather than by the weakref, so
    subscribers need not be hashable (a dataclass subscriber with ``eq=True``
    is not).
    """

    __slots__ = ("__weakref__", "_lock", "_refs", "pending", "snapshot")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._refs: dict[int, _Ref] = {}
        #: ``(key, ref)`` pairs of collected subscribers, appended by weakref
        #: callbacks (``deque.append`` is atomic) and drained under the lock.
        self.pending: deque[tuple[int, _Ref]] = deque()
        #: The live list for dispatch: dead entries dereference to ``None``.
        self.snapshot: tuple[_Ref, ...] = ()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        # A parent thread may have held the lock mid-mutation: a new lock,
        # and a snapshot rebuilt from the entries.
        self._lock = threading.Lock()
        self.snapshot = tuple(self._refs.values())

    def add(self, subscriber: EventSubscriber) -> bool:
        """Add ``subscriber``; return ``False`` if it was already present."""
        key = id(subscriber)
        ref = weakref.ref(subscriber, self._finalizer(key))
        with self._lock:
            self._drain()
            existing = self._refs.get(key)
            if existing is not None and existing() is subscriber:
                return False
            self._refs[key] = ref
            self.snapshot = tuple(self._refs.values())
            return True

    def discard(self, subscriber: EventSubscriber) -> bool:
        """Remove ``subscriber``; return ``False`` if it was not present."""
        key = id(subscriber)
        with self._lock:
            self._drain()
            existing = self._refs.get(key)
            if existing is None or existing() is not subscriber:
                return False
            del self._refs[key]
            self.snapshot = tuple(self._refs.values())
            return True

    def live(self) -> list[EventSubscriber]:
        """The subscribers still alive, in subscription order."""
        self.reconcile()
        return [s for s in (ref() for ref in self.snapshot) if s is not None]

    def reconcile(self) -> None:
        """Apply the removals queued by weakref callbacks."""
        with self._lock:
            self._drain()

    def __len__(self) -> int:
        self.reconcile()
        return len(self._refs)

    def _drain(self) -> None:
        # Caller holds self._lock.
        pending = self.pending
        if not pending:
            return
        refs = self._refs
        while pending:
            key, ref = pending.popleft()
            # The id may already belong to a newer subscriber: only drop our ref.
            if refs.get(key) is ref:
                del refs[key]
        self.snapshot = tuple(refs.values())

    def _finalizer(self, key: int) -> Callable[[_Ref], None]:
        pending = self.pending

        def collected(ref: _Ref) -> None:
            pending.append((key, ref))

        return collected


def log_subscriber_error(
    logger: logging.Logger,
    subscriber: object,
    event: object,
    event_tag: object,
    channel: str | None = None,
) -> None:
    """Log the exception being handled, raised by ``subscriber`` for ``event``.

    Call it from an ``except`` block: the traceback is attached.
    """
    where = "" if channel is None else f" on channel {channel!r}"
    logger.exception(
        "Subscriber %r raised while handling %s event with tag %r%s; "
        "the other subscribers still receive it",
        subscriber,
        type(event).__qualname__,
        event_tag,
        where,
    )
