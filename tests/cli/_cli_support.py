"""Helpers of the eventspype-cli tests (a unique module name: every tier shares
one pytest run in ``nox -s tests_all``)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import redis
from _redis_support import Inbox, OrderPlaced, forged, publisher_for, wait_until
from click.testing import Result
from redis.crc import key_slot

from eventspype.broker.redis import RedisBroker, RedisStreamBroker

#: ``run("streams", "--json")``: a command on the test's server and prefix.
Run = Callable[..., Result]

__all__ = [
    "HOSTILE_MODULE",
    "Run",
    "console_script",
    "dead_lettered",
    "hostile_envelope",
    "lines",
    "ok",
]

#: A module with an import side effect (tests/redis): it must never be imported.
HOSTILE_MODULE = "_redis_side_effect_module"


def hostile_envelope(channel: str) -> bytes:
    """A well-formed envelope naming a side-effect module, with an escape
    sequence in its class name and payload (a terminal must not obey them)."""
    return json.dumps(
        {
            "event_tag": channel,
            "event_class": "Planted\x1b[2J",
            "event_module": HOSTILE_MODULE,
            "payload": json.dumps({"value": "\x1b]0;pwned\x07"}),
        }
    ).encode()


def good_envelope(channel: str, order_id: int) -> bytes:
    return forged(channel, OrderPlaced, {"order_id": order_id, "amount": 2.5})


def dead_lettered(
    client: redis.Redis, prefix: str, channel: str, *data: bytes, group: str = "billing"
) -> list[Any]:
    """``data`` as dead letters of ``channel``, moved there by a real broker
    (which refuses each at once: none of their classes is registered)."""
    broker = RedisStreamBroker(
        client, channel_prefix=prefix, group=group, consumer=f"{group}-1"
    )
    inbox = Inbox()  # held here: the broker holds subscribers weakly
    try:
        broker.subscribe(channel, inbox.subscriber)
        for item in data:
            client.xadd(f"{prefix}{{{channel}}}", {"event": item})
        wait_until(lambda: len(broker.dead_letters(channel)) == len(data))
        return broker.dead_letters(channel)
    finally:
        broker.close()


def ok(result: Result) -> str:
    """The output of a command that must have succeeded."""
    assert result.exit_code == 0, (result.output, result.exception)
    return result.output


def lines(result: Result) -> list[str]:
    return [line.rstrip() for line in result.output.splitlines()]


def console_script() -> str:
    """The ``eventspype`` console script of this environment."""
    beside = Path(sys.executable).with_name("eventspype")
    found = str(beside) if beside.exists() else shutil.which("eventspype")
    if found is None:
        pytest.fail("the eventspype console script is not installed")
    return found


def publish_until(
    broker: RedisBroker, channel: str, done: Any, deadline: float = 60
) -> None:
    """Publish on ``channel`` every 0.1 s until ``done()`` (at most ``deadline`` s)."""
    publisher = publisher_for(broker, channel, OrderPlaced)
    give_up = time.monotonic() + deadline
    while not done():
        assert time.monotonic() < give_up, f"tail never showed {channel}"
        # The shard refuses until its replica is promoted.
        with contextlib.suppress(redis.RedisError, OSError):
            publisher.publish(OrderPlaced(1, 0.5))
        time.sleep(0.1)


def two_slots_of_one_master(
    prefix: str, stem: str, owner_of: Callable[[int], object]
) -> list[str]:
    """Two tags ``<stem><n>`` whose channels ``<prefix><tag>`` one master owns
    (``owner_of(slot)``), in two different slots: what one SSUBSCRIBE may
    not name together (CROSSSLOT)."""
    first: dict[object, tuple[str, int]] = {}  # master -> (tag, slot)
    for n in range(10_000):
        tag = f"{stem}{n}"
        slot = key_slot(f"{prefix}{tag}".encode())
        earlier = first.setdefault(owner_of(slot), (tag, slot))
        if earlier[1] != slot:
            return [earlier[0], tag]
    raise AssertionError("no two such tags")
