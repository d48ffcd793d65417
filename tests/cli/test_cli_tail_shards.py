"""How ``eventspype tail`` follows sharded channels, against an in-memory cluster.

:class:`FakeCluster` keeps the rules of Redis Cluster that the
:class:`~eventspype.cli.tailing.ShardSource` depends on: three masters own
the slot ranges ``redis-cli --cluster create`` gives; ``PUBSUB SHARDCHANNELS``
lists a master's own subscriptions; an SSUBSCRIBE naming channels of more
than one slot is refused (CROSSSLOT) and one naming a slot the master does
not own is redirected (MOVED), both as an error read after the command, as
redis-py reads them; SPUBLISH reaches the subscribers on the slot's master.
No server, no sleeping: hypothesis tries the orders in which channels appear
between tail's looks.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from typing import Any

import pytest
import redis
from _cli_support import two_slots_of_one_master
from hypothesis import given, settings
from hypothesis import strategies as st
from redis.crc import key_slot

from eventspype.cli import tailing
from eventspype.cli.tailing import ShardSource, by_slot

PREFIX = "t:"
#: The slot ranges of a three-master cluster made by ``redis-cli --cluster create``.
RANGES = [(0, 5460), (5461, 10922), (10923, 16383)]


class FakeNode:
    """A master: its slots and, per channel, who is subscribed there."""

    def __init__(self, port: int, first: int, last: int) -> None:
        self.name = f"127.0.0.1:{port}"
        self.server_type = "primary"
        self.first, self.last = first, last
        self.others: set[bytes] = set()  # channels some other process listens to
        self.tails: list[FakePubSub] = []

    def owns(self, channel: bytes) -> bool:
        return self.first <= key_slot(channel) <= self.last

    def channels(self) -> set[bytes]:
        return self.others.union(*(pubsub.channels for pubsub in self.tails))


class FakePubSub:
    """A connection's sharded Pub/Sub: replies and messages in arrival order."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node
        self.channels: set[bytes] = set()
        self.replies: deque[Any] = deque()
        node.tails.append(self)

    def ssubscribe(self, *channels: bytes) -> None:
        if len({key_slot(channel) for channel in channels}) > 1:
            self.replies.append(
                redis.ResponseError(
                    "CROSSSLOT Keys in request don't hash to the same slot"
                )
            )
        elif not self.node.owns(channels[0]):
            self.replies.append(redis.ResponseError(f"MOVED {key_slot(channels[0])}"))
        else:
            self.channels.update(channels)
            self.replies.extend({"type": "ssubscribe"} for _ in channels)

    def get_sharded_message(self, timeout: float) -> Any:
        if not self.replies:
            return None
        reply = self.replies.popleft()
        if isinstance(reply, Exception):
            raise reply
        return None if reply["type"] == "ssubscribe" else reply

    def close(self) -> None:
        if self in self.node.tails:
            self.node.tails.remove(self)


class FakeClient:
    """A client of one node: ``PUBSUB SHARDCHANNELS`` and ``pubsub()``."""

    def __init__(self, node: FakeNode) -> None:
        self.node = node

    def execute_command(self, command: str, pattern: str) -> list[bytes]:
        assert command == "PUBSUB SHARDCHANNELS"
        return sorted(
            channel
            for channel in self.node.channels()
            if fnmatch.fnmatchcase(channel.decode(), pattern)
        )

    def pubsub(self, ignore_subscribe_messages: bool) -> FakePubSub:
        assert ignore_subscribe_messages
        return FakePubSub(self.node)


class FakeCluster:
    """What :class:`ShardSource` asks of a ``RedisCluster`` (see the module docs)."""

    def __init__(self) -> None:
        self.nodes = [FakeNode(7000 + n, *span) for n, span in enumerate(RANGES)]

    def get_primaries(self) -> list[FakeNode]:
        return list(self.nodes)

    def get_redis_connection(self, node: FakeNode) -> FakeClient:
        return FakeClient(node)

    def owner(self, channel: bytes) -> FakeNode:
        return next(node for node in self.nodes if node.owns(channel))

    def listen(self, name: str) -> None:
        """Another process (a broker) SSUBSCRIBEs ``<prefix><name>``."""
        channel = (PREFIX + name).encode()
        self.owner(channel).others.add(channel)

    def spublish(self, name: str, data: bytes) -> None:
        channel = (PREFIX + name).encode()
        for pubsub in self.owner(channel).tails:
            if channel in pubsub.channels:
                pubsub.replies.append(
                    {"type": "smessage", "channel": channel, "data": data}
                )


class Admin:
    """The two things :class:`ShardSource` takes from a ``StreamAdmin``."""

    prefix = PREFIX

    def channel_pattern(self, pattern: str) -> str:
        return PREFIX + pattern


def drain(cluster: FakeCluster, source: ShardSource) -> set[str]:
    """Polls until tail has read every reply and message; the channels shown.

    (One poll reads one reply per connection, as redis-py does.)
    """
    shown: set[str] = set()
    for _ in range(100):
        shown.update(item.channel for item in source.poll(0))
        if not any(pubsub.replies for node in cluster.nodes for pubsub in node.tails):
            return shown
    raise AssertionError("tail never stops reading: an error it retries for ever?")


def shown_after_publishing(cluster: FakeCluster, source: ShardSource) -> set[str]:
    """Two looks (a failed SSUBSCRIBE is tried again at the next), then one
    message on every channel someone listens to: the channels tail shows."""
    for _ in range(2):
        source.refresh()
        drain(cluster, source)
    for node in cluster.nodes:
        for channel in node.others:
            cluster.spublish(channel.decode()[len(PREFIX) :], b"{}")
    return drain(cluster, source)


def two_slots() -> list[str]:
    """Two names whose channels one master of :data:`RANGES` owns, in
    different slots."""

    def master(slot: int) -> int:
        return max(i for i, (first, _) in enumerate(RANGES) if first <= slot)

    return two_slots_of_one_master(PREFIX, "ORDERS_", master)


def test_channels_of_one_master_in_different_slots_are_all_shown() -> None:
    """Both are there when tail starts: one SSUBSCRIBE naming both is refused."""
    cluster = FakeCluster()
    names = two_slots()
    for name in names:
        cluster.listen(name)
    source = ShardSource(cluster, Admin(), ["*"])  # type: ignore[arg-type]
    assert shown_after_publishing(cluster, source) == set(names)


NAMES = st.sampled_from([f"C{n}" for n in range(12)])
#: A step: a name that some process starts listening to, or ``None``: tail looks.
STEPS = st.lists(st.one_of(NAMES, st.none()), max_size=30)


@settings(max_examples=300, deadline=None)
@given(STEPS)
def test_every_channel_is_shown_whenever_it_appears(steps: list[str | None]) -> None:
    """Channels appear between tail's looks in any order and any number at a
    time: after two more looks, tail shows every one of them."""
    cluster = FakeCluster()
    source = ShardSource(cluster, Admin(), ["*"])  # type: ignore[arg-type]
    listened: set[str] = set()
    for step in steps:
        if step is None:
            source.refresh()
            drain(cluster, source)
        else:
            cluster.listen(step)
            listened.add(step)
    assert shown_after_publishing(cluster, source) == listened


@given(st.sets(st.binary(max_size=12)))
def test_by_slot_gives_each_channel_once_one_slot_per_command(
    channels: set[bytes],
) -> None:
    groups = by_slot(channels)
    assert sorted(c for group in groups for c in group) == sorted(channels)
    assert all(len({key_slot(c) for c in group}) == 1 for group in groups)
    assert len({key_slot(group[0]) for group in groups}) == len(groups)


class Clock:
    """``time.monotonic`` for tailing, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_error_that_stays_is_retried_with_a_growing_delay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every read on one master fails: tail makes that connection again after
    a delay that doubles up to REFRESH, not at every poll."""
    cluster = FakeCluster()
    name = two_slots()[0]
    cluster.listen(name)
    clock = Clock()
    monkeypatch.setattr(tailing.time, "monotonic", clock)
    looks = 0
    primaries = cluster.get_primaries

    def counted() -> list[FakeNode]:
        nonlocal looks
        looks += 1
        return primaries()

    monkeypatch.setattr(cluster, "get_primaries", counted)
    broken = redis.ConnectionError("reset by peer")
    monkeypatch.setattr(
        FakePubSub, "get_sharded_message", lambda self, timeout: _raise(broken)
    )
    source = ShardSource(cluster, Admin(), ["*"])  # type: ignore[arg-type]
    for _ in range(400):  # 4 s of polls, 10 ms apart
        source.poll(0)
        clock.now += 0.01
    # 0.05 + 0.1 + 0.2 + 0.4 + 0.8 + 1.6 s, then every 2 s: 7 or 8 looks;
    # a retry at every poll would have made about 400.
    assert 3 <= looks <= 10


def _raise(error: Exception) -> Any:
    raise error
