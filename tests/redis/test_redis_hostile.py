"""A hostile channel: every bad message is logged, counted, dropped; nothing stops."""

from __future__ import annotations

import json
import logging
import os
import sys
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from _redis_support import Inbox, OrderPlaced, publisher_for, wait_until

from eventspype.broker.redis import DROP_REASONS, RedisBroker

SIDE_EFFECT_MODULE = "_redis_side_effect_module"


@pytest.fixture(autouse=True)
def _forget_planted() -> Iterator[None]:
    """Forget the planted module if a test of this module imported it.

    monkeypatch restores only what existed before a test: the control test's
    import would otherwise leave the module and its mark behind for the next
    test of this worker, and the "never imported" tests elsewhere would fail
    for a reason that is not theirs.
    """
    before = SIDE_EFFECT_MODULE in sys.modules
    yield
    if not before:
        sys.modules.pop(SIDE_EFFECT_MODULE, None)
        os.environ.pop("EVENTSPYPE_REDIS_SIDE_EFFECT", None)


def envelope(**overrides: Any) -> bytes:
    fields: dict[str, Any] = {
        "event_tag": "HOSTILE",
        "event_class": "OrderPlaced",
        "event_module": OrderPlaced.__module__,
        "payload": json.dumps({"order_id": 1, "amount": 2.0}),
    }
    fields.update(overrides)
    return json.dumps({k: v for k, v in fields.items() if v is not ...}).encode()


def deep(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


CASES: dict[str, tuple[bytes, str]] = {
    "garbage bytes": (b"\xff\xfe\x00\x81garbage\xc3", "invalid_json"),
    "truncated json": (b'{"event_tag": "HOSTILE", "payl', "invalid_json"),
    "empty message": (b"", "invalid_json"),
    "json string": (b'"hello"', "invalid_envelope"),
    "json array": (b"[1, 2, 3]", "invalid_envelope"),
    "missing payload": (envelope(payload=...), "invalid_envelope"),
    "missing class": (envelope(event_class=...), "invalid_envelope"),
    "boolean tag": (envelope(event_tag=True), "invalid_envelope"),
    "float tag": (envelope(event_tag=1.5), "invalid_envelope"),
    "object tag": (envelope(event_tag={"x": 1}), "invalid_envelope"),
    "numeric payload": (envelope(payload=12), "invalid_envelope"),
    "empty class": (envelope(event_class=""), "invalid_envelope"),
    "unknown encoding": (envelope(payload_encoding="rot13"), "invalid_envelope"),
    "bad base64": (
        envelope(payload="%%%", payload_encoding="base64"),
        "invalid_envelope",
    ),
    "unregistered class": (
        envelope(event_module="os", event_class="system"),
        "unregistered_class",
    ),
    "payload of the wrong shape": (
        envelope(payload=json.dumps({"order_id": "one", "amount": []})),
        "invalid_payload",
    ),
    "payload not json": (envelope(payload="<xml/>"), "invalid_payload"),
    "payload missing a field": (
        envelope(payload=json.dumps({"order_id": 1})),
        "invalid_payload",
    ),
    "huge message": (envelope(payload="x" * (1 << 20)), "oversized"),
    # Past the recursion limit of every Python (about 10,000 levels on 3.13).
    "deeply nested payload": (envelope(payload=deep(50_000)), "too_deep"),
    "deeply nested envelope": (
        b'{"junk": ' + b"[" * 200_000 + b"]" * 200_000 + b', "payload": "x"}',
        "too_deep",
    ),
}


@pytest.fixture
def hostile(broker: RedisBroker) -> tuple[RedisBroker, Inbox, Any]:
    """A broker subscribed to ``HOSTILE``; the third item publishes a valid event."""
    publisher = publisher_for(broker, "hostile", OrderPlaced)
    inbox = Inbox()
    publisher.add_subscriber(inbox.subscriber)
    return broker, inbox, publisher


@pytest.mark.parametrize(("data", "reason"), CASES.values(), ids=CASES.keys())
def test_bad_message_is_logged_counted_dropped(
    hostile: tuple[RedisBroker, Inbox, Any],
    client: redis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    data: bytes,
    reason: str,
) -> None:
    broker, inbox, publisher = hostile
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")

    client.publish(f"{prefix}HOSTILE", data)
    publisher.publish(OrderPlaced(7, 7.0))

    assert inbox.wait_for(1) == [OrderPlaced(7, 7.0)]
    stats = broker.stats()
    assert stats.dropped[reason] == 1
    assert stats.dropped_total == 1
    assert stats.delivered == 1
    [record] = [r for r in caplog.records if "Dropped" in r.getMessage()]
    assert f"'{prefix}HOSTILE'" in record.getMessage()
    assert f"({reason})" in record.getMessage()


def test_a_flood_of_garbage_is_counted_and_logged_sparingly(
    hostile: tuple[RedisBroker, Inbox, Any],
    client: redis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    broker, inbox, publisher = hostile
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    for i in range(200):
        client.publish(f"{prefix}HOSTILE", b"\x00" * (i + 1))
    publisher.publish(OrderPlaced(1, 1.0))
    inbox.wait_for(1)
    assert broker.stats().dropped["invalid_json"] == 200
    assert len([r for r in caplog.records if "Dropped" in r.getMessage()]) < 10


def test_every_reason_is_reported_even_when_zero(broker: RedisBroker) -> None:
    assert dict(broker.stats().dropped) == dict.fromkeys(DROP_REASONS, 0)


def test_an_unregistered_class_is_never_imported(
    hostile: tuple[RedisBroker, Inbox, Any], client: redis.Redis, prefix: str
) -> None:
    broker, inbox, publisher = hostile
    assert SIDE_EFFECT_MODULE not in sys.modules
    planted = envelope(
        event_module=SIDE_EFFECT_MODULE,
        event_class="Planted",
        payload=json.dumps({"value": 1}),
    )
    client.publish(f"{prefix}HOSTILE", planted)
    publisher.publish(OrderPlaced(1, 1.0))
    inbox.wait_for(1)
    assert broker.stats().dropped["unregistered_class"] == 1
    assert SIDE_EFFECT_MODULE not in sys.modules
    assert "EVENTSPYPE_REDIS_SIDE_EFFECT" not in os.environ


def test_allow_unregistered_classes_does_import(
    unsafe_broker: RedisBroker,
    client: redis.Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The control for the test above: the planted module is importable.
    monkeypatch.delitem(sys.modules, SIDE_EFFECT_MODULE, raising=False)
    monkeypatch.delenv("EVENTSPYPE_REDIS_SIDE_EFFECT", raising=False)
    broker = unsafe_broker
    inbox = Inbox()
    broker.subscribe("PLANTED", inbox.subscriber)
    try:
        planted = envelope(
            event_tag="PLANTED",
            event_module=SIDE_EFFECT_MODULE,
            event_class="Planted",
            payload=json.dumps({"value": 3}),
        )
        client.publish(f"{prefix}PLANTED", planted)
        [event] = inbox.wait_for(1)
        assert type(event).__name__ == "Planted"
        assert os.environ["EVENTSPYPE_REDIS_SIDE_EFFECT"] == "imported"
    finally:
        sys.modules.pop(SIDE_EFFECT_MODULE, None)


@pytest.mark.parametrize(
    "qualname", ["Planted.missing", "<locals>.Planted", "dataclasses"]
)
def test_allowed_but_unresolvable_names_are_dropped(
    unsafe_broker: RedisBroker, client: redis.Redis, prefix: str, qualname: str
) -> None:
    broker = unsafe_broker
    inbox = Inbox()
    broker.subscribe("ODD", inbox.subscriber)
    module = "dataclasses" if qualname == "dataclasses" else "json"
    client.publish(
        f"{prefix}ODD",
        envelope(event_tag="ODD", event_module=module, event_class=qualname),
    )
    wait_until(lambda: broker.stats().dropped["unregistered_class"] == 1)
    assert inbox.events == []


def test_the_size_limit_is_configurable(
    broker_factory: Any, client: redis.Redis, prefix: str
) -> None:
    broker = broker_factory(max_message_bytes=64)
    broker.register_event_class(OrderPlaced)
    inbox = Inbox()
    broker.subscribe("LIMITS", inbox.subscriber)
    client.publish(f"{prefix}LIMITS", envelope(event_tag="LIMITS", payload=deep(3)))
    wait_until(lambda: broker.stats().dropped_total == 1)
    assert broker.stats().dropped["oversized"] == 1


def test_max_nesting_depth_is_deprecated_and_ignored(broker_factory: Any) -> None:
    with pytest.warns(DeprecationWarning, match="max_nesting_depth"):
        broker_factory(max_nesting_depth=2)
