"""Waiting for Redis to confirm subscriptions, on the drivers' side.

:class:`~pubsub.protocol.PubSubProtocol` settles waiters and knows what is
missing or refused; this module turns that into what callers see: a
:class:`Subscription` to wait on from any thread, the
:class:`SubscriptionRefused` error, and the ``TimeoutError`` of
``wait_until_subscribed``.
"""

from __future__ import annotations

import threading

import redis

from eventspype.broker.redis.pubsub.protocol import PubSubProtocol

__all__ = ["Subscription", "SubscriptionRefused", "check_subscribed"]


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

    def settle(self, ok: bool, refused: tuple[str, str] | None = None) -> None:
        self.ok = ok
        self.refused = None if refused is None else SubscriptionRefused(*refused)
        self._done.set()

    def wait(self, timeout: float) -> bool:
        """Wait until settled; ``False`` if not settled ``ok`` in time."""
        return self._done.wait(timeout) and self.ok


def check_subscribed(protocol: PubSubProtocol, timeout: float, expired: bool) -> bool:
    """Whether Redis confirmed every wanted channel on a live connection.

    Call with the protocol's owner's lock held.

    Raises:
        SubscriptionRefused: Redis refused a channel (the oldest refusal that
            was not handled by unsubscribing it).
        TimeoutError: some are not confirmed and ``expired``; the message
            names them (``timeout`` is the caller's) and the last connection
            error.
    """
    refused = protocol.first_refusal()
    if refused is not None:
        raise SubscriptionRefused(*refused)
    missing = protocol.missing()
    if not missing:
        return True
    if not expired:
        return False
    names = ", ".join(repr(protocol.name(c)) for c in missing[:5])
    more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
    raise TimeoutError(
        f"Redis has not confirmed the subscription to {names}{more} "
        f"within {timeout} s (last connection error: "
        f"{protocol.last_error or 'none'})"
    )
