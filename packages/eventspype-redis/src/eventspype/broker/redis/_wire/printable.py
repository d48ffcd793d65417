"""Text from a message, made safe to log (no I/O).

Module and class names, tags and decoder errors quoted from a received message
are the sender's text: a newline in them forges a second log line, an ANSI
escape rewrites the operator's terminal, a bidirectional override reorders
what they read. Every character that is not printable is escaped as ``repr``
escapes it (``\\n``, ``\\x1b``, ``\\u202e``), in linear time; what is printable
stays as it is. Long texts are cut, so one message cannot write a megabyte
into the log.
"""

from __future__ import annotations

__all__ = ["MAX_LOGGED_CHARS", "Printable", "printable"]

#: Longest text logged from one message; the rest is counted, not written.
MAX_LOGGED_CHARS = 1000


def printable(text: object, limit: int = MAX_LOGGED_CHARS) -> str:
    """``str(text)``, cut after ``limit`` characters, non-printables escaped."""
    value = str(text)
    cut = len(value) - limit
    if cut > 0:
        value = value[:limit]
    if not value.isprintable():  # the usual text takes this one C-speed test
        value = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return f"{value}... ({cut} more characters)" if cut > 0 else value


class Printable:
    """``printable(text)``, computed only if a log line is written.

    For ``logger.warning("... %s", Printable(detail))``: a rate-limited or
    filtered-out line costs no escaping.
    """

    __slots__ = ("_text",)

    def __init__(self, text: object) -> None:
        self._text = text

    def __str__(self) -> str:
        return printable(self._text)

    __repr__ = __str__
