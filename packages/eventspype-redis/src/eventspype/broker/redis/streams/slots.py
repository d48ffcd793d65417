"""Reading a consumer group's streams: one XREADGROUP, or one per hash slot.

On one server, one ``XREADGROUP ... BLOCK`` covers every stream. On Redis
Cluster a command may only name keys of one hash slot (``CROSSSLOT``
otherwise), even when one node owns them all, and every channel's stream has
a slot of its own (``<prefix>{<channel>}``). A reader whose streams span
several slots therefore sends one ``XREADGROUP`` per slot, without ``BLOCK``,
pipelined in one round trip; when none returned anything it waits
``poll_interval`` (its stop event ends the wait at once) and reads again. Its
streams in one slot only: it blocks in Redis as on one server.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Entry", "SlotOf", "by_stream", "read_group"]

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


def read_group(
    client: Any,
    group: bytes,
    consumer: bytes,
    streams: dict[bytes, str],
    count: int,
    block_ms: int,
    slot_of: SlotOf | None,
    stop: threading.Event,
) -> list[tuple[bytes, list[Entry]]]:
    """New entries of ``streams`` for ``consumer`` (see the module docs).

    Raises what the client raises (``MOVED`` when a slot is not the node's).
    """
    slots: dict[int, dict[bytes, str]] = {}
    if slot_of is not None:
        for stream in streams:
            slots.setdefault(slot_of(stream), {})[stream] = ">"
    if len(slots) <= 1:
        reply = client.xreadgroup(
            group, consumer, dict.fromkeys(streams, ">"), count=count, block=block_ms
        )
        return by_stream(reply)
    pipeline = client.pipeline(transaction=False)
    for ids in slots.values():
        pipeline.xreadgroup(group, consumer, ids, count=count)
    found = [item for reply in pipeline.execute() for item in by_stream(reply)]
    if not any(entries for _, entries in found):
        stop.wait(min(POLL_INTERVAL, block_ms / 1000))
    return found
