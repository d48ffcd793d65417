"""Sending the Streams core's commands with redis-py, and decoding the replies.

A driver's only Redis knowledge: :func:`send` runs one batch of
``streams.commands`` in one pipeline (no transaction) and returns, for each
command, the reply in the core's shape or the error classified as a
``commands.ErrorKind``. The three ownership-checking commands and the
dead-letter move are Lua scripts (Redis 7.0 has no command for them):
one script call is atomic, so a dead letter is never both lost and
acknowledged, and an acknowledgement sent after an outage never removes an
entry another consumer has claimed meanwhile.
"""

from __future__ import annotations

from typing import Any

import redis
from redis.exceptions import AskError, ClusterDownError, TryAgainError

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.slots import SlotOf, by_stream

__all__ = ["DOWN", "Failure", "classify", "collect", "prepare", "send"]

#: Errors that mean the connection (or, on a cluster, the node) is gone.
DOWN = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
    AskError,
    ClusterDownError,
    TryAgainError,
)

_OWNED = """
local function owned(id)
  return #redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1, ARGV[2]) > 0
end
"""

#: KEYS: stream. ARGV: group, consumer, ids...
_ACK_OWNED = (
    _OWNED
    + """
local n = 0
for i = 3, #ARGV do
  if owned(ARGV[i]) then n = n + redis.call('XACK', KEYS[1], ARGV[1], ARGV[i]) end
end
return n
"""
)

#: KEYS: stream. ARGV: group, consumer, justid ('1'/'0'), idle ms or '', ids...
_CLAIM_OWNED = (
    _OWNED
    + """
local out = {}
for i = 5, #ARGV do
  if owned(ARGV[i]) then
    local args = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i]}
    if ARGV[4] ~= '' then args[#args + 1] = 'IDLE'; args[#args + 1] = ARGV[4] end
    if ARGV[3] == '1' then args[#args + 1] = 'JUSTID' end
    for _, item in ipairs(redis.call(unpack(args))) do out[#out + 1] = item end
  end
end
return out
"""
)

#: KEYS: stream, dead stream. ARGV: group, consumer, only owned ('1'/'0'),
#: maxlen or '', then per entry: id, has event ('1'/'0'), event, error,
#: deliveries, size, reason.
_DEAD = (
    _OWNED
    + """
local kind = redis.call('TYPE', KEYS[2])['ok']
if kind ~= 'stream' and kind ~= 'none' then
  return redis.error_reply('WRONGTYPE dead-letter key ' .. KEYS[2] .. ' is a ' .. kind)
end
local ids = {}
for i = 5, #ARGV, 7 do
  local id = ARGV[i]
  if ARGV[3] ~= '1' or owned(id) then
    local f = {'XADD', KEYS[2]}
    if ARGV[4] ~= '' then f[#f + 1] = 'MAXLEN'; f[#f + 1] = '~'; f[#f + 1] = ARGV[4] end
    f[#f + 1] = '*'
    if ARGV[i + 1] == '1' then f[#f + 1] = 'event'; f[#f + 1] = ARGV[i + 2] end
    local names = {'error', 'deliveries', 'size', 'reason'}
    for k = 1, 4 do f[#f + 1] = names[k]; f[#f + 1] = ARGV[i + 2 + k] end
    f[#f + 1] = 'id'; f[#f + 1] = id
    f[#f + 1] = 'group'; f[#f + 1] = ARGV[1]
    f[#f + 1] = 'consumer'; f[#f + 1] = ARGV[2]
    redis.call(unpack(f))
    ids[#ids + 1] = id
  end
end
if #ids == 0 then return 0 end
return redis.call('XACK', KEYS[1], ARGV[1], unpack(ids))
"""
)

#: ``(kind, message)`` of a failed command.
Failure = tuple[c.ErrorKind, str]


def classify(error: BaseException) -> c.ErrorKind:
    """The core's name for what went wrong."""
    if isinstance(error, DOWN):
        return "down"
    if isinstance(error, redis.ResponseError):
        text = str(error)
        if text.startswith("NOGROUP") or "NOGROUP" in text[:40]:
            return "nogroup"
        if text.startswith("UNBLOCKED"):
            return "unblocked"
        return "key"
    return "other"


class Scripts:
    """The Lua scripts, registered on one client.

    ``lua`` is ``False`` on a server without scripting (fakeredis without
    ``lupa``): :func:`send` then runs the batch one command at a time and
    checks ownership itself (not atomic: for tests only).
    """

    def __init__(self, client: Any) -> None:
        self.ack_owned = client.register_script(_ACK_OWNED)
        self.claim_owned = client.register_script(_CLAIM_OWNED)
        self.dead = client.register_script(_DEAD)
        try:
            client.script_exists(self.dead.sha)
            self.lua = True
        except redis.ResponseError:  # unknown command
            self.lua = False


def _entries(raw: Any) -> list[c.EntryReply]:
    """Entries as ``[(id, {field: value})]`` from parsed or raw replies."""
    out: list[c.EntryReply] = []
    for item in raw or ():
        entry_id, fields = item[0], item[1]
        if isinstance(fields, list):
            fields = dict(zip(fields[::2], fields[1::2], strict=False))
        out.append((entry_id, fields))
    return out


def _queue(
    pipe: Any,
    scripts: Any,
    group: bytes,
    me: bytes,
    cmd: c.Command,
    maxlen: int | None,
) -> None:
    if isinstance(cmd, c.EnsureGroup):
        pipe.xgroup_create(cmd.stream, group, id=cmd.start, mkstream=True)
    elif isinstance(cmd, c.OwnPending):
        pipe.xpending_range(cmd.stream, group, cmd.start, cmd.end, cmd.count, me)
    elif isinstance(cmd, c.Sweep):
        pipe.execute_command(
            "XAUTOCLAIM",
            cmd.stream,
            group,
            me,
            cmd.min_idle_ms,
            cmd.start,
            "COUNT",
            cmd.count,
        )
    elif isinstance(cmd, c.Claim):
        if cmd.only_owned:
            idle = b"" if cmd.idle_ms is None else b"%d" % cmd.idle_ms
            justid = b"1" if cmd.justid else b"0"
            claim_args = [group, me, justid, idle, *cmd.ids]
            scripts.claim_owned(keys=[cmd.stream], args=claim_args, client=pipe)
        else:
            pipe.xclaim(
                cmd.stream,
                group,
                me,
                0,
                list(cmd.ids),
                idle=cmd.idle_ms,
                justid=cmd.justid,
            )
    elif isinstance(cmd, c.Ack):
        if cmd.only_owned:
            scripts.ack_owned(
                keys=[cmd.stream], args=[group, me, *cmd.ids], client=pipe
            )
        else:
            pipe.execute_command("XACK", cmd.stream, group, *cmd.ids)
    elif isinstance(cmd, c.DeadLetter):
        args: list[Any] = [
            group,
            me,
            b"1" if cmd.only_owned else b"0",
            b"" if maxlen is None else b"%d" % maxlen,
        ]
        for dead in cmd.entries:
            has = dead.data is not None
            args += [
                dead.entry_id,
                b"1" if has else b"0",
                dead.data if has else b"",
                dead.error[:4096].encode("utf-8", "replace"),
                dead.deliveries,
                dead.size,
                dead.reason.encode(),
            ]
        keys = [cmd.stream, cmd.stream + b":dead"]
        scripts.dead(keys=keys, args=args, client=pipe)


def _decode(cmd: c.Command, value: Any) -> object:
    if isinstance(cmd, c.Read):
        return value  # merged by send()
    if isinstance(cmd, c.OwnPending):
        return [
            (item["message_id"], int(item["times_delivered"])) for item in value or ()
        ]
    if isinstance(cmd, c.Sweep):
        deleted = list(value[2]) if len(value) > 2 else []
        return value[0], _entries(value[1]), deleted
    if isinstance(cmd, c.Claim):
        return list(value or ()) if cmd.justid else _entries(value)
    return value


def _slots(cmd: c.Read, slot_of: SlotOf | None) -> list[tuple[bytes, ...]]:
    """The streams of ``cmd`` by hash slot (one group on one server)."""
    if slot_of is None or len(cmd.streams) == 1:
        return [cmd.streams]
    slots: dict[int, list[bytes]] = {}
    for stream in cmd.streams:
        slots.setdefault(slot_of(stream), []).append(stream)
    return [tuple(streams) for streams in slots.values()]


def send(
    client: Any,
    scripts: Scripts,
    group: bytes,
    me: bytes,
    batch: list[c.Command],
    maxlen: int | None,
    slot_of: SlotOf | None = None,
) -> list[tuple[bool, object]]:
    """Run ``batch`` (no ``Connect`` in it) in one pipeline.

    Returns per command ``(True, reply)`` or ``(False, (kind, message))``.
    Raises what means the connection is gone (``DOWN``): every command of
    the batch is then lost. On a cluster (``slot_of``) a read of streams of
    several slots is one XREADGROUP per slot, without BLOCK (a command may
    only name keys of one slot); the replies are merged. (The asyncio driver
    does the same with :func:`prepare`, an awaited ``execute`` and
    :func:`collect`.)
    """
    if not scripts.lua:
        from eventspype.broker.redis.streams.plain import run_one

        return [run_one(client, group, me, cmd, maxlen, slot_of) for cmd in batch]
    pipe = client.pipeline(transaction=False)
    parts = prepare(pipe, scripts, group, me, batch, maxlen, slot_of)
    return collect(batch, parts, _execute(client, pipe))


def prepare(
    pipe: Any,
    scripts: Any,
    group: bytes,
    me: bytes,
    batch: list[c.Command],
    maxlen: int | None,
    slot_of: SlotOf | None = None,
) -> list[int]:
    """Queue ``batch`` in ``pipe`` (sync or asyncio); how many replies each
    command has (see :func:`send`)."""
    parts: list[int] = []
    for cmd in batch:
        if isinstance(cmd, c.Read):
            groups = _slots(cmd, slot_of)
            block = cmd.block_ms if len(groups) == 1 else None
            for streams in groups:
                ids = dict.fromkeys(streams, ">")
                pipe.xreadgroup(group, me, ids, count=cmd.count, block=block)
            parts.append(len(groups))
        else:
            _queue(pipe, scripts, group, me, cmd, maxlen)
            parts.append(1)
    return parts


def collect(
    batch: list[c.Command], parts: list[int], flat: list[Any]
) -> list[tuple[bool, object]]:
    """Per command of a batch :func:`prepare` queued, the pipeline's replies
    (``raise_on_error=False``) as :func:`send` returns them."""
    results: list[Any] = []
    at = 0
    for cmd, n in zip(batch, parts, strict=True):
        chunk = flat[at : at + n]
        at += n
        errors = [v for v in chunk if isinstance(v, Exception)]
        if errors:
            results.append(errors[0])
        elif isinstance(cmd, c.Read):
            results.append([item for v in chunk for item in by_stream(v)])
        else:
            results.append(chunk[0])
    out: list[tuple[bool, object]] = []
    for cmd, value in zip(batch, results, strict=True):
        if isinstance(value, Exception):
            if isinstance(cmd, c.EnsureGroup) and "BUSYGROUP" in str(value):
                out.append((True, None))
            elif isinstance(value, DOWN):
                raise value
            else:
                out.append((False, (classify(value), str(value))))
        else:
            try:
                out.append((True, _decode(cmd, value)))
            except (TypeError, ValueError, IndexError) as error:  # not a reply
                out.append((False, ("other", f"unexpected reply: {error}")))
    return out


def _execute(client: Any, pipe: Any) -> list[Any]:
    """Run the commands queued on ``pipe`` on ``client``'s single connection
    (the one CLIENT UNBLOCK names), in one write; error replies come back in
    place. A pool checkout per batch cost more than the rest of the batch.

    ``pipe`` itself never takes a connection of the pool (see
    :func:`_load_scripts`), and an error reply is kept without its
    traceback (which would tie this frame, ``pipe`` included, in a cycle
    only the garbage collector frees)."""
    conn = getattr(client, "connection", None)
    if conn is None:  # not a single-connection client
        return list(pipe.execute(raise_on_error=False))
    if pipe.scripts:
        _load_scripts(client, pipe.scripts)
    stack = pipe.command_stack
    conn.send_packed_command(conn.pack_commands([args for args, _ in stack]))
    out: list[Any] = []
    for args, options in stack:
        try:
            out.append(client.parse_response(conn, args[0], **options))
        except redis.ResponseError as error:
            out.append(error.with_traceback(None))
    return out


def _load_scripts(client: Any, scripts: Any) -> None:
    """SCRIPT EXISTS, and SCRIPT LOAD of the missing ones (after a restart),
    on ``client``'s single connection.

    Not ``pipe.load_scripts()``: that checks a second connection out of the
    pool and keeps it in the pipeline until the pipeline is reset, which
    :func:`_execute` never does; it went back to the pool in the pipeline's
    ``__del__``. On redis-py 5.0, whose pool lock is not reentrant, a
    pipeline freed by the garbage collector while this thread held that lock
    (making a connection) deadlocked the reader for good.
    """
    found = list(scripts)
    exists = client.script_exists(*[script.sha for script in found])
    for script, loaded in zip(found, exists, strict=True):
        if not loaded:
            script.sha = client.script_load(script.script)
