"""The broker's one RESP reader: replies cut out of raw bytes, for the fast paths.

redis-py's asyncio parser awaits the stream once per RESP line (``readline``
or ``readexactly``): four to six awaits per Pub/Sub message, thirteen for an
``XREADGROUP`` reply of one entry, which made reading most of an asyncio
subscriber's or stream consumer's CPU. :class:`RespReader` takes whatever
bytes arrived (one ``read`` for many replies) and cuts them into replies
itself, RESP2 and RESP3, with the values redis-py's parsers return when
nothing is decoded:

* bulk, simple and verbatim strings as ``bytes`` (a verbatim string without
  its ``txt:`` prefix); integers and big numbers as ``int``; doubles as
  ``float``; booleans as ``bool``; nulls (``$-1``, ``*-1``, ``_``) as ``None``;
* arrays, sets and pushes as ``list``; maps as ``dict``;
* an error reply (``-`` or the blob ``!``) as :class:`Error`, its text, for
  the caller to turn into redis-py's exception (``parse_error``).

The bytes come from a server, but a reader must not trust them: the work is
linear in the bytes received (an aggregate left incomplete by one read is
resumed where it stopped, never parsed again; an incomplete bulk string's
header, at most ``_MAX_LINE`` bytes, is the only thing looked at twice), a
bulk string longer than ``max_bulk`` is refused before it is buffered,
aggregates nest at most ``max_depth`` deep and hold at most ``max_count``
elements, and the buffer holds at most one incomplete reply plus one read.
Whatever breaks these rules raises :class:`UnexpectedReply`; the caller gives
the connection up, as for any broken connection.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Collection

__all__ = [
    "MAX_BULK",
    "READ_SIZE",
    "Error",
    "RespReader",
    "UnexpectedReply",
    "Value",
    "read_within",
    "reads_faster",
]

#: Redis's own limit on a bulk string (proto-max-bulk-len): bigger is garbage.
MAX_BULK = 512 << 20
#: What one read takes at most from the socket (many replies in a burst).
READ_SIZE = 1 << 16

#: The longest header line (``$<length>``, ``*<count>``, ``-<error>``...).
_MAX_LINE = 1024
#: Unparsed bytes up to which :meth:`RespReader.replies` parses a copy.
_COPY_LIMIT = 1 << 16
#: Markers of aggregates; a map's count is of pairs.
_ARRAY, _MAP, _SET, _PUSH = 0x2A, 0x25, 0x7E, 0x3E  # * % ~ >
_AGGREGATES = frozenset({_ARRAY, _MAP, _SET, _PUSH})
#: Every marker RESP2 and RESP3 define.
ALL_MARKERS = frozenset(b"$*%~>+-:_,#(!=")

Value = object  # bytes | int | float | bool | None | list | dict | Error


class UnexpectedReply(Exception):
    """The connection sent something its reader refuses (see the module docs)."""


class Error(str):
    """The text of an error reply (``-NOPERM ...``), for the caller to map."""

    __slots__ = ()


class _Frame:
    """An aggregate being filled: its marker, its items, how many are missing."""

    __slots__ = ("items", "marker", "missing")

    def __init__(self, marker: int, missing: int) -> None:
        self.marker = marker
        self.items: list[Value] = []
        self.missing = missing


class RespReader:
    """Cuts a connection's bytes into replies (see the module docs).

    Args:
        max_bulk: The longest bulk string accepted.
        max_depth: How deep aggregates may nest (1: flat arrays only).
        max_count: The most elements (map pairs) one aggregate may announce.
        top_markers: The types a whole reply may have (a Pub/Sub connection
            never sends a bare bulk string, for one).
        skip_pushes: Drop RESP3 push frames (``>``) instead of returning them
            (a connection that never subscribes gets none that are its own).
        error: Makes the value of an error reply from its text, wherever it
            stands (default :class:`Error`); it may raise, which ends the
            parse (redis-py raises a connection-class error at once).
    """

    __slots__ = (
        "_buffer",
        "_error",
        "_max_bulk",
        "_max_count",
        "_max_depth",
        "_need",
        "_skip_pushes",
        "_stack",
        "_start",
        "_top",
    )

    def __init__(
        self,
        max_bulk: int = MAX_BULK,
        *,
        max_depth: int = 16,
        max_count: int = 1 << 32,
        top_markers: Collection[int] = ALL_MARKERS,
        skip_pushes: bool = False,
        error: Callable[[str], object] = Error,
    ) -> None:
        self._buffer = bytearray()
        self._error = error
        self._start = 0  # where the first unparsed element begins
        # The buffer size (from the first unparsed byte) below which nothing
        # more can be parsed: an incomplete bulk string is not looked at again
        # (nor the buffer copied) until all of it may be there.
        self._need = 0
        self._max_bulk = max_bulk
        self._max_depth = max_depth
        self._max_count = max_count
        self._top = frozenset(top_markers)
        self._skip_pushes = skip_pushes
        self._stack: list[_Frame] = []  # aggregates being filled, outermost first

    @property
    def idle(self) -> bool:
        """Whether nothing is buffered: every byte fed belonged to a reply returned."""
        return not self._stack and self._start == len(self._buffer)

    def feed(self, data: bytes) -> None:
        """Add bytes read from the connection."""
        buffer = self._buffer
        if self._start:
            del buffer[: self._start]  # once per read, not per reply
            self._start = 0
        buffer += data

    def replies(self) -> list[Value]:
        """Every complete reply fed so far, in order (consumed).

        Raises:
            UnexpectedReply: the bytes break the reader's rules.
        """
        try:
            return self._replies()
        except ValueError:  # int() or float() of a header that is no number
            raise UnexpectedReply("a header that is not a number") from None
        except TypeError:  # a map whose key is an aggregate (unhashable)
            raise UnexpectedReply("a map key that is not a string") from None

    def _replies(self) -> list[Value]:
        # One loop over the elements, with the aggregates being filled on a
        # stack; written for speed (the consumers' and listeners' hot path):
        # locals instead of attributes, the bulk string first.
        out: list[Value] = []
        end = len(self._buffer)
        if end < self._need:  # the bulk string being received is incomplete
            return out
        self._need = 0
        position = self._start
        # A copy of what is unparsed (one incomplete element plus one read at
        # most): slicing bytes makes each value in one step, where slicing
        # the bytearray and converting took two (the reader's main cost).
        # Past _COPY_LIMIT the bytearray itself is read, each bulk string
        # copied out once through a memoryview: a large entry is then held
        # twice at most (buffer and value), not three times.
        large = end - position > _COPY_LIMIT
        buffer: bytes | bytearray = self._buffer if large else bytes(self._buffer)
        stack = self._stack
        find = buffer.find
        top = self._top
        max_bulk = self._max_bulk
        value: Value
        while position < end:
            line_end = find(b"\r\n", position, position + _MAX_LINE)
            if line_end < 0:
                if end - position >= _MAX_LINE:
                    raise UnexpectedReply(
                        f"a header line longer than {_MAX_LINE} bytes"
                    )
                break
            marker = buffer[position]
            if not stack and marker not in top:
                raise UnexpectedReply(f"a reply of type {chr(marker)!r}")
            if marker == 0x24:  # $: the usual element
                length = int(buffer[position + 1 : line_end])
                if length < 0:
                    value = None
                    position = line_end + 2
                else:
                    if length > max_bulk:
                        raise UnexpectedReply(
                            f"a bulk string of {length} bytes (at most {max_bulk})"
                        )
                    stop = line_end + 2 + length
                    if stop + 2 > end:
                        self._need = stop + 2 - position  # once fed again
                        break  # the header is read again with the rest
                    if large:
                        value = bytes(memoryview(buffer)[line_end + 2 : stop])
                    else:
                        value = buffer[line_end + 2 : stop]
                    position = stop + 2
            elif marker in _AGGREGATES:
                count = int(buffer[position + 1 : line_end])
                position = line_end + 2
                if count > self._max_count:
                    raise UnexpectedReply(f"an aggregate of {count} elements")
                if count > 0:
                    if len(stack) >= self._max_depth:
                        raise UnexpectedReply(
                            f"aggregates nested more than {self._max_depth} deep"
                        )
                    stack.append(_Frame(marker, count * 2 if marker == _MAP else count))
                    continue
                if count < 0:
                    value = None
                elif marker == _PUSH and self._skip_pushes and not stack:
                    value = _SKIPPED
                else:
                    value = {} if marker == _MAP else []
            elif marker == 0x21 or marker == 0x3D:  # ! =: bulk-like
                length = int(buffer[position + 1 : line_end])
                if length > max_bulk:
                    raise UnexpectedReply(f"a bulk string of {length} bytes")
                stop = line_end + 2 + max(length, 0)
                if stop + 2 > end:
                    self._need = stop + 2 - position
                    break
                data = bytes(buffer[line_end + 2 : stop])
                position = stop + 2
                if marker == 0x21:
                    value = self._error(data.decode("utf-8", "replace"))
                else:
                    value = data[4:]
            elif marker == 0x2D:  # -: an error
                text = buffer[position + 1 : line_end].decode("utf-8", "replace")
                value = self._error(text)
                position = line_end + 2
            else:
                value = _simple(buffer, marker, position, line_end)
                position = line_end + 2
            # Put the value in its aggregate; close those it completes.
            while stack:
                frame = stack[-1]
                frame.items.append(value)
                frame.missing -= 1
                if frame.missing:
                    break
                stack.pop()
                items = frame.items
                if frame.marker == _MAP:
                    value = dict(zip(items[::2], items[1::2], strict=True))
                elif frame.marker == _PUSH and self._skip_pushes and not stack:
                    value = _SKIPPED
                else:
                    value = items
            else:
                if value is not _SKIPPED:
                    out.append(value)
        self._start = position
        return out


#: A push frame dropped by a reader that skips them.
_SKIPPED: Value = object()


def _simple(buffer: bytes | bytearray, marker: int, start: int, line_end: int) -> Value:
    """A one-line value: ``+ : ( _ , #``."""
    if marker == 0x2B:  # +
        return bytes(buffer[start + 1 : line_end])
    if marker == 0x3A or marker == 0x28:  # : (
        return int(buffer[start + 1 : line_end])
    if marker == 0x5F:  # _
        return None
    if marker == 0x2C:  # ,
        return float(buffer[start + 1 : line_end])
    if marker == 0x23:  # #
        return buffer[start + 1 : line_end] == b"t"
    raise UnexpectedReply(f"an element of type {chr(marker)!r}")


def reads_faster(connection: object) -> bool:
    """Whether a :class:`RespReader` should read ``connection``'s replies.

    Only a redis-py asyncio connection whose stream is an
    ``asyncio.StreamReader`` (its private ``_reader``, redis-py 5.0 to 8.x),
    whose replies are not decoded, that speaks the protocol its client's
    response callbacks expect (redis-py 8 falls back to RESP2 when a server
    refuses ``HELLO``, and then picks other callbacks), and whose parser is
    redis-py's Python one. hiredis's parser, in C, is faster than this
    reader, so it is kept where it is installed: with hiredis installed,
    ``benchmarks/bench_async_streams.py`` (a consumer batch of one entry)
    measured 2.3-2.4 us against 6.2-6.8 us, and ``benchmarks/bench_async.py``
    (a Pub/Sub message, 100 or 1 a read) 1.2-2.0 us against 1.7-3.1 us.
    """
    encoder = getattr(connection, "encoder", None)
    parser = getattr(connection, "_parser", None)
    return (
        isinstance(getattr(connection, "_reader", None), asyncio.StreamReader)
        and not getattr(encoder, "decode_responses", True)
        and not getattr(connection, "_resp2_fallback", False)
        and "Hiredis" not in type(parser).__name__
    )


async def read_within(reader: asyncio.StreamReader, timeout: float | None) -> bytes:
    """What arrived (at most ``READ_SIZE`` bytes); raises ``asyncio.TimeoutError``.

    ``b""`` when the server closed the connection. ``timeout=None`` waits as
    long as it takes.
    """
    if timeout is None:
        return await reader.read(READ_SIZE)
    if sys.version_info >= (3, 11):
        async with asyncio.timeout(timeout):
            return await reader.read(READ_SIZE)
    return await asyncio.wait_for(reader.read(READ_SIZE), timeout)
