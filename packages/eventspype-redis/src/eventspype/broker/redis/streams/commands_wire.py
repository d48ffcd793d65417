"""The Streams core's commands as Redis arguments, and raw replies in its shapes.

No I/O: a driver sends :func:`command_args` on a connection of its own (raw
RESP, no redis-py response callbacks: the replies are what the server sent,
RESP2 or RESP3), reads each reply (``read_response()``) and feeds the core
:func:`decode_reply` of it, or :func:`error_kind` of the exception. Both the
thread and the asyncio driver speak Redis through this module only.

Commands that must touch only what this consumer still owns (``only_owned``
acknowledgements and claims) and the dead-letter move are Lua scripts (sent
with ``EVAL``: they are rare), atomic on the server: an entry's ownership is
checked with ``XPENDING <stream> <group> <id> <id> 1`` inside the script. The
dead-letter script adds every dead letter before the one ``XACK``: a failing
``XADD`` (the dead-letter key holds another type) stops the script before
anything is acknowledged.

Replies are untrusted input: decoding walks each once (linear time) and keeps
nothing but the documented shape.
"""

from __future__ import annotations

from typing import Any

import redis.exceptions

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.dead_letters import DEAD_SUFFIX

__all__ = ["command_args", "decode_reply", "error_kind"]

# Ownership: the PEL entry of ARGV id names this consumer (ARGV[2]).
_OWNED = """
local function owned(key, group, me, id)
  local p = redis.call('XPENDING', key, group, id, id, 1)
  return p[1] ~= nil and p[1][2] == me
end
"""

#: KEYS[1] stream; ARGV group, consumer, ids...
_ACK_OWNED = (
    _OWNED
    + """
local n = 0
for i = 3, #ARGV do
  if owned(KEYS[1], ARGV[1], ARGV[2], ARGV[i]) then
    n = n + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i])
  end
end
return n
"""
)

#: KEYS[1] stream; ARGV group, consumer, idle ms or '', '1' for JUSTID, ids...
_CLAIM_OWNED = (
    _OWNED
    + """
local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], '0'}
local any = false
for i = 5, #ARGV do
  if owned(KEYS[1], ARGV[1], ARGV[2], ARGV[i]) then
    args[#args + 1] = ARGV[i]
    any = true
  end
end
if not any then return {} end
if ARGV[3] ~= '' then
  args[#args + 1] = 'IDLE'
  args[#args + 1] = ARGV[3]
end
if ARGV[4] == '1' then args[#args + 1] = 'JUSTID' end
return redis.call(unpack(args))
"""
)

#: KEYS[1] stream, KEYS[2] its dead-letter stream; ARGV group, consumer,
#: '1' when only owned entries move, MAXLEN or '', then per entry: id,
#: '1' if the body is copied, body, error, deliveries, size, reason.
_DEAD_LETTER = (
    _OWNED
    + """
local group, me, check, maxlen = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local ids = {}
for i = 5, #ARGV, 7 do
  local id = ARGV[i]
  if not check or owned(KEYS[1], group, me, id) then
    local args = {'XADD', KEYS[2]}
    if maxlen ~= '' then
      args[#args + 1] = 'MAXLEN'
      args[#args + 1] = '~'
      args[#args + 1] = maxlen
    end
    args[#args + 1] = '*'
    if ARGV[i + 1] == '1' then
      args[#args + 1] = 'event'
      args[#args + 1] = ARGV[i + 2]
    end
    local named = {'error', ARGV[i + 3], 'deliveries', ARGV[i + 4], 'id', id,
                   'group', group, 'consumer', me, 'size', ARGV[i + 5],
                   'reason', ARGV[i + 6]}
    for j = 1, #named do args[#args + 1] = named[j] end
    redis.call(unpack(args))
    ids[#ids + 1] = id
  end
end
if #ids > 0 then redis.call('XACK', KEYS[1], group, unpack(ids)) end
return #ids
"""
)

#: Longest error text kept in a dead letter (a traceback can be huge).
_MAX_ERROR = 4096


def command_args(
    cmd: c.Command, group: bytes, consumer: bytes, dead_maxlen: int | None
) -> tuple[Any, ...]:
    """The arguments of ``cmd`` for ``execute_command`` / ``pack_command``.

    ``Connect`` has none (open the connection; ``CLIENT ID`` is a good first
    command).
    """
    if isinstance(cmd, c.Read):
        block = () if cmd.block_ms is None else (b"BLOCK", cmd.block_ms)
        return (
            b"XREADGROUP", b"GROUP", group, consumer, b"COUNT", cmd.count,
            *block, b"STREAMS", *cmd.streams, *([b">"] * len(cmd.streams)),
        )  # fmt: skip
    if isinstance(cmd, c.Ack):
        if cmd.only_owned:
            return (b"EVAL", _ACK_OWNED, 1, cmd.stream, group, consumer, *cmd.ids)
        return (b"XACK", cmd.stream, group, *cmd.ids)
    if isinstance(cmd, c.Claim):
        idle = b"" if cmd.idle_ms is None else str(cmd.idle_ms).encode()
        if cmd.only_owned:
            justid = b"1" if cmd.justid else b"0"
            return (
                b"EVAL", _CLAIM_OWNED, 1, cmd.stream, group, consumer, idle,
                justid, *cmd.ids,
            )  # fmt: skip
        options: tuple[bytes, ...] = (b"IDLE", idle) if idle else ()
        if cmd.justid:
            options += (b"JUSTID",)
        return (b"XCLAIM", cmd.stream, group, consumer, 0, *cmd.ids, *options)
    if isinstance(cmd, c.Sweep):
        return (
            b"XAUTOCLAIM", cmd.stream, group, consumer, cmd.min_idle_ms,
            cmd.start, b"COUNT", cmd.count,
        )  # fmt: skip
    if isinstance(cmd, c.OwnPending):
        return (
            b"XPENDING", cmd.stream, group, cmd.start, cmd.end, cmd.count, consumer,
        )  # fmt: skip
    if isinstance(cmd, c.EnsureGroup):
        return (b"XGROUP", b"CREATE", cmd.stream, group, cmd.start, b"MKSTREAM")
    if isinstance(cmd, c.DeadLetter):
        flat: list[Any] = []
        for dead in cmd.entries:
            body = dead.data
            flat += [
                dead.entry_id,
                b"0" if body is None else b"1",
                b"" if body is None else body,
                dead.error[:_MAX_ERROR],
                dead.deliveries,
                dead.size,
                dead.reason,
            ]
        return (
            b"EVAL", _DEAD_LETTER, 2, cmd.stream, cmd.stream + DEAD_SUFFIX.encode(),
            group, consumer, b"1" if cmd.only_owned else b"0",
            b"" if dead_maxlen is None else dead_maxlen, *flat,
        )  # fmt: skip
    return ()  # Connect


def error_kind(error: BaseException) -> c.ErrorKind:
    """How the core takes ``error``, raised by a command (``commands.ErrorKind``)."""
    down = (
        redis.exceptions.ConnectionError,
        redis.exceptions.TimeoutError,
        OSError,
    )
    if isinstance(error, down):
        return "down"
    if isinstance(error, redis.exceptions.ResponseError):
        text = str(error)
        if text.startswith("NOGROUP"):
            return "nogroup"
        if text.startswith("UNBLOCKED"):
            return "unblocked"
        if text.startswith(("WRONGTYPE", "NOPERM")) or "WRONGTYPE" in text:
            return "key"
        return "other"
    return "other"


def decode_reply(cmd: c.Command, raw: Any) -> object:
    """``raw`` (as ``read_response()`` returns it) in the shape ``cmd`` documents."""
    if isinstance(cmd, c.Read):
        if not raw:
            return []
        pairs = raw.items() if isinstance(raw, dict) else raw
        return [(_bytes(stream), _entries(entries)) for stream, entries in pairs]
    if isinstance(cmd, c.Sweep):
        deleted = [_bytes(i) for i in raw[2]] if len(raw) > 2 and raw[2] else []
        return (_bytes(raw[0]), _entries(raw[1]), deleted)
    if isinstance(cmd, c.OwnPending):
        return [(_bytes(item[0]), int(item[3])) for item in raw or ()]
    if isinstance(cmd, c.Claim):
        if cmd.justid:
            return [_bytes(i) for i in raw or ()]
        return _entries(raw)
    if isinstance(cmd, (c.Ack, c.DeadLetter)):
        return int(raw or 0)
    return None  # Connect, EnsureGroup


def _bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode()


def _entries(raw: Any) -> list[c.EntryReply]:
    out: list[c.EntryReply] = []
    for item in raw or ():
        if not item:
            continue  # XCLAIM of a deleted entry on old servers
        entry_id, fields = item[0], item[1] if len(item) > 1 else None
        out.append((_bytes(entry_id), _fields(fields)))
    return out


def _fields(raw: Any) -> dict[bytes, bytes] | None:
    if raw is None:
        return None
    if isinstance(raw, dict):
        return {_bytes(k): _bytes(v) for k, v in raw.items()}
    it = iter(raw)
    return {_bytes(k): _bytes(v) for k, v in zip(it, it, strict=False)}
