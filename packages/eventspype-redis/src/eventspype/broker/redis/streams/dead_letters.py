"""Dead-letter streams: where entries go that no delivery could handle.

An entry of ``<stream>`` that failed ``max_deliveries`` times (or failed the
receiver checks) is copied to ``<stream>:dead`` with why and how often, and
acknowledged in its own stream, in one Lua script (``streams.sending``): it
is never both lost and acknowledged, and a dead-letter key of the wrong type
leaves it pending. The copy keeps the envelope byte for byte, so putting it
back (:func:`republish`) sends exactly the event that failed; an oversized
or malformed entry is recorded without its body (id, size and reason). The
dead-letter stream has its own bound (``MAXLEN ~ dead_letter_maxlen``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from eventspype.event import normalize_event_tag

if TYPE_CHECKING:
    from eventspype.pub.publication import EventPublication

__all__ = [
    "DEAD_SUFFIX",
    "EVENT_FIELD",
    "DeadLetter",
    "DeadLetterAccess",
    "dead_letter_range",
    "parse_dead_letters",
    "read_dead_letters",
    "republish",
    "republishable",
    "republishing",
    "stream_key",
    "tag_channel",
]

_T = TypeVar("_T")
_logger = logging.getLogger("eventspype.broker.redis")

#: Appended to a stream's key to name its dead-letter stream.
DEAD_SUFFIX = ":dead"


def stream_key(prefix: str, channel: str) -> str:
    """The key of ``channel``'s stream: ``<prefix>{<channel>}``.

    The channel is a hash tag, so the stream and its dead-letter stream
    (``<stream>:dead``) always hash to one slot: on Redis Cluster they live on
    one shard, where the dead-letter transactions need them, and a deployment
    moving from one server to a cluster keeps its key names. (An empty
    channel makes an empty tag, which Redis ignores: avoid it on a cluster.)
    """
    return f"{prefix}{{{channel}}}"


#: The one field of a stream entry: the envelope RedisBroker publishes.
EVENT_FIELD = b"event"

#: Longest error text kept in a dead letter (a traceback can be huge).
_MAX_ERROR = 4096


@dataclass(frozen=True)
class DeadLetter:
    """One entry of a channel's dead-letter stream.

    Attributes:
        id: The entry's id in the dead-letter stream (what
            ``republish_dead_letters()`` takes).
        channel: The channel the event was published on.
        event: The envelope as it was in the stream (bytes, as published).
        error: Why it was given up: the last subscriber error, or the receiver
            check that refused it (``"<reason>: <detail>"``).
        deliveries: How many times it had been delivered.
        original_id: Its id in the channel's stream.
        group: The consumer group that gave up on it.
        consumer: The consumer that moved it.
        reason: ``"max_deliveries"``, ``"refused"`` (the receive checks),
            ``"malformed"`` (no ``event`` field) or ``"oversized"``; empty for
            letters written by eventspype-redis before 1.2.
        size: The entry's size in bytes (its body is not kept when
            ``malformed`` or ``oversized``: ``event`` is then empty).
    """

    id: str
    channel: str
    event: bytes
    error: str
    deliveries: int
    original_id: str
    group: str
    consumer: str
    reason: str = ""
    size: int = 0


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


def _int(value: Any) -> int:
    try:
        return int(value or 0)
    except ValueError:
        return 0


def read_dead_letters(
    client: Any, stream: bytes, channel: str, count: int, after: str
) -> list[DeadLetter]:
    """The first ``count`` dead letters of ``stream`` with an id above ``after``."""
    dead, start = dead_letter_range(stream, after)
    return parse_dead_letters(
        client.xrange(dead, min=start, max="+", count=count), channel
    )


def dead_letter_range(stream: bytes, after: str) -> tuple[bytes, str]:
    """The dead-letter key of ``stream`` and the XRANGE start after ``after``."""
    start = "-" if after in ("", "0", "0-0") else f"({after}"
    return stream + DEAD_SUFFIX.encode(), start


def parse_dead_letters(entries: Any, channel: str) -> list[DeadLetter]:
    """XRANGE entries of a dead-letter stream as :class:`DeadLetter` objects
    (for the asyncio broker too, which awaits the XRANGE)."""
    letters = []
    for entry_id, fields in entries:
        letters.append(
            DeadLetter(
                id=_text(entry_id),
                channel=channel,
                event=bytes(fields.get(EVENT_FIELD, b"")),
                error=_text(fields.get(b"error")),
                deliveries=_int(fields.get(b"deliveries")),
                original_id=_text(fields.get(b"id")),
                group=_text(fields.get(b"group")),
                consumer=_text(fields.get(b"consumer")),
                reason=_text(fields.get(b"reason")),
                size=_int(fields.get(b"size")),
            )
        )
    return letters


def republish(
    client: Any,
    stream: bytes,
    letters: list[DeadLetter],
    maxlen: int | None,
) -> int:
    """XADD each letter's event to ``stream`` again and delete the letter.

    One transaction: an event is never both back in the stream and still a
    dead letter. Returns how many were re-published.
    """
    if not letters:
        return 0
    republishing(client, stream, letters, maxlen).execute()
    return len(letters)


def republishing(
    client: Any, stream: bytes, letters: list[DeadLetter], maxlen: int | None
) -> Any:
    """The transaction :func:`republish` executes (sync or asyncio pipeline)."""
    dead = stream + DEAD_SUFFIX.encode()
    pipeline = client.pipeline(transaction=True)
    for letter in letters:
        fields = {EVENT_FIELD: letter.event}
        if maxlen is None:
            pipeline.xadd(stream, fields)
        else:
            pipeline.xadd(stream, fields, maxlen=maxlen, approximate=True)
    pipeline.xdel(dead, *[letter.id for letter in letters])
    return pipeline


def tag_channel(channel: str) -> str | None:
    """The channel a tag as written names (``"invoice_due"``: ``INVOICE_DUE``),
    or ``None`` when ``channel`` is already one (or not a tag)."""
    try:
        normal = str(normalize_event_tag(channel))
    except (TypeError, ValueError):
        return None
    return None if normal == channel else normal


def republishable(
    name: str,
    letters: list[DeadLetter],
    refusal: Callable[[str, bytes], str | None],
) -> list[DeadLetter]:
    """The letters the receive checks would accept; warns about the others."""
    chosen: list[DeadLetter] = []
    refused: list[tuple[DeadLetter, str]] = []
    for letter in letters:
        why = "no body kept" if not letter.event else None
        why = why or refusal(name, letter.event)
        if why is None:
            chosen.append(letter)
        else:
            refused.append((letter, why))
    if refused:
        _logger.warning(
            "Not re-publishing %d dead letter(s) of %r that would be refused "
            "again (first %s: %s)",
            len(refused),
            name,
            refused[0][0].id,
            refused[0][1],
        )
    return chosen


class DeadLetterAccess:
    """The dead-letter operations of :class:`RedisStreamBroker` (a mixin).

    Needs ``_on_owner(key, call)`` (runs ``call`` with a client of the node
    holding ``key``, replying bytes), ``_maxlen``, ``stream_key()`` and
    ``_refusal(channel, data)`` (why the receive checks would refuse an
    envelope, or ``None``) from the class it is mixed into.
    """

    _maxlen: int | None

    def _on_owner(self, key: bytes, call: Callable[[Any], _T]) -> _T:
        raise NotImplementedError

    def stream_key(self, channel: str) -> str:
        """The Redis key of ``channel``'s stream (its dead letters: ``+ ":dead"``)."""
        raise NotImplementedError

    def _refusal(self, channel: str, data: bytes) -> str | None:
        raise NotImplementedError

    def _channel(self, channel: str | EventPublication) -> str:
        """The channel of a publication, or of a tag as written (``"invoice_due"``
        names the channel ``INVOICE_DUE``) unless a channel of exactly that
        name has dead letters."""
        if not isinstance(channel, str):
            return str(channel.event_tag)
        normal = tag_channel(channel)
        if normal is None:
            return channel
        exact = (self.stream_key(channel) + DEAD_SUFFIX).encode()
        if self._on_owner(exact, lambda client: client.exists(exact)):
            return channel
        return normal

    def dead_letters(
        self, channel: str | EventPublication, count: int = 100, after: str = "0"
    ) -> list[DeadLetter]:
        """The oldest ``count`` dead letters of ``channel`` with an id above ``after``.

        ``channel`` is a channel name, a tag as written in the publication
        (``"invoice_due"``), or the publication itself. Page with
        ``after=letters[-1].id``. Every group's letters are there;
        :attr:`DeadLetter.group` says whose.
        """
        name = self._channel(channel)
        stream = self.stream_key(name).encode()
        return self._on_owner(
            stream,
            lambda client: read_dead_letters(client, stream, name, count, after),
        )

    def republish_dead_letters(
        self,
        channel: str | EventPublication,
        letters: list[DeadLetter] | None = None,
    ) -> int:
        """Put dead letters back in the stream (all of them, or ``letters``).

        Each goes to the end of the stream as a new entry, so every group
        receives it again (idempotent handlers make that harmless), and is
        removed from the dead-letter stream. A letter the receive checks
        would refuse again (no body, an unregistered class, a payload that
        does not decode) stays where it is, with a warning saying why.
        Returns how many were re-published.
        """
        name = self._channel(channel)
        stream = self.stream_key(name).encode()
        if letters is None:
            letters = []
            after = "0"
            while page := self.dead_letters(name, 1000, after):
                letters.extend(page)
                after = page[-1].id
        chosen = republishable(name, letters, self._refusal)
        return self._on_owner(
            stream, lambda client: republish(client, stream, chosen, self._maxlen)
        )
