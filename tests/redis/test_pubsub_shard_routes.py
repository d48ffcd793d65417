"""ShardRoutes, the cluster drivers' one channel -> shard table, without I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis.pubsub.shard_routes import ShardRoutes


@dataclass
class Node:
    name: str


@dataclass
class SlotMap:
    """A cluster client's slot map: channel -> node name; None = uncovered."""

    owners: dict[bytes, str | None] = field(default_factory=dict)

    def get_node_from_key(self, channel: bytes) -> Any:
        owner = self.owners.get(channel, "n0")
        if owner is None:
            raise LookupError("slot not covered")
        return Node(owner)


class Shard:
    made = 0

    def __init__(self) -> None:
        Shard.made += 1
        self.number = Shard.made

    def __repr__(self) -> str:
        return f"Shard({self.number})"


def table(owners: dict[bytes, str | None]) -> ShardRoutes[Shard]:
    return ShardRoutes(SlotMap(owners), Shard)


def test_channels_of_one_node_share_its_listener() -> None:
    routes = table({b"a": "n1", b"b": "n1", b"c": "n2"})
    a, b, c = (routes.route(x) for x in (b"a", b"b", b"c"))
    assert a is b
    assert a is not c
    assert routes.shards == (a, c)
    assert routes.route(b"a") is a  # a route stays
    assert sorted(routes.channels_of(a)) == [b"a", b"b"]


def test_an_uncovered_slot_gets_a_listener_that_looks_again_later() -> None:
    routes = table({b"a": None})
    shard = routes.route(b"a")
    assert routes.channels_of(shard) == [b"a"]


def test_a_failed_over_listener_hands_its_channels_to_the_one_on_its_new_node() -> None:
    owners: dict[bytes, str | None] = {b"a": "n1", b"b": "n2"}
    routes = table(owners)
    first, second = routes.route(b"a"), routes.route(b"b")
    assert routes.settle(first, "n1") == (True, None, [])
    assert routes.settle(second, "n2") == (True, None, [])
    # n1 died; its replica was promoted... onto the node second serves.
    goes_on, heir, moved = routes.settle(first, "n2")
    assert (goes_on, heir, moved) == (False, second, [b"a"])
    assert routes.shards == (second,)
    assert sorted(routes.channels_of(second)) == [b"a", b"b"]
    assert routes.settle(first, "n2") == (False, None, [])  # retired already


def test_moving_away_routes_only_what_is_still_on_the_source() -> None:
    owners: dict[bytes, str | None] = {b"a": "n1", b"b": "n1"}
    routes = table(owners)
    source = routes.route(b"a")
    routes.route(b"b")
    routes.settle(source, "n1")
    owners[b"b"] = "n2"  # resharded
    moves = routes.move_away(source, [b"b", b"gone"])
    ((channel, target),) = moves
    assert channel == b"b"
    assert target is not source
    assert routes.channels_of(target) == [b"b"]
    assert routes.move_away(source, [b"b"]) == []  # not on source any more


def test_a_snapshot_tells_whether_anything_moved() -> None:
    routes = table({})
    before = routes.snapshot()
    routes.route(b"a")
    after = routes.snapshot()
    assert before[1] is not after[1]
    assert routes.snapshot()[1] is after[1]
    routes.unroute(b"a")
    assert routes.unroute(b"a") is None


OPERATIONS = st.lists(
    st.tuples(
        st.sampled_from(["route", "unroute", "settle", "move", "reshard"]),
        st.sampled_from([b"a", b"b", b"c", b"d"]),
        st.sampled_from(["n1", "n2", "n3", None]),
    ),
    max_size=40,
)


@given(OPERATIONS)
def test_the_table_stays_consistent(operations: list[tuple[str, bytes, Any]]) -> None:
    owners: dict[bytes, str | None] = {}
    routes = table(owners)
    for operation, channel, node in operations:
        shards = routes.shards
        if operation == "route":
            routes.route(channel)
        elif operation == "unroute":
            routes.unroute(channel)
        elif operation == "reshard":
            owners[channel] = node
        elif shards:
            shard = shards[hash((channel, node)) % len(shards)]
            if operation == "settle" and node is not None:
                routes.settle(shard, node)
            elif operation == "move":
                for _, target in routes.move_away(shard, [channel]):
                    assert target is not shard
        # Every route leads to a listener in use; no listener is there twice.
        all_shards, table_routes = routes.snapshot()
        assert len(set(map(id, all_shards))) == len(all_shards)
        assert all(any(s is t for t in all_shards) for s in table_routes.values())
