"""How the Streams protocol core takes each reply and each failure (no I/O).

The other half of ``streams.protocol``: :func:`on_reply` and
:func:`on_failure` update a :class:`StreamProtocol`'s entries in hand, its
streams and its connection state. Split out by role (what comes back),
not called by anything but the protocol.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.held import Held

if TYPE_CHECKING:
    from eventspype.broker.redis.streams.protocol import StreamProtocol

__all__ = ["on_failure", "on_reply"]

_logger = logging.getLogger("eventspype.broker.redis")
_EVENT = b"event"
_ZERO = b"0-0"


def _text(value: bytes) -> str:
    return value.decode("utf-8", "replace")


def classify(p: StreamProtocol, held: Held, fields: dict[bytes, bytes] | None) -> None:
    """Fill ``held.data`` from ``fields``; mark what cannot be delivered."""
    data = fields.get(_EVENT) if fields else None
    if data is None:
        held.data, held.reason = None, "malformed"
        held.error = "entry without an 'event' field"
        p.counters.malformed += 1
        p._log.warning(
            "Entry %s of %r has no 'event' field; dead-lettered",
            _text(held.entry_id),
            _text(held.stream),
        )
    elif len(data) > p.options.max_entry_bytes:
        held.data, held.reason = data, "oversized"
        held.error = f"{len(data)} bytes > max {p.options.max_entry_bytes}"
        p.counters.oversized += 1
    else:
        held.data, held.reason = data, ""


def _admit(p: StreamProtocol, held: Held, fields: dict[bytes, bytes] | None) -> None:
    """A read or claimed entry (its count known): deliver or dead-letter."""
    classify(p, held, fields)
    if held.reason:
        held.state = "dead"
    elif held.count > p.options.max_deliveries:  # its consumers kept dying
        held.state, held.reason = "dead", "max_deliveries"
        held.error = held.error or (
            f"delivered {held.count - 1} times, never acknowledged"
        )
        held.count -= 1
    else:
        held.state = "new"


def on_reply(p: StreamProtocol, cmd: c.Command, value: Any, now: float) -> None:
    """Take the reply ``value`` of ``cmd``."""
    held_map = p._held
    if isinstance(cmd, c.Connect):
        p._connected = True
        if p._down_since is not None:
            p.counters.reconnects += 1
            _logger.warning(
                "Redis stream consumer reconnected after %.1f s",
                now - p._down_since,
            )
        p._down_since, p._failures = None, 0
        p._ready.clear()  # the server may have restarted: check the groups
    elif isinstance(cmd, c.EnsureGroup):
        p._ready.add(cmd.stream)
        p._created.add(cmd.stream)
        p._broken.pop(cmd.stream, None)
        p._resume[cmd.stream] = b"-"  # own pending entries first
        p._sweep_at.setdefault(cmd.stream, _ZERO)
    elif isinstance(cmd, c.Read):
        for stream, entries in value or ():
            for entry_id, fields in entries or ():
                if (stream, entry_id) in held_map:
                    continue
                held = Held(stream, entry_id, None, 1, cmd.sent_at, "new")
                held_map[held.key] = held
                _admit(p, held, fields)
    elif isinstance(cmd, c.Sweep):
        _swept(p, cmd, value)
    elif isinstance(cmd, c.OwnPending):
        _pending(p, cmd, value, now)
    elif isinstance(cmd, c.Claim):
        _claimed(p, cmd, value)
    elif isinstance(cmd, (c.Ack, c.DeadLetter)):
        ids = cmd.ids if isinstance(cmd, c.Ack) else [d.entry_id for d in cmd.entries]
        state = "acking" if isinstance(cmd, c.Ack) else "burying"
        done = 0
        for entry_id in ids:
            settled = held_map.get((cmd.stream, entry_id))
            if settled is not None and settled.state == state:
                del held_map[settled.key]
                done += 1
        if isinstance(cmd, c.DeadLetter):
            p.counters.dead_lettered += done
            first = cmd.entries[0]
            p._log.warning(
                "Moved %d entr(y/ies) of %r to its dead-letter stream (first %s, "
                "%s: %s)",
                len(cmd.entries),
                _text(cmd.stream),
                _text(first.entry_id),
                first.reason,
                first.error[:200],
            )
        p.counters.acknowledged += done


def _swept(p: StreamProtocol, cmd: c.Sweep, value: Any) -> None:
    cursor, entries = value[0], value[1]
    deleted = value[2] if len(value) > 2 else []
    if cursor in (_ZERO, "0-0") or not p._reading:
        p._sweep_at.pop(cmd.stream, None)
    else:
        p._sweep_at[cmd.stream] = cursor
    for entry_id, fields in entries or ():
        known = p._held.get((cmd.stream, entry_id))
        if known is not None:  # ours again (its lease had run out)
            known.leased_at = cmd.sent_at
            continue
        held = Held(cmd.stream, entry_id, None, 0, cmd.sent_at, "counting")
        classify(p, held, fields)
        p._held[held.key] = held
        p.counters.claimed += 1
    if deleted:
        p.counters.trimmed += len(deleted)
        p._log.warning(
            "%d pending entr(y/ies) of %r were trimmed or deleted before "
            "anyone acknowledged them (first %s)",
            len(deleted),
            _text(cmd.stream),
            _text(deleted[0]),
        )


def _pending(p: StreamProtocol, cmd: c.OwnPending, value: Any, now: float) -> None:
    items = [(entry_id, int(times)) for entry_id, times in value or ()]
    if cmd.resume:
        for entry_id, times in items:
            if (cmd.stream, entry_id) not in p._held:
                held = Held(cmd.stream, entry_id, None, times, float("-inf"), "retry")
                held.since = now
                p._held[held.key] = held
                p.counters.resumed += 1
        if len(items) < cmd.count or not p._reading:
            p._resume.pop(cmd.stream, None)
        else:
            p._resume[cmd.stream] = b"(" + items[-1][0]
        return
    counts = dict(items)
    for held in list(p._held.values()):
        if held.stream == cmd.stream and held.state == "counting" and held.renewing:
            held.renewing = False
            held.count = counts.get(held.entry_id, 2)
            reason, data = held.reason, held.data
            if reason:
                held.state = "dead"
            elif held.count > p.options.max_deliveries:
                held.state, held.reason = "dead", "max_deliveries"
                held.error = f"delivered {held.count - 1} times, never acknowledged"
                held.count -= 1
            else:
                held.state = "new" if data is not None else "dead"


def _claimed(p: StreamProtocol, cmd: c.Claim, value: Any) -> None:
    if cmd.justid:
        got = set(value or ())
        for entry_id in cmd.ids:
            held = p._held.get((cmd.stream, entry_id))
            if held is None:
                continue
            if cmd.idle_ms is not None:  # handed back
                if held.state == "giving_back":
                    del p._held[held.key]
                    p.counters.handed_back += 1
                continue
            held.renewing = False
            if entry_id in got:
                held.leased_at = cmd.sent_at
                p.counters.leases_renewed += 1
            else:
                _gone(p, held, cmd.only_owned)
        return
    entries = dict(value or ())
    for entry_id in cmd.ids:
        held = p._held.get((cmd.stream, entry_id))
        if held is None or held.state != "claiming":
            continue
        if entry_id not in entries:
            _gone(p, held, cmd.only_owned)
            continue
        held.count += 1
        held.leased_at = cmd.sent_at
        _admit(p, held, entries[entry_id])


def _gone(p: StreamProtocol, held: Held, only_owned: bool) -> None:
    """An entry Redis did not let this consumer claim: no longer ours."""
    del p._held[held.key]
    if only_owned:
        p.counters.leases_lost += 1
        p._log.warning(
            "Entry %s of %r is no longer this consumer's (its lease ran out "
            "and another consumer claimed it, or it was trimmed)",
            _text(held.entry_id),
            _text(held.stream),
        )
    else:
        p.counters.trimmed += 1
        p._log.warning(
            "Pending entry %s of %r was trimmed or deleted before it was acknowledged",
            _text(held.entry_id),
            _text(held.stream),
        )


_REVERT = {"acking": "ack", "burying": "dead", "giving_back": "give_back"}


def on_failure(
    p: StreamProtocol, cmd: c.Command, kind: c.ErrorKind, message: str, now: float
) -> None:
    """Take the failure of ``cmd``: undo what it was to do, then react."""
    streams: tuple[bytes, ...] = ()
    if isinstance(cmd, c.Read):
        streams = cmd.streams
    elif not isinstance(cmd, c.Connect):
        streams = (cmd.stream,)
    for held in p._held.values():
        if held.stream not in streams:
            continue
        if held.state in _REVERT:
            held.state = _REVERT[held.state]  # type: ignore[assignment]
        elif held.state == "claiming":
            held.state, held.since = "retry", now
        held.renewing = False
    if kind == "down":
        if p._connected or isinstance(cmd, c.Connect):
            p._connected = False
            p._failures += 1
            p._next_connect = now + p.options.reconnect.delay(p._failures, p._rand())
            if p._down_since is None:
                p._down_since = now
                _logger.warning(
                    "Redis stream consumer lost its connection (%s); reconnecting "
                    "with backoff (what it holds stays pending)",
                    message,
                )
    elif kind == "nogroup":
        for stream in streams:
            p._ready.discard(stream)
            for held in [h for h in p._held.values() if h.stream == stream]:
                del p._held[held.key]  # the group's PEL went with it
                p.counters.leases_lost += 1
        p.counters.groups_recreated += 1
        _logger.warning(
            "Consumer group %r vanished on %s (%s); creating it again from the "
            "start of the stream",
            _text(p.options.group),
            ", ".join(_text(s) for s in streams),
            message,
        )
    elif isinstance(cmd, c.DeadLetter):  # the dead-letter key, not the stream
        for dead in cmd.entries:
            waiting = p._held.get((cmd.stream, dead.entry_id))
            if waiting is not None:
                waiting.failures += 1
                delay = p.options.retry.delay(waiting.failures, p._rand())
                waiting.since = now + delay
        p.counters.key_errors += 1
        p._log.warning(
            "Redis refused the dead-letter move on %s (%s); the entries stay "
            "pending and the move is tried again later",
            _text(cmd.stream),
            message,
        )
    elif kind in ("key", "other"):
        if isinstance(cmd, c.Read) and len(streams) > 1:
            for stream in streams:  # which one? each is probed by XGROUP CREATE
                p._ready.discard(stream)
            return
        for stream in streams:
            p._ready.discard(stream)
            failures = p._broken.get(stream, (0.0, 0))[1] + 1
            until = now + p.options.retry.delay(failures, p._rand())
            p._broken[stream] = (until, failures)
        p.counters.key_errors += 1
        p._log.warning(
            "Redis refused %s on %s (%s); that stream is retried later, the "
            "others go on",
            type(cmd).__name__,
            ", ".join(_text(s) for s in streams),
            message,
        )
