"""A coroutine function as a subscriber (see :mod:`eventspype.sub.asynchronous`)."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from eventspype.event import NormalizedTag
from eventspype.sub.asynchronous import AsyncEventSubscriber

__all__ = ["AsyncFunctionalEventSubscriber"]


class AsyncFunctionalEventSubscriber(AsyncEventSubscriber):
    """Wraps a coroutine function as a subscriber.

    With ``with_event_info=True`` (the default) it is awaited as
    ``async_fn(event, tag, caller)``; with ``False`` as ``async_fn(event)``.
    The loop, concurrency, backlog and error rules are those of
    :class:`AsyncEventSubscriber`. Keep this object (not just the function)
    alive for as long as it should receive events.
    """

    def __init__(
        self,
        async_fn: Callable[..., Awaitable[Any]],
        with_event_info: bool = True,
        *,
        loop: asyncio.AbstractEventLoop | None = None,
        max_concurrency: int = 1,
        max_pending: int = 1000,
    ) -> None:
        if not (
            inspect.iscoroutinefunction(async_fn)
            or inspect.iscoroutinefunction(type(async_fn).__call__)
        ):
            raise TypeError(
                "AsyncFunctionalEventSubscriber needs a coroutine function "
                f"(async def), got {async_fn!r}; use FunctionalEventSubscriber "
                "for a plain function"
            )
        super().__init__(
            loop=loop, max_concurrency=max_concurrency, max_pending=max_pending
        )
        self._async_fn = async_fn
        self._with_event_info = with_event_info

    @property
    def callback(self) -> Callable[..., Awaitable[Any]]:
        """The wrapped coroutine function."""
        return self._async_fn

    async def call(
        self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
    ) -> None:
        if self._with_event_info:
            await self._async_fn(arg, current_event_tag, current_event_caller)
        else:
            await self._async_fn(arg)
