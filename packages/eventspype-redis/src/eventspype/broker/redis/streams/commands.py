"""What the Streams protocol core asks a driver to send, and the replies it takes.

Every command is a frozen dataclass naming one Redis call (or one Lua script
call) on one stream of the consumer's group; ``sent_at`` is the core's clock
when it made the command. The driver translates each into bytes (see each
class for the exact command) and feeds the decoded reply back with
:meth:`StreamProtocol.reply`, in the shapes given here. No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "Ack",
    "Claim",
    "Command",
    "Connect",
    "Dead",
    "DeadLetter",
    "EnsureGroup",
    "EntryReply",
    "ErrorKind",
    "OwnPending",
    "Read",
    "Sweep",
]

#: One entry as Redis returns it: ``(id, fields)``; ``fields`` is ``None`` for
#: an entry deleted from the stream (history reads only).
EntryReply = tuple[bytes, "dict[bytes, bytes] | None"]

#: How a driver classifies a failed command (see ``StreamProtocol.failed``):
#: ``"down"`` the connection is gone (ConnectionError, TimeoutError, OSError,
#: and on a cluster MOVED/ASK/CLUSTERDOWN/TRYAGAIN): every command sent and
#: not answered is lost too; ``"nogroup"`` Redis said NOGROUP; ``"key"`` any
#: other error Redis gave about the command's key (WRONGTYPE, an ACL refusal):
#: it concerns that stream only; ``"unblocked"`` a blocking read was ended by
#: CLIENT UNBLOCK ... ERROR; ``"other"`` anything else.
ErrorKind = Literal["down", "nogroup", "key", "unblocked", "other"]


@dataclass(frozen=True)
class Connect:
    """Open the consumer's connection (after a start or an outage).

    Reply: ``None``. Failure: ``"down"``.
    """

    sent_at: float


@dataclass(frozen=True)
class EnsureGroup:
    """``XGROUP CREATE <stream> <group> <start> MKSTREAM``.

    Reply ``None``; a ``BUSYGROUP`` error is a success (feed ``None``). A
    ``WRONGTYPE`` (or other key) error marks the stream broken for a while.
    """

    stream: bytes
    start: bytes
    sent_at: float


@dataclass(frozen=True)
class OwnPending:
    """``XPENDING <stream> <group> <start> <end> <count> <consumer>``.

    ``start`` and ``end`` are sent as they are (``-``, ``+``, an id, or
    ``(`` + an id for an exclusive start). ``resume`` says why it was asked
    (the driver need not care). Reply: ``[(entry_id, times_delivered)]`` in
    id order.
    """

    stream: bytes
    start: bytes
    end: bytes
    count: int
    resume: bool
    sent_at: float


@dataclass(frozen=True)
class Read:
    """``XREADGROUP GROUP <group> <consumer> COUNT <count> [BLOCK <block_ms>]
    STREAMS <streams...> > ...`` (no BLOCK when ``block_ms`` is ``None``).

    Reply: ``[(stream, [EntryReply])]`` (streams without entries may be left
    out). Send it last of a batch: it may block.
    """

    streams: tuple[bytes, ...]
    count: int
    block_ms: int | None
    sent_at: float


@dataclass(frozen=True)
class Sweep:
    """``XAUTOCLAIM <stream> <group> <consumer> <min_idle_ms> <start> COUNT <count>``.

    Reply: ``(next_start, [EntryReply], [deleted ids])`` (Redis 7 form;
    feed ``[]`` for the third item on older servers).
    """

    stream: bytes
    min_idle_ms: int
    start: bytes
    count: int
    sent_at: float


@dataclass(frozen=True)
class Claim:
    """``XCLAIM <stream> <group> <consumer> 0 <ids...> [IDLE <idle_ms>] [JUSTID]``.

    To itself, with a min-idle of 0: with ``justid`` it renews the lease
    (resets the idle time, keeps the delivery count) or, with ``idle_ms``,
    hands entries back to the group; without, it takes a retry (Redis counts
    one more delivery and returns the entries). With ``only_owned`` the
    driver must claim only the ids this consumer still owns in the PEL, atomically
    (a Lua script checking ``XPENDING <stream> <group> <id> <id> 1`` per id).

    Reply: with ``justid`` the claimed ids (``[bytes]``); without, the claimed
    entries (``[EntryReply]``). An id missing from the reply was not claimed
    (trimmed away, or owned by another consumer).
    """

    stream: bytes
    ids: tuple[bytes, ...]
    justid: bool
    idle_ms: int | None
    only_owned: bool
    sent_at: float


@dataclass(frozen=True)
class Ack:
    """``XACK <stream> <group> <ids...>``; with ``only_owned``, atomically and
    only for the ids this consumer still owns (a Lua script).

    Reply: the number acknowledged (``int``), which the core does not trust
    for anything but counting.
    """

    stream: bytes
    ids: tuple[bytes, ...]
    only_owned: bool
    sent_at: float


@dataclass(frozen=True)
class Dead:
    """One entry to move to the dead letters, and the fields to record."""

    entry_id: bytes
    #: The envelope, byte for byte; ``None`` when it is not copied (oversized,
    #: malformed): ``size`` and ``reason`` then say what it was.
    data: bytes | None
    size: int
    reason: str
    error: str
    deliveries: int


@dataclass(frozen=True)
class DeadLetter:
    """Move ``entries`` to ``<stream>:dead`` and acknowledge them, atomically.

    One Lua script: for each entry (only if this consumer owns it, when
    ``only_owned``) ``XADD <stream>:dead [MAXLEN ~ <maxlen>] * event <data>
    error <error> deliveries <n> id <entry_id> group <group> consumer
    <consumer> size <size> reason <reason>`` (``event`` left out when
    ``data`` is ``None``), then ``XACK``. A failing XADD (the dead key has the
    wrong type) raises before any XACK: nothing is acknowledged.

    Reply: the number moved (``int``).
    """

    stream: bytes
    entries: tuple[Dead, ...]
    only_owned: bool
    sent_at: float


Command = Connect | EnsureGroup | OwnPending | Read | Sweep | Claim | Ack | DeadLetter
