"""How ``AsyncRedisStreamBroker`` puts XADD commands on the wire.

``AsyncRedisBroker``'s writer (``pubsub.aio_writer.AsyncWriter``: the bounded
queue, one pipeline per loop turn, replies read while the next batch goes out)
with senders that append to a stream instead of publishing: the same two kinds,
for the same clients (see ``pubsub.aio_senders``). The writer's "channel" is
the stream key.
"""

from __future__ import annotations

import warnings
from typing import Any

from eventspype.broker.redis._io.aio_connections import (
    fast_path_client,
    own_connection_options,
)
from eventspype.broker.redis._io.connections import lacks_socket_timeout
from eventspype.broker.redis._io.resp import CommandPacker
from eventspype.broker.redis.pubsub.aio_senders import (
    ClientSender,
    ConnectionSender,
    Sender,
)
from eventspype.broker.redis.streams.dead_letters import EVENT_FIELD

__all__ = ["make_stream_sender"]


class _XaddConnectionSender(ConnectionSender):
    """Pre-encoded ``XADD key [MAXLEN ~ n] * event <envelope>``."""

    def __init__(self, connection: Any, packer: CommandPacker) -> None:
        super().__init__(connection)
        self.pack = packer.pack


class _XaddClientSender(ClientSender):
    """``XADD`` through the client's ``pipeline(transaction=False)``."""

    def __init__(self, client: Any, trim: tuple[Any, ...]) -> None:
        super().__init__(client)
        self._trim = trim

    def queue(self, pipeline: Any, channel: bytes, message: bytes) -> None:
        pipeline.execute_command(
            "XADD", channel, *self._trim, "*", EVENT_FIELD, message
        )


def make_stream_sender(
    client: Any, maxlen: int | None, *, timeout: float | None
) -> Sender:
    """A sender on a connection of the broker's own for plain clients, else
    through the client's pipelines (warning when it has no timeout)."""
    trim: tuple[Any, ...] = () if maxlen is None else ("MAXLEN", "~", maxlen)
    if fast_path_client(client):
        connection_class, options = own_connection_options(client, timeout)
        after = (*[str(a).encode() for a in trim], b"*", EVENT_FIELD)
        packer = CommandPacker((b"XADD",), after)
        return _XaddConnectionSender(connection_class(**options), packer)
    if lacks_socket_timeout(client):
        warnings.warn(
            "the Redis client has no socket_timeout: the writer will wait "
            "forever for a server that stops answering; give the client "
            "socket_timeout (AsyncRedisStreamBroker.from_url() does)",
            RuntimeWarning,
            stacklevel=3,
        )
    return _XaddClientSender(client, trim)
