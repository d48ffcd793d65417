"""A ``redis.asyncio`` pipeline on one connection, read by :class:`RespReader`.

What ``pipe.execute(raise_on_error=False)`` returns, minus the pool (the
caller holds the connection) and minus redis-py's reading: the replies are
cut out of the socket's bytes by :class:`~_io.resp_reader.RespReader` (one
read for the whole batch when it arrived at once, instead of one await per
RESP line), then given to the same response callbacks ``parse_response``
applies. ``python benchmarks/bench_async_streams.py``, row "read an ack +
XREADGROUP reply": 17.0 us with redis-py's parser, 6.7-6.8 us this way
(2.5x; redis-py 8.2 without hiredis, Python 3.11).

Only where :func:`~_io.resp_reader.reads_faster` says so (redis-py's
connections with its Python parser and undecoded replies); anything else
takes redis-py's own way (:func:`read_replies_slow`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Collection
from typing import Any

import redis.exceptions

from eventspype.broker.redis._io.resp import PipelinePacker
from eventspype.broker.redis._io.resp_reader import (
    MAX_BULK,
    RespReader,
    UnexpectedReply,
    read_within,
    reads_faster,
)

__all__ = ["packer_for", "read_replies", "read_replies_slow", "reads_faster", "send"]

#: Options of a queued command that only ``parse_response`` understands.
_EMPTY_RESPONSE = "EMPTY_RESPONSE"
_NEVER_DECODE = "NEVER_DECODE"


def packer_for(connection: Any, repeated: Collection[str] = ()) -> PipelinePacker:
    """A :class:`~_io.resp.PipelinePacker` that writes what ``connection``'s
    own ``pack_commands`` would (its client's encoding; redis-py's packing
    where the packer's own does not apply)."""
    encoder = connection.encoder
    return PipelinePacker(
        encoder.encoding, encoder.encoding_errors, connection.pack_command, repeated
    )


async def send(
    connection: Any, pipe: Any, packer: PipelinePacker | None = None
) -> None:
    """Write ``pipe``'s queued commands on ``connection``, in one write;
    packed by ``packer`` (see :func:`packer_for`) or by redis-py."""
    args = [args for args, _ in pipe.command_stack]
    packed = connection.pack_commands(args) if packer is None else packer.pack(args)
    await connection.send_packed_command(packed, check_health=False)


async def read_replies(connection: Any, pipe: Any) -> list[Any]:
    """The replies of ``pipe``'s commands, written by :func:`send`.

    An error reply is in place as redis-py's exception (without traceback),
    inside an array too; one that means the connection is unusable
    (``LOADING``, ``NOAUTH``: a ``ConnectionError``) is raised, as redis-py
    does. Push frames (RESP3) are dropped: the broker's connections subscribe
    to nothing and track no keys.

    Raises:
        redis.exceptions.ConnectionError: Redis closed the connection or sent
            what no reply looks like.
        redis.exceptions.TimeoutError: no reply within the connection's
            ``socket_timeout``.
    """
    commands = pipe.command_stack
    parse_error = getattr(
        getattr(connection, "_parser", None),
        "parse_error",
        redis.exceptions.ResponseError,
    )

    def error(text: str) -> object:
        # redis-py's exception for an error reply, wherever it stands; one
        # that means the connection is unusable is raised at once, as
        # redis-py raises it.
        made = parse_error(text)
        if isinstance(made, redis.exceptions.ConnectionError):
            raise made
        return made

    raw = await _read(connection, len(commands), error)
    callbacks = pipe.response_callbacks
    out: list[Any] = []
    for (args, options), value in zip(commands, raw, strict=True):
        if isinstance(value, Exception):  # an error reply (see error())
            out.append(options.get(_EMPTY_RESPONSE, value))
            continue
        callback = callbacks.get(args[0])
        if callback is not None:
            kept = {
                k: v
                for k, v in options.items()
                if k not in (_EMPTY_RESPONSE, _NEVER_DECODE, "keys")
            }
            value = callback(value, **kept)
            if inspect.isawaitable(value):
                value = await value
        out.append(value)
    return out


async def _read(
    connection: Any, count: int, error: Callable[[str], object]
) -> list[object]:
    """The next ``count`` replies on ``connection`` (nothing may follow them)."""
    stream: asyncio.StreamReader = connection._reader
    timeout = getattr(connection, "socket_timeout", None)
    reader = RespReader(MAX_BULK, skip_pushes=True, error=error)
    replies: list[object] = []
    while True:
        try:
            replies += reader.replies()
        except UnexpectedReply as error:
            raise redis.exceptions.ConnectionError(
                f"Redis sent what is no reply: {error}"
            ) from None
        if len(replies) >= count:
            if len(replies) > count or not reader.idle:
                raise redis.exceptions.ConnectionError(
                    "Redis sent more replies than commands"
                )
            return replies
        try:
            data = await read_within(stream, timeout)
        except asyncio.TimeoutError:
            raise redis.exceptions.TimeoutError("Timeout reading from Redis") from None
        if not data:
            raise redis.exceptions.ConnectionError("Redis closed the connection")
        reader.feed(data)


async def read_replies_slow(connection: Any, pipe: Any) -> list[Any]:
    """:func:`read_replies` by redis-py's parser (any connection)."""
    replies: list[Any] = []
    for args, options in pipe.command_stack:
        try:
            replies.append(await pipe.parse_response(connection, args[0], **options))
        except redis.exceptions.ResponseError as error:
            replies.append(error.with_traceback(None))
    return replies
