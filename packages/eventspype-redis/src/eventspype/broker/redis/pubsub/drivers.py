"""The blocking drivers of a ``RedisBroker``: its listener and its transport.

A ``RedisCluster`` client with sharded Pub/Sub gets a
:class:`~pubsub.sharded.ShardedListener` (one thread per shard, SSUBSCRIBE)
and a :class:`~pubsub.sharded_transport.ShardedTransport` (SPUBLISH); any other
client gets one :class:`~pubsub.listener.Listener` and the transport
:func:`~_io.transport.make_transport` picks (the fast path or the client's
``publish()``).
"""

from __future__ import annotations

import atexit
import warnings
from collections.abc import Callable
from typing import Any

from redis.cluster import RedisCluster

from eventspype.broker.redis._io.transport import Transport, make_transport
from eventspype.broker.redis._wire.stats import Counters
from eventspype.broker.redis.pubsub.link import link_factory
from eventspype.broker.redis.pubsub.listener import Deliver, Listener
from eventspype.broker.redis.pubsub.sharded import ShardedListener
from eventspype.broker.redis.pubsub.sharded_transport import ShardedTransport
from eventspype.broker.redis.pubsub.subscriptions import ThreadListener

__all__ = ["pubsub_drivers", "shutdown", "watch_exit"]

#: The listener's longest uninterrupted wait on an idle connection.
_IDLE_TIMEOUT = 1.0


def pubsub_drivers(
    redis_client: Any,
    deliver: Deliver,
    tidy: Callable[[], None],
    counters: Counters,
    *,
    encoding: str,
    sharded: bool,
    fast: bool,
    publish_timeout: float | None,
    health_check_interval: float,
    reconnect_delay: tuple[float, float],
) -> tuple[ThreadListener, Transport]:
    """The listener and the transport for ``redis_client`` (see the module docs).

    ``deliver`` and ``tidy`` are the broker's handlers (held weakly by the
    listener); the options are ``RedisBroker``'s.

    Raises:
        ValueError: an option is out of range.
    """
    options: dict[str, Any] = {
        "idle_timeout": _IDLE_TIMEOUT,
        "health_check_interval": health_check_interval,
        "reconnect_delay": reconnect_delay,
        "encoding": encoding,
    }
    if sharded and isinstance(redis_client, RedisCluster):
        transport: Transport = ShardedTransport(redis_client)
        listener: ThreadListener = ShardedListener(
            redis_client, deliver, tidy, counters, **options
        )
        return listener, transport
    listener = Listener(
        link_factory(redis_client, encoding), deliver, tidy, counters, **options
    )
    return listener, make_transport(redis_client, fast=fast, timeout=publish_timeout)


def shutdown(description: str, listener: ThreadListener, transport: Transport) -> None:
    """Stop ``listener`` without waiting and close ``transport`` (a finalizer).

    Warns (``ResourceWarning``) naming the broker and the threads it stopped.
    """
    threads = [thread.name for thread in listener.threads()]
    listener.request_stop()
    transport.close()
    if _exiting:  # leaving without close() is fine (and must print nothing)
        return
    warnings.warn(
        f"{description} was not closed; stopped its listener thread(s) "
        f"({', '.join(threads) or 'none running'}) and closed its connections. "
        "Close it with broker.close() or 'with broker:'.",
        ResourceWarning,
        stacklevel=2,
    )


_exiting = False
_watching = False


def _at_exit() -> None:
    global _exiting
    _exiting = True


def watch_exit() -> None:
    """Tell :func:`shutdown` when the interpreter exits (call after a finalizer).

    Finalizers run at exit too, where a broker left open is no mistake.
    ``atexit`` runs its functions last registered first: registered after the
    first ``weakref.finalize`` (which registers weakref's own exit function),
    this runs before any finalizer does at exit.
    """
    global _watching
    if not _watching:
        _watching = True
        atexit.register(_at_exit)
