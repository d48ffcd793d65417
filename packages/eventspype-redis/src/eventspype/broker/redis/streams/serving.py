"""Running a consumer process: block until SIGTERM or SIGINT, then drain.

``broker.serve()`` is the main of a consumer process::

    broker = RedisStreamBroker.from_url(url, group="billing")
    broker.subscribe_publication(publication, subscriber)
    broker.serve()          # returns after SIGTERM/SIGINT and a drain: exit 0

The first signal stops reading and gives the subscribers ``drain`` seconds to
finish what is in hand (acknowledged as usual); what is left is handed back
to the group, which other consumers take at their next claim sweep. A second
signal hands everything back at once.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterable
from types import FrameType

__all__ = ["serve_until_signal"]


def serve_until_signal(
    close: Callable[[float], None],
    hurry: Callable[[], None],
    drain: float,
    signals: Iterable[signal.Signals] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Block until one of ``signals``, then ``close(drain)``; a second signal
    calls ``hurry()`` (stop draining). Restores the previous handlers.

    Raises:
        ValueError: not called from the main thread (Python delivers signals
            there only).
    """
    if threading.current_thread() is not threading.main_thread():
        raise ValueError("serve() must run in the main thread (signals)")
    received = threading.Event()
    count = 0

    def on_signal(signum: int, frame: FrameType | None) -> None:
        nonlocal count
        count += 1
        if count > 1:
            hurry()
        received.set()

    wanted = list(signals)
    previous = {sig: signal.signal(sig, on_signal) for sig in wanted}
    try:
        while not received.wait(0.5):
            pass
        close(drain)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
