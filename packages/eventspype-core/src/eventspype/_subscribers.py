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

from eventspype._internal.fork import register_for_fork
from eventspype._internal.lost import lost_subscriber_message, warn_lost_subscriber

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

    With ``watch`` (what the subscribers subscribe to, for the message), a
    subscriber collected before the list was ever dispatched to since it was
    added raises a :class:`SubscriberLostWarning`; see :class:`_Unconfirmed`
    for how that costs nothing on the dispatch path.
    """

    __slots__ = (
        "__weakref__",
        "_lock",
        "_refs",
        "_unconfirmed",
        "pending",
        "snapshot",
        "watch",
    )

    def __init__(self, watch: str | None = None) -> None:
        self._lock = threading.Lock()
        self._refs: dict[int, _Ref] = {}
        #: Named by the lost-subscriber warning; ``None`` turns it off.
        self.watch = watch
        # key -> (ref, warning text) of subscribers added since the last
        # dispatch; read (never written) by the weakref callbacks.
        self._unconfirmed: dict[int, tuple[_Ref, str]] = {}
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
            if self.watch is not None:
                # Entry, class, then snapshot: see _Unconfirmed.snapshot.
                message = lost_subscriber_message(subscriber, self.watch)
                self._unconfirmed[key] = (ref, message)
                self.__class__ = _Unconfirmed
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
            self._unconfirmed.pop(key, None)
            self.snapshot = tuple(self._refs.values())
            return True

    def set_watch(self, watch: str | None) -> None:
        """Name what the subscribers subscribe to, or stop watching (``None``).

        A publisher that hands its events to a broker stops watching its own
        list: the broker's list is the one dispatched to.
        """
        with self._lock:
            self.watch = watch
            if watch is None:
                self._unconfirmed.clear()

    def live(self) -> list[EventSubscriber]:
        """The subscribers still alive, in subscription order."""
        self.reconcile()
        # Through the slot, not the attribute: listing is not a dispatch.
        snapshot = _SNAPSHOT.__get__(self, WeakSubscriberList)
        return [s for s in (ref() for ref in snapshot) if s is not None]

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
                self._unconfirmed.pop(key, None)
        self.snapshot = tuple(refs.values())

    def _finalizer(self, key: int) -> Callable[[_Ref], None]:
        pending = self.pending
        unconfirmed = self._unconfirmed

        def collected(ref: _Ref) -> None:
            pending.append((key, ref))
            entry = unconfirmed.get(key)
            if entry is not None and entry[0] is ref:
                warn_lost_subscriber(entry[1])

        return collected


#: The ``snapshot`` slot of :class:`WeakSubscriberList`, read and written
#: directly where going through :class:`_Unconfirmed` would confirm.
_SNAPSHOT = WeakSubscriberList.__dict__["snapshot"]


class _Unconfirmed(WeakSubscriberList):
    """A :class:`WeakSubscriberList` holding subscribers that got no event yet.

    ``add`` turns a watched list into this class; the first read of
    ``snapshot`` (which is how publishers and brokers dispatch) confirms every
    subscriber and turns it back into a plain ``WeakSubscriberList``, whose
    ``snapshot`` is a bare slot. So the dispatch path pays one property call
    after each subscription and nothing otherwise, where a "received" flag
    would cost a write on every publish.
    """

    __slots__ = ()

    @property
    def snapshot(self) -> tuple[_Ref, ...]:
        # No lock: a weakref callback may warn, and a warning hook may publish.
        # The order makes every race harmless against add() (entry, then
        # class, then snapshot): a subscriber added meanwhile either keeps its
        # entry and the class that confirms it at the next dispatch, or loses
        # its entry (a warning missed, never a false one).
        self.__class__ = WeakSubscriberList  # type: ignore[assignment]
        self._unconfirmed.clear()
        return _SNAPSHOT.__get__(self, WeakSubscriberList)  # type: ignore[no-any-return]

    @snapshot.setter
    def snapshot(self, value: tuple[_Ref, ...]) -> None:
        _SNAPSHOT.__set__(self, value)


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
    # Begins with 1.4.2's wording, which log filters and tests may match.
    logger.exception(
        "Unexpected error while processing event %r: subscriber %r raised while "
        "handling a %s%s; the other subscribers still receive it",
        event_tag,
        subscriber,
        type(event).__qualname__,
        where,
    )
