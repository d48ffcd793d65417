"""RESP for the fast paths, packed by hand, ready for the socket: PUBLISH and
XADD (:class:`CommandPacker`), and the Streams consumer's pipelines
(:class:`PipelinePacker`).

Both commands repeat every argument but the last (the message) from one call
to the next, for a given channel or stream key: :class:`CommandPacker` keeps
the encoded front of the command per key and adds only the message. Against
redis-py's ``Connection.pack_command`` (which encodes every argument each time)
``benchmarks/bench_redis.py`` ("pack one PUBLISH", "pack one XADD") measured
it 6-9x faster for PUBLISH (0.24-0.34 us against 2.1-2.3 us) and 25x for
XADD with ``MAXLEN ~ n`` (0.23 us against 5.8 us), redis-py 8.2, Python 3.12;
for PUBLISH the difference is 40 % of the publisher's time per event in a
``batch()``. The
bytes are the same as redis-py's (``tests/redis/test_redis_resp.py``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence

__all__ = ["CommandPacker", "PipelinePacker", "pack_publish"]

#: Encoded fronts kept per packer: channel and stream names may be generated,
#: so the cache is bounded; past it, fronts are encoded per call.
_MAX_KEYS = 4096
#: Arguments longer than this are left to redis-py, which writes them
#: without copying them into the command (its ``_buffer_cutoff``).
_BUFFER_CUTOFF = 6000


class CommandPacker:
    """Packs ``*before, key, *after, last`` in RESP, the front cached per key.

    ``before`` and ``after`` are the arguments around the key that never
    change (``PUBLISH`` | nothing; ``XADD`` | ``MAXLEN ~ n * event``).
    Thread-safe: the cache is a plain dict, whose reads and writes are atomic;
    two threads may both encode a missing front, with the same result.
    """

    __slots__ = ("_after", "_before", "_fronts")

    def __init__(self, before: Sequence[bytes], after: Sequence[bytes] = ()) -> None:
        self._before = tuple(before)
        self._after = tuple(after)
        self._fronts: dict[bytes, bytes] = {}

    def pack(self, key: bytes, last: bytes) -> bytes:
        """The command for ``key`` ending with ``last``, as RESP bytes."""
        front = self._fronts.get(key)
        if front is None:
            front = self._front(key)
        return b"%b$%d\r\n%b\r\n" % (front, len(last), last)

    def _front(self, key: bytes) -> bytes:
        arguments = (*self._before, key, *self._after)
        front = b"*%d\r\n" % (len(arguments) + 1) + b"".join(
            [b"$%d\r\n%b\r\n" % (len(argument), argument) for argument in arguments]
        )
        if len(self._fronts) < _MAX_KEYS:
            self._fronts[key] = front
        return front


class PipelinePacker:
    """Packs a pipeline's commands in RESP, byte for byte as redis-py's
    ``Connection.pack_commands`` would.

    A Streams consumer sends the same ``XREADGROUP`` once a round trip and an
    ``XACK`` of new ids: commands named in ``repeated`` are packed once and
    kept (at most ``_MAX_KEYS`` of them, then packed per call). Commands are
    packed by hand where every argument is ``bytes``, ``str`` or ``int`` of at
    most ``_BUFFER_CUTOFF`` bytes and the name is one plain word, and by
    redis-py otherwise (``"CLIENT ID"``, floats, memoryviews, large values,
    which redis-py sends without copying them). ``python
    benchmarks/bench_async_streams.py``, row "pack an ack + XREADGROUP":
    redis-py 8.2 took 22.6-27.5 us, this 4.0-4.9 us (5.4-5.7x, Python 3.11;
    29.1-32.3 against 4.8-5.4 us on 3.12, 6.0-6.3x).

    Args:
        encoding: How ``str`` arguments are encoded (the client's ``encoding``).
        errors: The client's ``encoding_errors``.
        fallback: Packs one command the redis-py way (the connection's
            ``pack_command``).
        repeated: Names of the commands worth keeping packed.
    """

    __slots__ = ("_encoding", "_errors", "_fallback", "_kept", "_repeated")

    def __init__(
        self,
        encoding: str,
        errors: str,
        fallback: Callable[..., list[bytes]],
        repeated: Collection[str] = (),
    ) -> None:
        self._encoding = encoding
        self._errors = errors
        self._fallback = fallback
        self._repeated = frozenset(repeated)
        self._kept: dict[tuple[object, ...], bytes] = {}

    def pack(self, commands: Iterable[tuple[object, ...]]) -> list[bytes]:
        """``commands`` (each a command's arguments, name first) in RESP, as
        chunks for ``send_packed_command`` (a large value is a chunk of its own,
        as redis-py leaves it)."""
        kept, repeated = self._kept, self._repeated
        out: list[bytes] = []
        for args in commands:
            keep = args[0] in repeated
            packed = kept.get(args) if keep else None
            if packed is None:
                packed = self._pack(args)
                if packed is None:  # redis-py's way
                    out.extend(self._fallback(*args))
                    continue
                if keep and len(kept) < _MAX_KEYS:
                    kept[args] = packed
            out.append(packed)
        return out

    def _pack(self, args: tuple[object, ...]) -> bytes | None:
        """``args`` in RESP; ``None`` where this packer leaves them to redis-py."""
        if not _plain_name(args[0]):
            return None
        encoding, errors = self._encoding, self._errors
        parts = [b"*%d\r\n" % len(args)]
        for arg in args:
            if type(arg) is bytes:
                value = arg
            elif type(arg) is str:
                value = arg.encode(encoding, errors)
            elif type(arg) is int:
                value = b"%d" % arg
            else:  # a float, a memoryview, a bool (refused by redis-py)...
                return None
            if len(value) > _BUFFER_CUTOFF:
                return None
            parts.append(b"$%d\r\n%b\r\n" % (len(value), value))
        return b"".join(parts)


def _plain_name(name: object) -> bool:
    """Whether redis-py sends the command name ``name`` as it is: it splits a
    ``str`` name at whitespace (``"CLIENT ID"``; a ``bytes`` one at spaces
    only) and encodes a ``str`` one as UTF-8 whatever the client's encoding."""
    if type(name) is bytes:
        return b" " not in name
    return (
        type(name) is str
        and name.isascii()
        and name.isprintable()  # no control character (str.split cuts at some)
        and " " not in name
        and name != ""
    )


_PUBLISH = CommandPacker((b"PUBLISH",))


def pack_publish(channel: bytes, message: bytes) -> bytes:
    """``PUBLISH channel message`` in RESP, ready for the socket."""
    return _PUBLISH.pack(channel, message)
