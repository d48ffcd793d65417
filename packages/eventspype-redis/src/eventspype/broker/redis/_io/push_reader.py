"""The asyncio listener's fast read path: Pub/Sub replies cut out of raw bytes.

redis-py's asyncio parser awaits the stream four to six times per Pub/Sub
message (one ``readline`` or ``readexactly`` per line), which makes it most
of a subscriber's CPU. A subscribed connection only ever carries a few reply
shapes, so :class:`PushReader` takes whatever bytes arrived (one ``read`` for
many messages) and cuts them into replies itself:

* arrays (``*``, RESP2) and pushes (``>``, RESP3) of bulk strings, integers,
  simple strings and nulls: ``message``, ``subscribe``, ``pong``... ;
* a simple string (``+PONG``: PING's reply with RESP3) and an error (``-``).

Anything else (nested aggregates, maps, attributes) raises
:class:`UnexpectedReply`: the listener gives the connection up and reconnects,
as for any broken connection. The input is untrusted: every step is linear in
the bytes received, a bulk string longer than ``max_bulk`` is refused before
it is buffered, and the buffer never holds more than one incomplete reply
plus one read.
"""

from __future__ import annotations

import asyncio
import sys

__all__ = ["MAX_BULK", "Error", "PushReader", "UnexpectedReply", "read_within"]

#: Redis's own limit on a bulk string (proto-max-bulk-len): bigger is garbage.
MAX_BULK = 512 << 20
#: What one read takes at most from the socket (many messages in a burst).
READ_SIZE = 1 << 16

_CRLF = b"\r\n"
#: The longest header line (``$<length>``, ``*<count>``, ``-<error>``...).
_MAX_LINE = 1024


class UnexpectedReply(Exception):
    """The connection sent something a Pub/Sub connection never should."""


class Error(str):
    """The text of an error reply (``-NOPERM ...``), for the caller to map."""

    __slots__ = ()


class PushReader:
    """Cuts a subscribed connection's bytes into replies (see the module docs)."""

    __slots__ = ("_buffer", "_max_bulk", "_start")

    def __init__(self, max_bulk: int) -> None:
        self._buffer = bytearray()
        self._start = 0  # where the first unparsed reply begins
        self._max_bulk = max_bulk

    def feed(self, data: bytes) -> None:
        """Add bytes read from the connection."""
        buffer = self._buffer
        if self._start:
            del buffer[: self._start]  # once per read, not per reply
            self._start = 0
        buffer += data

    def replies(self) -> list[list[bytes | int | None] | bytes | Error]:
        """Every complete reply fed so far, in order (consumed).

        Raises:
            UnexpectedReply: the bytes are not the replies of a subscribed
                connection (or a bulk string is longer than ``max_bulk``).
        """
        out: list[list[bytes | int | None] | bytes | Error] = []
        buffer = self._buffer
        end = len(buffer)
        start = self._start
        while start < end:
            parsed = self._reply(buffer, start, end)
            if parsed is None:
                break
            value, start = parsed
            out.append(value)
        self._start = start
        return out

    def _reply(
        self, buffer: bytearray, start: int, end: int
    ) -> tuple[list[bytes | int | None] | bytes | Error, int] | None:
        line_end = buffer.find(_CRLF, start, min(end, start + _MAX_LINE))
        if line_end < 0:
            self._check_line(start, end)
            return None
        marker = buffer[start]
        head = bytes(buffer[start + 1 : line_end])
        position = line_end + 2
        if marker == 0x2A or marker == 0x3E:  # "*" or ">"
            count = _number(head)
            if count < 0 or count > 64:
                raise UnexpectedReply(f"an aggregate of {count} elements")
            items: list[bytes | int | None] = []
            for _ in range(count):
                parsed = self._element(buffer, position, end)
                if parsed is None:
                    return None
                item, position = parsed
                items.append(item)
            return items, position
        if marker == 0x2B:  # "+"
            return head, position
        if marker == 0x2D:  # "-"
            return Error(head.decode("utf-8", "replace")), position
        raise UnexpectedReply(f"a reply of type {chr(marker)!r}")

    def _element(
        self, buffer: bytearray, start: int, end: int
    ) -> tuple[bytes | int | None, int] | None:
        line_end = buffer.find(_CRLF, start, min(end, start + _MAX_LINE))
        if line_end < 0:
            self._check_line(start, end)
            return None
        marker = buffer[start]
        head = bytes(buffer[start + 1 : line_end])
        position = line_end + 2
        if marker == 0x24:  # "$": a bulk string
            length = _number(head)
            if length < 0:
                return None, position  # RESP2's null
            if length > self._max_bulk:
                raise UnexpectedReply(
                    f"a bulk string of {length} bytes (at most {self._max_bulk})"
                )
            if end < position + length + 2:
                return None
            return bytes(buffer[position : position + length]), position + length + 2
        if marker == 0x3A:  # ":"
            return _number(head), position
        if marker == 0x2B:  # "+"
            return head, position
        if marker == 0x5F:  # "_": RESP3's null
            return None, position
        raise UnexpectedReply(f"an element of type {chr(marker)!r}")

    def _check_line(self, start: int, end: int) -> None:
        # A header line is short; one that goes on is garbage, not a reason
        # to buffer (or scan) without end.
        if end - start >= _MAX_LINE:
            raise UnexpectedReply(f"a header line longer than {_MAX_LINE} bytes")


def _number(text: bytes) -> int:
    try:
        return int(text)
    except ValueError:
        raise UnexpectedReply(f"not a number: {text[:20]!r}") from None


async def read_within(reader: asyncio.StreamReader, timeout: float) -> bytes:
    """What arrived (at most ``READ_SIZE`` bytes); raises ``asyncio.TimeoutError``.

    ``b""`` when the server closed the connection.
    """
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await reader.read(READ_SIZE)
    return await asyncio.wait_for(reader.read(READ_SIZE), timeout)
