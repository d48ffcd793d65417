"""``eventspype`` against a local Redis Cluster of three masters (real servers).

The URL names one node; the command finds the cluster by itself, reads every
master's streams, and follows sharded Pub/Sub channels it discovers with
PUBSUB SHARDCHANNELS, also ones that appear while it runs.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _cli_support import (
    console_script,
    good_envelope,
    hostile_envelope,
    publish_until,
    two_slots_of_one_master,
)
from _cluster import LocalCluster, local_cluster
from _redis_support import Inbox, OrderPlaced, unique_prefix
from click.testing import CliRunner

from eventspype.broker.redis import RedisBroker
from eventspype.cli import cli


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalCluster]:
    with local_cluster(masters=3) as started:
        yield started


def _url(cluster: LocalCluster) -> str:
    return f"redis://127.0.0.1:{cluster.ports[0]}/0"


def test_streams_and_tail_cover_every_master(cluster: LocalCluster) -> None:
    prefix = unique_prefix()
    client = cluster.client()
    channels = sorted(cluster.channels_on_distinct_masters("ORDERS_").values())
    try:
        for channel in channels:
            key = f"{prefix}{{{channel}}}"
            client.xadd(key, {"event": good_envelope(channel, 1)})
            client.xgroup_create(key, "billing", id="0")
        client.xadd(
            f"{prefix}{{{channels[0]}}}", {"event": hostile_envelope(channels[0])}
        )
        base = ["--url", _url(cluster), "--prefix", prefix]

        shown = CliRunner().invoke(cli, [*base, "streams", "--json"])
        tailed = CliRunner().invoke(
            cli, [*base, "tail", "--streams", "--since", "0", "-n", "4", "--json"]
        )
        health = CliRunner().invoke(cli, [*base, "health", "--max-lag", "3"])
    finally:
        client.close()

    assert shown.exit_code == 0, shown.output
    infos = json.loads(shown.output)["streams"]
    assert [s["channel"] for s in infos] == channels
    assert [s["groups"][0]["lag"] for s in infos] == [2, 1, 1]
    assert tailed.exit_code == 0, tailed.output
    events = [json.loads(line) for line in tailed.output.splitlines()]
    assert sorted({e["channel"] for e in events}) == channels
    assert sum(e["event_class"] == "Planted\x1b[2J" for e in events) == 1
    assert (health.exit_code, health.output) == (1, "not ready: lag 4 > 3\n")


@contextlib.contextmanager
def _tail(cluster: LocalCluster, prefix: str, *args: str) -> Iterator[list[Any]]:
    """``eventspype tail --json ARGS`` in a subprocess; yields the events it
    prints so far (a list that grows), and stops it on exit."""
    process = subprocess.Popen(
        [console_script(), "--url", _url(cluster), "--prefix", prefix, "tail",
         *args, "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    seen: list[dict[str, Any]] = []

    def read() -> None:
        for line in process.stdout:  # type: ignore[union-attr]
            seen.append(json.loads(line))

    threading.Thread(target=read, daemon=True).start()
    try:
        yield seen
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_tail_follows_sharded_channels_as_they_appear(cluster: LocalCluster) -> None:
    prefix = unique_prefix()
    client = cluster.client()
    broker = RedisBroker(client, channel_prefix=prefix)
    broker.register_event_class(OrderPlaced)
    # Two masters: the slot of the full channel name <prefix><tag> places it.
    first, later = (
        name[len(prefix) :]
        for name in list(
            cluster.channels_on_distinct_masters(f"{prefix}SHARD_").values()
        )[:2]
    )
    inbox = Inbox()
    broker.subscribe(first, inbox.subscriber)
    try:
        with _tail(cluster, prefix, "SHARD_*") as seen:
            publish_until(
                broker, first, lambda: any(e["channel"] == first for e in seen)
            )
            broker.subscribe(later, inbox.subscriber)  # a channel that appears now
            publish_until(
                broker, later, lambda: any(e["channel"] == later for e in seen)
            )
    finally:
        broker.close()
        client.close()
    assert {e["source"] for e in seen} == {"pubsub"}
    assert all(e["problem"] is None for e in seen)
    assert seen[0]["payload"] == {"order_id": 1, "amount": 0.5}


def test_tail_shows_channels_of_one_master_in_different_slots(
    cluster: LocalCluster,
) -> None:
    """Both are subscribed before tail starts, so it finds them at one look:
    it must SSUBSCRIBE them one slot at a time (a cluster refuses one command
    naming both, CROSSSLOT)."""
    prefix = unique_prefix()
    client = cluster.client()
    broker = RedisBroker(client, channel_prefix=prefix)
    broker.register_event_class(OrderPlaced)
    owners = cluster.slot_owners()
    pair = two_slots_of_one_master(prefix, "PAIR_", owners.__getitem__)
    inbox = Inbox()
    for tag in pair:
        broker.subscribe(tag, inbox.subscriber)
    try:
        with _tail(cluster, prefix, "PAIR_*") as seen:
            for tag in pair:
                publish_until(
                    broker, tag, lambda tag=tag: any(e["channel"] == tag for e in seen)
                )
    finally:
        broker.close()
        client.close()
    assert all(e["problem"] is None for e in seen)


def test_dead_letters_and_publish_on_a_cluster(
    cluster: LocalCluster, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = unique_prefix()
    client = cluster.client()
    channel = "REFUNDS"
    key = f"{prefix}{{{channel}}}"
    client.xadd(f"{key}:dead", {"event": good_envelope(channel, 1), "group": "g"})
    client.xadd(f"{key}:dead", {"event": b"junk", "group": "g"})
    (tmp_path / "cluster_refunds.py").write_text(
        "import dataclasses\n\n\n@dataclasses.dataclass\nclass Refund:\n"
        "    order_id: int\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    base = ["--url", _url(cluster), "--prefix", prefix]
    try:
        listed = CliRunner().invoke(
            cli, [*base, "dead-letters", "list", channel, "--json"]
        )
        replayed = CliRunner().invoke(
            cli, [*base, "dead-letters", "replay", channel, "--json"]
        )
        published = CliRunner().invoke(
            cli,
            [*base, "publish", channel, "--class", "cluster_refunds:Refund",
             "--json", '{"order_id": 5}', "--stream"],
        )  # fmt: skip
        purged = CliRunner().invoke(
            cli, [*base, "dead-letters", "purge", channel, "--yes", "--json"]
        )
        entries = client.xrange(key)
        left = client.xlen(f"{key}:dead")
    finally:
        client.close()
    assert listed.exit_code == 0, listed.output
    assert len(json.loads(listed.output)["dead_letters"]) == 2
    assert json.loads(replayed.output)["republished"] == 1
    assert published.exit_code == 0, published.output
    assert json.loads(purged.output) == {"channel": channel, "deleted": 1}
    assert left == 0
    assert [json.loads(f[b"event"])["payload"] for _, f in entries] == [
        '{"order_id": 1, "amount": 2.5}',
        '{"order_id":5}',
    ]
