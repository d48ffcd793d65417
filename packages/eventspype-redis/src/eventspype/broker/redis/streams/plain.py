"""The Streams core's commands without Lua, one at a time (for tests only).

What ``streams.sending`` falls back to on a server without scripting
(fakeredis without ``lupa``): ownership is checked with XPENDING before
acknowledging or claiming, and the dead-letter move is a MULTI/EXEC after a
type check. Not atomic, so not for production servers (which have Lua).
"""

from __future__ import annotations

from typing import Any

import redis

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.sending import (
    DOWN,
    Scripts,
    _decode,
    _queue,
    _slots,
    classify,
)
from eventspype.broker.redis.streams.slots import SlotOf, by_stream

__all__ = ["run_one"]


def _owned(client: Any, stream: bytes, group: bytes, me: bytes, ids: Any) -> list[Any]:
    return [
        entry_id
        for entry_id in ids
        if client.xpending_range(stream, group, entry_id, entry_id, 1, me)
    ]


def run_one(
    client: Any,
    group: bytes,
    me: bytes,
    cmd: c.Command,
    maxlen: int | None,
    slot_of: SlotOf | None,
) -> tuple[bool, object]:
    """One command without Lua (see :class:`Scripts`)."""
    try:
        if isinstance(cmd, c.Read):
            found = []
            for streams in _slots(cmd, slot_of):
                wanted = dict.fromkeys(streams, ">")
                reply = client.xreadgroup(
                    group, me, wanted, count=cmd.count, block=cmd.block_ms
                )
                found.extend(by_stream(reply))
            return True, found
        if isinstance(cmd, c.Ack) and cmd.only_owned:
            ids = _owned(client, cmd.stream, group, me, cmd.ids)
            return True, client.xack(cmd.stream, group, *ids) if ids else 0
        if isinstance(cmd, c.Claim) and cmd.only_owned:
            ids = _owned(client, cmd.stream, group, me, cmd.ids)
            if not ids:
                return True, []
            cmd = c.Claim(cmd.stream, tuple(ids), cmd.justid, cmd.idle_ms, False, 0.0)
        if isinstance(cmd, c.DeadLetter):
            return True, _dead_without_lua(client, group, me, cmd, maxlen)
        pipe = client.pipeline(transaction=False)
        _queue(pipe, Scripts.__new__(Scripts), group, me, cmd, maxlen)
        (value,) = pipe.execute(raise_on_error=False)
        if isinstance(value, Exception):
            raise value
        return True, _decode(cmd, value)
    except DOWN:
        raise
    except redis.ResponseError as error:
        if isinstance(cmd, c.EnsureGroup) and "BUSYGROUP" in str(error):
            return True, None
        return False, (classify(error), str(error))


def _dead_without_lua(
    client: Any, group: bytes, me: bytes, cmd: c.DeadLetter, maxlen: int | None
) -> int:
    dead = cmd.stream + b":dead"
    kind = client.type(dead)
    if kind not in (b"stream", b"none", "stream", "none"):
        raise redis.ResponseError(f"WRONGTYPE dead-letter key {dead!r} is a {kind!r}")
    entries = cmd.entries
    if cmd.only_owned:
        owned = set(
            _owned(client, cmd.stream, group, me, [d.entry_id for d in entries])
        )
        entries = tuple(d for d in entries if d.entry_id in owned)
    if not entries:
        return 0
    pipe = client.pipeline(transaction=True)
    for entry in entries:
        fields: dict[bytes, Any] = {}
        if entry.data is not None:
            fields[b"event"] = entry.data
        fields.update(
            {
                b"error": entry.error[:4096],
                b"deliveries": entry.deliveries,
                b"size": entry.size,
                b"reason": entry.reason,
                b"id": entry.entry_id,
                b"group": group,
                b"consumer": me,
            }
        )
        trim = {} if maxlen is None else {"maxlen": maxlen, "approximate": True}
        pipe.xadd(dead, fields, **trim)
    pipe.xack(cmd.stream, group, *[d.entry_id for d in entries])
    return int(pipe.execute()[-1])
