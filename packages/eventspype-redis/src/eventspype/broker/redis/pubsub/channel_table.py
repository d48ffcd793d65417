"""Which channels one Pub/Sub connection wants, sent, confirmed or had refused.

The channel half of :class:`~pubsub.protocol.PubSubProtocol` (no I/O, no
clock, no counters): the tables, the commands that bring a connection to what
is wanted, and which reply answers which command. Redis answers commands in
the order they were sent, and every SUBSCRIBE and UNSUBSCRIBE names one
channel, so an error reply is known to concern one channel. Whoever waits for
a confirmation is a :class:`Waiter`, settled here.

Channels are names on the server, as bytes.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

__all__ = ["ChannelTable", "Command", "Waiter"]

#: A command to send: ``("SUBSCRIBE", channel)``, ``("PING",)``, ...
Command = tuple[Any, ...]


class Waiter(Protocol):
    """Whoever waits for the confirmation of one SUBSCRIBE.

    ``refused`` is ``(channel name, the server's reason)`` when Redis refused
    it; ``ok`` is ``False`` whenever the subscription is not in place.
    """

    def settle(self, ok: bool, refused: tuple[str, str] | None = None) -> None: ...


class ChannelTable:
    """The channel tables (see the module docs); the protocol's base class.

    Attributes:
        wanted: Channels that should be subscribed, in the order asked.
        refused: Channel -> the server's reason, for channels whose last
            SUBSCRIBE was refused (for ``stats()``).
        live: A connection is open, and what was sent on it is recorded.
    """

    _encoding = "utf-8"

    def _set_encoding(self, encoding: str) -> None:
        self._encoding = encoding

    def _reset_channels(self) -> None:
        self.wanted: dict[bytes, None] = {}
        self.refused: dict[bytes, str] = {}
        self._unhandled: dict[bytes, None] = {}  # refused, not given up
        self._waiters: dict[bytes, list[Waiter]] = {}
        self._sent: set[bytes] = set()  # subscribed on the connection, as sent
        self._unanswered: dict[bytes, int] = {}  # channel -> commands in flight
        self._pending: deque[tuple[bytes, bytes | None]] = deque()  # in order
        self.live = False

    # -- what is wanted -----------------------------------------------------

    def want(self, channel: bytes, waiter: Waiter | None = None) -> bool:
        """Want ``channel``; whether a confirmation is still to come.

        ``waiter`` is settled when it comes (or is pointless); it is not kept
        when ``channel`` is confirmed already.
        """
        self.wanted[channel] = None
        self.refused.pop(channel, None)
        self._unhandled.pop(channel, None)
        if self.confirmed(channel):
            return False
        if waiter is not None:
            self._waiters.setdefault(channel, []).append(waiter)
        return True

    def unwant(self, channel: bytes) -> None:
        """Stop wanting ``channel``; a refusal of it is handled."""
        self._unhandled.pop(channel, None)
        if channel in self.wanted:
            del self.wanted[channel]
            for waiter in self._waiters.pop(channel, ()):
                waiter.settle(True)

    def hand_over(self, channel: bytes) -> list[Waiter]:
        """Stop wanting ``channel`` for another connection to subscribe it.

        Returns its waiters, unsettled: the other connection's protocol
        settles them (a resharding moved the channel's slot).
        """
        self._unhandled.pop(channel, None)
        self.wanted.pop(channel, None)
        return self._waiters.pop(channel, [])

    def confirmed(self, channel: bytes) -> bool:
        """Whether Redis confirmed ``channel`` on the connection, nothing pending."""
        return channel in self._sent and not self._unanswered.get(channel)

    def missing(self) -> list[bytes]:
        """Wanted channels not confirmed on a live connection (yet)."""
        if not self.live:
            return list(self.wanted)
        return [c for c in self.wanted if not self.confirmed(c)]

    def subscribed(self) -> int:
        """How many wanted channels are confirmed on the connection."""
        return sum(1 for c in self.wanted if self.confirmed(c))

    def first_refusal(self) -> tuple[str, str] | None:
        """``(channel name, reason)`` of the oldest refusal not handled, if any."""
        for channel in self._unhandled:
            return self.name(channel), self.refused.get(channel, "")
        return None

    @property
    def idle(self) -> bool:
        """Nothing wanted, subscribed or awaiting an answer: the connection can go."""
        return not (self.wanted or self._sent or self._unanswered)

    # -- what to send ---------------------------------------------------------

    def commands(self) -> list[Command]:
        """The commands that bring the live connection to what is wanted.

        Recorded as sent: call right before sending them, in the order
        returned. Nothing without a live connection.
        """
        if not self.live:
            return []
        sent = self._sent
        new = [c for c in self.wanted if c not in sent]
        gone = [c for c in sent if c not in self.wanted]
        sent.update(new)
        sent.difference_update(gone)
        return [
            *self._expect(b"subscribe", "SUBSCRIBE", new),
            *self._expect(b"unsubscribe", "UNSUBSCRIBE", gone),
        ]

    def ping(self) -> Command:
        """A PING, recorded as sent (send it on the live connection)."""
        self._pending.append((b"ping", None))
        return ("PING",)

    def _expect(
        self, kind: bytes, command: str, channels: list[bytes]
    ) -> list[Command]:
        for channel in channels:
            self._unanswered[channel] = self._unanswered.get(channel, 0) + 1
            self._pending.append((kind, channel))
        return [(command, channel) for channel in channels]

    # -- what came back -------------------------------------------------------

    def _forget_sent(self) -> None:
        """No connection (any more): nothing is sent or awaited."""
        self.live = False
        self._sent = set()
        self._unanswered = {}
        self._pending.clear()

    def _release_waiters(self) -> None:
        for waiters in self._waiters.values():
            for waiter in waiters:
                waiter.settle(False)
        self._waiters.clear()

    def _matched(self, kind: bytes, channel: bytes | None) -> bool:
        """``answered`` without the health: see ``PubSubProtocol.answered``."""
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
            return False
        left = self._unanswered.get(channel, 0) - 1
        if left > 0:  # a later command for this channel is in flight
            self._unanswered[channel] = left
            return False
        self._unanswered.pop(channel, None)
        if kind == b"subscribe":
            for waiter in self._waiters.pop(channel, ()):
                waiter.settle(True)
            return False
        return kind == b"unsubscribe" and self.idle

    def _refused(self, reason: str) -> tuple[bytes, bytes | None]:
        """An error reply answers the oldest command in flight: which one.

        A refused SUBSCRIBE: the channel is not wanted any more (a later
        ``want`` asks again), its waiters are settled with the refusal.
        """
        kind, channel = self._pending.popleft() if self._pending else (b"", None)
        if kind != b"subscribe" or channel is None:
            return kind, channel
        left = self._unanswered.get(channel, 0) - 1
        if left > 0:
            self._unanswered[channel] = left
        else:
            self._unanswered.pop(channel, None)
        self._sent.discard(channel)
        if channel in self.wanted:  # else given up already: handled
            del self.wanted[channel]
            self._unhandled[channel] = None
        self.refused[channel] = reason
        refusal = (self.name(channel), reason)
        for waiter in self._waiters.pop(channel, ()):
            waiter.settle(False, refusal)
        return kind, channel

    def name(self, channel: bytes) -> str:
        """``channel`` as text, for messages."""
        return channel.decode(self._encoding, "replace")
