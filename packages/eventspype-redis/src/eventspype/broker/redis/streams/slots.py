"""XREADGROUP replies, and the hash slots a cluster reader reads by.

On one server, one ``XREADGROUP ... BLOCK`` covers every stream. On Redis
Cluster a command may only name keys of one hash slot (``CROSSSLOT``
otherwise), even when one node owns them all, and every channel's stream has
a slot of its own (``<prefix>{<channel>}``). A reader whose streams span
several slots therefore sends one ``XREADGROUP`` per slot, without ``BLOCK``,
pipelined in one round trip (``streams.sending``); when none returned
anything it waits ``POLL_INTERVAL`` and reads again. Its streams in one slot
only: it blocks in Redis as on one server.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

__all__ = ["POLL_INTERVAL", "Entry", "SlotOf", "by_stream"]

Entry = tuple[bytes, "dict[bytes, bytes] | None"]
#: The hash slot of a key (``redis.crc.key_slot``), or ``None``: one server.
SlotOf = Callable[[bytes], int]

#: How long a reader polling several slots waits when nothing came.
POLL_INTERVAL = 0.05


def by_stream(replies: Any) -> list[tuple[bytes, list[Entry]]]:
    """XREADGROUP's reply as ``[(stream, entries)]``.

    RESP2: a list of ``[stream, entries]``; RESP3: a map of stream to
    ``[entries]`` (one more level of list).
    """
    if not replies:
        return []
    if isinstance(replies, dict):
        return [
            (k, v[0] if v and isinstance(v[0], list) else v) for k, v in replies.items()
        ]
    return [(stream, entries) for stream, entries in replies]
