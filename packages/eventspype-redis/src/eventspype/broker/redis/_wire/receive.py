"""One received message: decoded, checked, delivered, counted (no I/O).

The whole receiving side of every Redis broker, so that none of them decodes
or checks a message itself: a driver (a blocking listener thread, an asyncio
task, a Streams consumer) reads ``(channel, data)`` off its connection and
calls :func:`receive`, which runs the :class:`~_wire.inbound.Inbound` checks,
hands the event to the :class:`~_wire.fanout.Fanout`, counts and logs every drop
in :class:`~_wire.stats.Counters`, and returns the :class:`~_wire.fanout.Delivery`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.fanout import Delivery, Fanout
from eventspype.broker.redis._wire.inbound import Inbound
from eventspype.broker.redis._wire.stats import Counters
from eventspype.delivery import Delivery as Transport
from eventspype.delivery import _current as _current_delivery

#: What the Redis brokers name their transport (``Delivery.system``).
SYSTEM = "redis"

# A Pub/Sub delivery without headers is the same immutable object every time
# on a channel: made once per channel, not per message.
_PLAIN: dict[str, Transport] = {}
_PLAIN_MAX = 4096

__all__ = ["receive"]


def receive(
    inbound: Inbound,
    fanout: Fanout,
    counters: Counters,
    channel: str,
    data: bytes,
    caller: Any,
    where: str,
) -> Delivery:
    """Decode ``data`` received on ``channel`` and deliver it; never raises.

    ``channel`` is the local name (``str(tag)``), ``where`` the name to log
    (the channel on the server), ``caller`` what subscribers see as caller
    (the broker). A message refused by the checks is counted and logged under
    its reason and comes back as a :class:`Delivery` with ``handled == 0`` and
    that one refusal; subscribers that did not accept the event are counted
    and logged the same way (``tag_mismatch``, ``class_mismatch``).
    ``Delivery.complete`` is ``False`` only when a subscriber raised: a Streams
    broker acknowledges otherwise (a refused message never gets better).

    Subscribers run with an :class:`eventspype.delivery.Delivery` current
    that carries the message's headers: the one the caller set (a Streams
    reader sets the entry id, group and count) with the headers added, or a
    Pub/Sub one. Headers over the envelope's bounds are dropped, counted in
    ``headers_dropped`` and logged (rate-limited); the event is delivered.
    """
    try:
        event, event_tag, headers, problem = inbound.decode(channel, data)
    except EnvelopeError as error:
        counters.drop(error.reason, where, error)
        return Delivery(0, (), ((error.reason, str(error)),))
    if problem is not None:
        counters.drop_headers(where, problem)
    outer = _current_delivery.get()
    if outer is None:
        if headers:
            current = Transport(channel, SYSTEM, headers=headers)
        else:
            current = _PLAIN.get(channel) or _plain(channel)
    else:
        current = replace(outer, headers=headers) if headers else outer
    token = _current_delivery.set(current)
    try:
        # Counted before the first subscriber runs: one that waits for its
        # event and then reads stats() must see it counted.
        delivery = fanout.deliver(
            channel, event, event_tag, caller, counters.add_delivered
        )
    finally:
        _current_delivery.reset(token)
    for reason, detail in delivery.refused:
        counters.drop(reason, where, detail)
    return delivery


def _plain(channel: str) -> Transport:
    if len(_PLAIN) >= _PLAIN_MAX:  # channels come and go: stay bounded
        _PLAIN.clear()
    made = _PLAIN[channel] = Transport(channel, SYSTEM)
    return made
