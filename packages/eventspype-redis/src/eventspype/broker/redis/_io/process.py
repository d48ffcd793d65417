"""What brokers do when their process forks or exits.

Fork: a child has one thread, a copy of every lock in whatever state another
parent thread left it (held forever, if it was held at the fork), and the
parent's sockets. Using any of them in the child deadlocks or talks on the
parent's connection, interleaving with it. Every object that owns a lock or a
connection registers with :func:`track`; after a fork, in the child only, each
gets ``_after_fork_in_child()``: it must create new locks and events and forget
(not close: the parent still uses them) its connections and threads.

Exit: the listener thread of a broker nobody closed is stopped (and briefly
joined) before the interpreter tears down the modules it uses, so that exiting
prints nothing.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from typing import Protocol

__all__ = ["ForkAware", "Stoppable", "join_thread", "stop_at_exit", "track"]


class ForkAware(Protocol):
    """What :func:`track` needs: a way to reset after a fork."""

    def _after_fork_in_child(self) -> None: ...


class Stoppable(Protocol):
    """What :func:`stop_at_exit` needs: a thread owner."""

    def request_stop(self) -> None: ...

    def join(self, timeout: float) -> bool: ...


_tracked: weakref.WeakSet[ForkAware] = weakref.WeakSet()
_running: weakref.WeakSet[Stoppable] = weakref.WeakSet()


def track(obj: ForkAware) -> None:
    """Call ``obj._after_fork_in_child()`` in the child of every later fork."""
    _tracked.add(obj)


def stop_at_exit(obj: Stoppable) -> None:
    """Stop ``obj`` at interpreter exit if it is still alive then."""
    _running.add(obj)


def join_thread(thread: threading.Thread | None, timeout: float) -> bool:
    """Wait up to ``timeout`` s for ``thread`` to end; ``False`` if it did not.

    ``True`` at once when there is no thread, or when called on ``thread``
    itself (a subscriber closing its broker: the thread ends once it returns).
    """
    if thread is None or thread is threading.current_thread():
        return True
    thread.join(timeout)
    return not thread.is_alive()


def _reset_all() -> None:
    # The child runs only this thread now: nothing else can touch the objects.
    for obj in list(_tracked):
        obj._after_fork_in_child()


@atexit.register
def _stop_all() -> None:
    running = list(_running)
    for obj in running:
        obj.request_stop()
    for obj in running:
        obj.join(1.0)


if hasattr(os, "register_at_fork"):  # POSIX; Windows has no fork
    os.register_at_fork(after_in_child=_reset_all)
