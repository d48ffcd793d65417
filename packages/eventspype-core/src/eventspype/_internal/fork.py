"""Keeping objects usable in the child of ``os.fork()``: the one fork registry.

A lock that some thread of the parent held at the moment of the fork stays
held for ever in the child, where that thread does not exist, and the parent's
sockets are copies the parent goes on using. Objects that own locks or
connections register here (core's publishers, subscribers and brokers, the
Redis brokers' connections, counters and listeners); in the child, right
after the fork and before anything else runs, each one's
``_after_fork_in_child()`` replaces its locks with new, free ones (and may
reset other per-process state: forget, without closing, the parent's
connections and threads).
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import Any, Protocol

__all__ = ["ForkSafeLock", "register_for_fork"]


class _ForkAware(Protocol):
    def _after_fork_in_child(self) -> None: ...


# id(obj) -> weak reference. Keyed by id, not by the object, because user
# subclasses may be unhashable; the callback forgets only its own entry.
_holders: dict[int, weakref.ReferenceType[Any]] = {}


def register_for_fork(obj: _ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in the child of every later fork.

    Held weakly: registering never keeps ``obj`` alive.
    """
    key = id(obj)

    def forget(ref: weakref.ReferenceType[Any]) -> None:
        if _holders.get(key) is ref:
            del _holders[key]

    _holders[key] = weakref.ref(obj, forget)


class ForkSafeLock:
    """Mixin: ``self._lock``, a ``threading.Lock`` that a forked child replaces.

    Call :meth:`_init_lock` in ``__init__``; a class with more per-process
    state overrides ``_after_fork_in_child`` and calls ``super()``'s.
    """

    _lock: threading.Lock

    def _init_lock(self) -> None:
        self._lock = threading.Lock()
        register_for_fork(self)

    def _after_fork_in_child(self) -> None:
        self._lock = threading.Lock()


def _reinit_in_child() -> None:
    for ref in list(_holders.values()):
        obj = ref()
        if obj is not None:
            obj._after_fork_in_child()


if hasattr(os, "register_at_fork"):  # POSIX
    os.register_at_fork(after_in_child=_reinit_in_child)
