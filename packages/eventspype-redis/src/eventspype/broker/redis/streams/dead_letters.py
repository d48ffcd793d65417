"""Dead-letter streams: where entries go that no delivery could handle.

An entry of ``<stream>`` that failed ``max_deliveries`` times (or failed the
receiver checks) is copied to ``<stream>:dead`` with why and how often, and
acknowledged in its own stream, in one MULTI/EXEC: it is never both lost and
acknowledged. The copy keeps the envelope byte for byte, so putting it back
(:func:`republish`) sends exactly the event that failed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

__all__ = [
    "DEAD_SUFFIX",
    "EVENT_FIELD",
    "DeadLetter",
    "DeadLetterAccess",
    "dead_letter_range",
    "move_to_dead",
    "parse_dead_letters",
    "read_dead_letters",
    "republish",
    "republishing",
    "stream_key",
]

_T = TypeVar("_T")

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
    """

    id: str
    channel: str
    event: bytes
    error: str
    deliveries: int
    original_id: str
    group: str
    consumer: str


def move_to_dead(
    client: Any,
    stream: bytes,
    group: bytes,
    consumer: bytes,
    entries: list[tuple[bytes, bytes, str, int]],
    maxlen: int | None,
) -> None:
    """Copy ``(entry_id, data, error, deliveries)`` to the dead stream and XACK.

    One transaction for all of them. Raises what the client raises.
    """
    dead = stream + DEAD_SUFFIX.encode()
    pipeline = client.pipeline(transaction=True)
    for entry_id, data, error, deliveries in entries:
        fields = {
            EVENT_FIELD: data,
            b"error": error[:_MAX_ERROR],
            b"deliveries": deliveries,
            b"id": entry_id,
            b"group": group,
            b"consumer": consumer,
        }
        if maxlen is None:
            pipeline.xadd(dead, fields)
        else:
            pipeline.xadd(dead, fields, maxlen=maxlen, approximate=True)
    pipeline.xack(stream, group, *[entry[0] for entry in entries])
    pipeline.execute()


def _text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return "" if value is None else str(value)


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
    """XRANGE entries of a dead-letter stream as :class:`DeadLetter` objects."""
    letters = []
    for entry_id, fields in entries:
        try:
            deliveries = int(fields.get(b"deliveries", 0))
        except ValueError:
            deliveries = 0
        letters.append(
            DeadLetter(
                id=_text(entry_id),
                channel=channel,
                event=bytes(fields.get(EVENT_FIELD, b"")),
                error=_text(fields.get(b"error")),
                deliveries=deliveries,
                original_id=_text(fields.get(b"id")),
                group=_text(fields.get(b"group")),
                consumer=_text(fields.get(b"consumer")),
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
    """The transaction :func:`republish` executes (for sync or asyncio clients)."""
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


class DeadLetterAccess:
    """The dead-letter operations of :class:`RedisStreamBroker` (a mixin).

    Needs ``_on_owner(key, call)`` (runs ``call`` with a client of the node
    holding ``key``, replying bytes), ``_maxlen`` and ``stream_key()`` from the
    class it is mixed into.
    """

    _maxlen: int | None

    def _on_owner(self, key: bytes, call: Callable[[Any], _T]) -> _T:
        raise NotImplementedError

    def stream_key(self, channel: str) -> str:
        """The Redis key of ``channel``'s stream (its dead letters: ``+ ":dead"``)."""
        raise NotImplementedError

    def dead_letters(
        self, channel: str, count: int = 100, after: str = "0"
    ) -> list[DeadLetter]:
        """The oldest ``count`` dead letters of ``channel`` with an id above ``after``.

        Page with ``after=letters[-1].id``. Every group's letters are there;
        :attr:`DeadLetter.group` says whose.
        """
        stream = self.stream_key(channel).encode()
        return self._on_owner(
            stream,
            lambda client: read_dead_letters(client, stream, channel, count, after),
        )

    def republish_dead_letters(
        self, channel: str, letters: list[DeadLetter] | None = None
    ) -> int:
        """Put dead letters back in the stream (all of them, or ``letters``).

        Each goes to the end of the stream as a new entry, so every group
        receives it again (idempotent handlers make that harmless), and is
        removed from the dead-letter stream. Returns how many.
        """
        stream = self.stream_key(channel).encode()
        if letters is None:
            letters = []
            after = "0"
            while page := self.dead_letters(channel, 1000, after):
                letters.extend(page)
                after = page[-1].id
        chosen = letters
        return self._on_owner(
            stream, lambda client: republish(client, stream, chosen, self._maxlen)
        )
