"""What the Streams protocol core sends for the entries it holds (no I/O).

The settling half of ``streams.protocol.StreamProtocol.poll``: acknowledge
what the subscribers handled, dead-letter what is given up, hand back what
is let go, claim the retries that are due, ask the delivery counts of swept
entries, and renew the leases that are getting old. A command about an entry
whose lease may have run out (older than ``stale_age``) is ``only_owned``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from eventspype.broker.redis.streams import commands as c
from eventspype.broker.redis.streams.held import Held

if TYPE_CHECKING:
    from eventspype.broker.redis.streams.protocol import StreamProtocol

__all__ = ["renew", "settle"]


def _id_key(entry_id: bytes) -> tuple[int, int]:
    ms, _, seq = entry_id.partition(b"-")
    return int(ms or 0), int(seq or 0)


def settle(p: StreamProtocol, now: float, out: list[c.Command]) -> None:
    """Acknowledge, dead-letter, hand back, retry and count what is due."""
    acks: dict[tuple[bytes, bool], list[bytes]] = {}
    dead: dict[tuple[bytes, bool], list[c.Dead]] = {}
    back: dict[tuple[bytes, bool], list[bytes]] = {}
    retry: dict[tuple[bytes, bool], list[bytes]] = {}
    counting: dict[bytes, list[bytes]] = {}
    stale = p.options.stale_age
    for held in p._held.values():
        key = (held.stream, now - held.leased_at >= stale)
        if held.stream in p._broken and held.state != "counting":
            continue
        if held.state == "ack":
            held.state = "acking"
            acks.setdefault(key, []).append(held.entry_id)
        elif held.state == "dead" and held.since <= now:
            held.state = "burying"
            dead.setdefault(key, []).append(_dead(held))
        elif held.state == "give_back":
            held.state = "giving_back"
            back.setdefault((held.stream, True), []).append(held.entry_id)
        elif held.state == "retry" and held.since <= now:
            held.state = "claiming"
            retry.setdefault(key, []).append(held.entry_id)
        elif held.state == "counting" and not held.renewing:
            held.renewing = True  # marks "count query in flight"
            counting.setdefault(held.stream, []).append(held.entry_id)
    for (stream, owned), ids in acks.items():
        out.append(c.Ack(stream, tuple(ids), owned, now))
    for (stream, owned), items in dead.items():
        out.append(c.DeadLetter(stream, tuple(items), owned, now))
    for (stream, owned), ids in back.items():
        idle = p._claim_idle_ms + 1000
        out.append(c.Claim(stream, tuple(ids), True, idle, owned, now))
    for (stream, owned), ids in retry.items():
        p.counters.retried += len(ids)
        out.append(c.Claim(stream, tuple(ids), False, None, owned, now))
    for stream, ids in counting.items():
        lo, hi = min(ids, key=_id_key), max(ids, key=_id_key)
        count = p.options.prefetch + len(ids)
        out.append(c.OwnPending(stream, lo, hi, count, False, now))


def _dead(held: Held) -> c.Dead:
    size = 0 if held.data is None else len(held.data)
    keep = held.reason not in ("malformed", "oversized")
    return c.Dead(
        held.entry_id,
        held.data if keep else None,
        size,
        held.reason,
        held.error,
        held.count,
    )


def renew(p: StreamProtocol, now: float, out: list[c.Command]) -> None:
    """Renew the leases that are ``renew_age`` old (XCLAIM JUSTID to itself)."""
    due: dict[tuple[bytes, bool], list[bytes]] = {}
    renew, stale = p.options.renew_age, p.options.stale_age
    next_due = float("inf")
    for held in p._held.values():
        if (
            held.state not in ("new", "running", "retry", "ack", "dead")
            or held.renewing
            or held.stream in p._broken
        ):
            continue
        if now - held.leased_at < renew:
            next_due = min(next_due, held.leased_at + renew)
        else:
            held.renewing = True
            key = (held.stream, now - held.leased_at >= stale)
            due.setdefault(key, []).append(held.entry_id)
    for (stream, owned), ids in due.items():
        out.append(c.Claim(stream, tuple(ids), True, None, owned, now))
    p.renew_due = next_due
