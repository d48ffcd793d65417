"""``eventspype tail`` while a master of a Redis Cluster with replicas fails over.

The channels are picked by the slot of their full name ``<prefix><tag>`` (the
name the broker SSUBSCRIBEs), one per master, so that the killed master is the
one of the channel the test watches. A failure names its phase and shows
tail's stderr.
"""

from __future__ import annotations

import json
import subprocess
import threading
from typing import Any

import pytest
from _cli_support import console_script, publish_until
from _cluster import local_cluster
from _redis_support import Inbox, OrderPlaced, unique_prefix

from eventspype.broker.redis import RedisBroker


@pytest.mark.slow
# With the failover tests of tests/redis, on one worker one at a time: two
# clusters that fail over after 1 s of silence could starve each other's nodes.
@pytest.mark.xdist_group("redis-cluster-failover")
def test_tail_goes_on_after_a_master_fails_over() -> None:
    """SIGKILL a master while tail runs: its replica takes over, and tail finds
    the channel there at a later refresh; the other shards go on meanwhile."""
    with local_cluster(masters=3, replicas=1) as cluster:
        prefix = unique_prefix()
        channels = {
            port: name[len(prefix) :]
            for port, name in cluster.channels_on_distinct_masters(
                f"{prefix}FAIL_"
            ).items()
        }
        victim, survivor = list(channels)[:2]
        client = cluster.client()
        broker = RedisBroker(client, channel_prefix=prefix, reconnect_delay=(0.05, 1.0))
        broker.register_event_class(OrderPlaced)
        inbox = Inbox()
        for channel in channels.values():
            broker.subscribe(channel, inbox.subscriber)
        url = f"redis://127.0.0.1:{survivor}/0"
        process = subprocess.Popen(
            [console_script(), "--url", url, "--prefix", prefix, "tail", "--json"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[dict[str, Any]] = []
        reader = threading.Thread(
            target=lambda: seen.extend(json.loads(x) for x in process.stdout),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        lost = channels[victim]
        phase, failure = "before the kill", None
        try:
            publish_until(broker, lost, lambda: any(e["channel"] == lost for e in seen))
            shown_before = len(seen)
            cluster.node(victim).kill()
            phase = "after the kill"
            publish_until(
                broker,
                lost,
                lambda: any(e["channel"] == lost for e in seen[shown_before:]),
                deadline=120,
            )
        except AssertionError as error:
            failure = error
        finally:
            process.terminate()
            _, errors = process.communicate(timeout=30)
            broker.close()
            client.close()
        # What tail said on stderr tells which node it lost and when.
        assert failure is None, f"{failure} ({phase}); tail's stderr:\n{errors}"
        assert "Traceback" not in errors
        assert all(e["problem"] is None for e in seen)
