"""What one Pub/Sub connection should subscribe, has sent, and was answered (no I/O).

The bookkeeping of the Pub/Sub protocol, apart from any socket or thread, so
that a blocking driver (the listener thread) and an asyncio one share it. The
owner serializes every call (a lock, or one event loop) and does the I/O:
it sends what :meth:`ChannelBook.commands` returns and feeds every reply back.

Redis answers commands in the order they were sent. Every SUBSCRIBE and
UNSUBSCRIBE names one channel and is recorded in ``pending``, so an error reply
(an ACL that forbids a channel: ``-NOPERM``) is known to concern that one
channel: it is a refusal of that channel (:meth:`ChannelBook.error_reply`),
never a reason to drop the connection.

Channels are names on the server, as bytes.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

import redis

__all__ = ["ChannelBook", "Subscription", "SubscriptionRefused"]

#: A command to send: ``("SUBSCRIBE", channel)``, ``("PING",)``, ...
Command = tuple[Any, ...]


class SubscriptionRefused(redis.exceptions.ResponseError):
    """Redis refused to SUBSCRIBE a channel (an ACL that forbids it, say).

    Concerns that channel only: the connection and the other channels are
    unaffected. ``channel`` is the name on the server, ``reason`` the
    server's error (``"NoPermissionError: ..."``).
    """

    def __init__(self, channel: str, reason: str) -> None:
        super().__init__(f"Redis refused to subscribe to {channel!r}: {reason}")
        self.channel = channel
        self.reason = reason


class Subscription:
    """Settled once Redis confirms a SUBSCRIBE, or waiting for it is pointless.

    ``ok`` is ``False`` when the subscription is not in place (the connection
    failed, the listener stopped), so that the subscriber can be warned;
    ``refused`` is set when Redis refused it. Waitable from any thread.
    """

    __slots__ = ("_done", "ok", "refused")

    def __init__(self) -> None:
        self._done = threading.Event()
        self.ok = False
        self.refused: SubscriptionRefused | None = None

    def settle(self, ok: bool, refused: SubscriptionRefused | None = None) -> None:
        self.ok = ok
        self.refused = refused
        self._done.set()

    def wait(self, timeout: float) -> bool:
        """Wait until settled; ``False`` if not settled ``ok`` in time."""
        return self._done.wait(timeout) and self.ok


class ChannelBook:
    """Wanted, sent, unanswered and refused channels (see the module docs).

    Attributes:
        wanted: Channels that should be subscribed, in the order asked.
        refused: Channel -> the server's reason, for channels whose last
            SUBSCRIBE was refused (no longer wanted until asked again).
    """

    def __init__(self, encoding: str = "utf-8") -> None:
        self._encoding = encoding
        self.wanted: dict[bytes, None] = {}
        self.refused: dict[bytes, str] = {}
        self._waiters: dict[bytes, list[Subscription]] = {}
        self._sent: set[bytes] = set()  # subscribed on the connection, as sent
        self._unanswered: dict[bytes, int] = {}  # channel -> commands in flight
        self._pending: deque[tuple[bytes, bytes | None]] = deque()  # in order

    # -- what is wanted --------------------------------------------------------

    def want(self, channel: bytes) -> Subscription | None:
        """Want ``channel``; what to wait on, or ``None`` if already confirmed."""
        self.wanted[channel] = None
        if self.confirmed(channel):
            return None
        self.refused.pop(channel, None)
        waiter = Subscription()
        self._waiters.setdefault(channel, []).append(waiter)
        return waiter

    def unwant(self, channel: bytes) -> None:
        """Stop wanting ``channel`` (whoever waited for it has nothing to wait for)."""
        if channel in self.wanted:
            del self.wanted[channel]
            for waiter in self._waiters.pop(channel, ()):
                waiter.settle(True)

    def confirmed(self, channel: bytes) -> bool:
        """Whether Redis confirmed ``channel`` on the connection, nothing pending."""
        return channel in self._sent and not self._unanswered.get(channel)

    def missing(self) -> list[bytes]:
        """Wanted channels not confirmed (yet)."""
        return [c for c in self.wanted if not self.confirmed(c)]

    def subscribed(self) -> int:
        """How many wanted channels are confirmed on the connection."""
        return sum(1 for c in self.wanted if self.confirmed(c))

    # -- what to send ------------------------------------------------------------

    def commands(self) -> list[Command]:
        """The commands that bring the connection to what is wanted; recorded
        as sent (call right before sending them, in the order returned)."""
        new = [c for c in self.wanted if c not in self._sent]
        gone = [c for c in self._sent if c not in self.wanted]
        self._sent.update(new)
        self._sent.difference_update(gone)
        return [
            *self._expect(b"subscribe", "SUBSCRIBE", new),
            *self._expect(b"unsubscribe", "UNSUBSCRIBE", gone),
        ]

    def ping(self) -> Command:
        """A PING, recorded as sent."""
        self._pending.append((b"ping", None))
        return ("PING",)

    def _expect(
        self, kind: bytes, command: str, channels: list[bytes]
    ) -> list[Command]:
        for channel in channels:
            self._unanswered[channel] = self._unanswered.get(channel, 0) + 1
            self._pending.append((kind, channel))
        return [(command, channel) for channel in channels]

    def new_connection(self) -> None:
        """Nothing is sent on a new (or no) connection."""
        self._sent = set()
        self._unanswered = {}
        self._pending.clear()

    @property
    def idle(self) -> bool:
        """Nothing wanted, subscribed or awaiting an answer: the connection can go."""
        return not (self.wanted or self._sent or self._unanswered)

    # -- what came back ------------------------------------------------------------

    def answered(self, kind: bytes, channel: bytes | None) -> list[Subscription]:
        """A ``subscribe``, ``unsubscribe`` or ``pong`` reply arrived.

        Returns the waiters to settle ``ok`` (a confirmed SUBSCRIBE with no
        later command for the channel in flight).
        """
        key = (b"ping" if kind == b"pong" else kind, channel)
        pending = self._pending
        if pending and pending[0] == key:
            pending.popleft()
        else:
            # A reply Redis sent by itself (an UNSUBSCRIBE after an ACL change):
            # take the first of its kind, if any, to keep the order for the rest.
            for index, entry in enumerate(pending):
                if entry == key:
                    del pending[index]
                    break
        if channel is None:
            return []
        left = self._unanswered.get(channel, 0) - 1
        if left > 0:  # a later command for this channel is in flight
            self._unanswered[channel] = left
            return []
        self._unanswered.pop(channel, None)
        return self._waiters.pop(channel, []) if kind == b"subscribe" else []

    def error_reply(
        self, error: BaseException
    ) -> tuple[bytes, bytes | None, list[Subscription]]:
        """An error reply arrived: it answers the oldest pending command.

        Returns that command's ``(kind, channel)`` and, for a refused
        SUBSCRIBE, the waiters to settle with a :class:`SubscriptionRefused`
        (already settled here); the channel is no longer wanted.
        """
        kind, channel = self._pending.popleft() if self._pending else (b"", None)
        if kind != b"subscribe" or channel is None:
            return kind, channel, []
        # redis-py maps the error code to the class (NOPERM: NoPermissionError).
        reason = f"{type(error).__name__}: {error}"
        left = self._unanswered.get(channel, 0) - 1
        if left > 0:
            self._unanswered[channel] = left
        else:
            self._unanswered.pop(channel, None)
        self._sent.discard(channel)
        self.wanted.pop(channel, None)  # a later subscribe() asks again
        self.refused[channel] = reason
        waiters = self._waiters.pop(channel, [])
        refusal = self.refusal(channel)
        for waiter in waiters:
            waiter.settle(False, refusal)
        return kind, channel, waiters

    def refusal(self, channel: bytes) -> SubscriptionRefused:
        """The error for a refused ``channel``."""
        return SubscriptionRefused(self.name(channel), self.refused.get(channel, ""))

    def release_waiters(self) -> None:
        """Settle every waiter not ``ok``: nobody should wait minutes."""
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.settle(False)
        self._waiters.clear()

    def name(self, channel: bytes) -> str:
        """``channel`` as text, for messages."""
        return channel.decode(self._encoding, "replace")
