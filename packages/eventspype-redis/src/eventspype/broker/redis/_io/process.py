"""What brokers do when their process exits.

(Fork: every object that owns a lock or a connection registers with core's
``eventspype._internal.fork.register_for_fork``; in the child its
``_after_fork_in_child()`` creates new locks and events and forgets, without
closing, the parent's connections and threads.)

Exit: the listener thread of a broker nobody closed is stopped (and briefly
joined) before the interpreter tears down the modules it uses, so that exiting
prints nothing.
"""

from __future__ import annotations

import atexit
import threading
import weakref
from typing import Protocol

__all__ = ["Stoppable", "join_thread", "stop_at_exit"]


class Stoppable(Protocol):
    """What :func:`stop_at_exit` needs: a thread owner."""

    def request_stop(self) -> None: ...

    def join(self, timeout: float) -> bool: ...


_running: weakref.WeakSet[Stoppable] = weakref.WeakSet()


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


@atexit.register
def _stop_all() -> None:
    running = list(_running)
    for obj in running:
        obj.request_stop()
    for obj in running:
        obj.join(1.0)
