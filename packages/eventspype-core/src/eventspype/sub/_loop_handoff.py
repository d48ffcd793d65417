"""Handing results from any thread to an asyncio event loop safely."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

__all__ = ["WaitTimeout", "call_in_loop"]

if sys.version_info >= (3, 11):
    WaitTimeout = TimeoutError
else:  # pragma: no cover - Python 3.10 only

    class WaitTimeout(asyncio.TimeoutError, TimeoutError):
        """On 3.10 ``asyncio.TimeoutError`` and ``TimeoutError`` differ: catch both."""


def call_in_loop(
    loop: asyncio.AbstractEventLoop, callback: Callable[..., Any], *args: Any
) -> bool:
    """Run ``callback(*args)`` in ``loop``'s thread; ``False`` if the loop is closed.

    asyncio objects are not thread-safe: an event delivered by another thread
    (a broker's listener thread, a worker) must never touch a future or a queue
    directly. ``call_soon_threadsafe`` also wakes a loop blocked in ``select``.
    """
    try:
        loop.call_soon_threadsafe(callback, *args)
    except RuntimeError:  # the loop is closed: nobody is waiting any more
        return False
    return True
