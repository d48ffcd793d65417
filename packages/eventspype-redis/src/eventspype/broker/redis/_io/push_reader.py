"""The asyncio listener's reader: :class:`~_io.resp_reader.RespReader` set for Pub/Sub.

A subscribed connection only ever carries a few reply shapes: flat arrays
(``*``, RESP2) and pushes (``>``, RESP3) of at most a few elements
(``message``, ``subscribe``, ``pong``...), a simple string (``+PONG``: PING's
reply with RESP3) and an error (``-``). :class:`PushReader` refuses anything
else (a nested aggregate, a map, a bare bulk string) with
:class:`UnexpectedReply`: the listener gives the connection up and
reconnects, as for any broken connection.
"""

from __future__ import annotations

from typing import cast

from eventspype.broker.redis._io.resp_reader import (
    MAX_BULK,
    READ_SIZE,
    Error,
    RespReader,
    UnexpectedReply,
    read_within,
)

__all__ = [
    "MAX_BULK",
    "READ_SIZE",
    "Error",
    "PushReader",
    "PushValue",
    "UnexpectedReply",
    "read_within",
]

#: A Pub/Sub reply as :class:`PushReader` returns it.
PushValue = list[bytes | int | None] | bytes | Error
#: The most elements of one Pub/Sub reply (``pmessage`` has four).
_MAX_ELEMENTS = 64


class PushReader(RespReader):
    """Cuts a subscribed connection's bytes into replies (see the module docs)."""

    __slots__ = ()

    def __init__(self, max_bulk: int) -> None:
        super().__init__(
            max_bulk, max_depth=1, max_count=_MAX_ELEMENTS, top_markers=b"*>+-"
        )

    def replies(self) -> list[PushValue]:  # type: ignore[override]
        """Every complete reply fed so far, in order (consumed).

        Raises:
            UnexpectedReply: the bytes are not the replies of a subscribed
                connection (or a bulk string is longer than ``max_bulk``).
        """
        return cast("list[PushValue]", super().replies())
