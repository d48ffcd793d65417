"""Nothing a message, a subscriber or a bug does ends delivery (issue 8, items 4, 7).

Before: a message naming ``unittest.__main__`` under
``allow_unregistered_classes=True`` ran ``main()`` in the listener; its
``SystemExit`` killed the thread silently, and nothing restarted it. A broker
on a port with no server said nothing either.
"""

from __future__ import annotations

import json
import logging
import socket
import sys
import warnings
from typing import Any

import pytest
import redis
from _redis_support import Inbox, OrderPlaced, listener_threads, wait_until

from eventspype import FunctionalEventSubscriber
from eventspype.broker.redis import RedisBroker, UnsafeClassImportWarning
from eventspype.broker.redis._wire import registry as _registry

EXIT_MODULE = "_redis_system_exit_module"


def order(order_id: int, tag: str = "ORDERS") -> bytes:
    return json.dumps(
        {
            "event_tag": tag,
            "event_class": "OrderPlaced",
            "event_module": OrderPlaced.__module__,
            "payload": json.dumps({"order_id": order_id, "amount": 1.0}),
        }
    ).encode()


def test_a_module_that_exits_on_import_does_not_end_delivery(
    unsafe_broker: RedisBroker,
    client: redis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, EXIT_MODULE, raising=False)
    broker = unsafe_broker
    broker.register_event_class(OrderPlaced)
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    exiting = json.loads(order(0))
    exiting.update(event_module=EXIT_MODULE, event_class="Anything")
    client.publish(f"{prefix}ORDERS", json.dumps(exiting))
    client.publish(f"{prefix}ORDERS", order(1))

    assert inbox.wait_for(1) == [OrderPlaced(1, 1.0)]
    assert broker.stats().dropped["unregistered_class"] == 1
    assert "SystemExit(3)" in caplog.text
    assert [t.is_alive() for t in listener_threads()] == [True]


def test_a_subscriber_that_raises_system_exit_is_isolated(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    def leave(event: Any) -> None:
        raise SystemExit(1)

    quitter = FunctionalEventSubscriber(leave, with_event_info=False)
    inbox = Inbox()
    broker.subscribe("ORDERS", quitter)
    broker.subscribe("ORDERS", inbox.subscriber)
    client.publish(f"{prefix}ORDERS", order(1))
    client.publish(f"{prefix}ORDERS", order(2))
    assert inbox.wait_for(2) == [OrderPlaced(1, 1.0), OrderPlaced(2, 1.0)]
    assert broker.stats().subscriber_errors == 2


def test_any_exception_while_handling_a_message_is_logged_and_survived(
    broker: RedisBroker,
    client: redis.Redis,
    prefix: str,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    real_decode = broker._inbound.decode
    calls = []

    def buggy(channel: str, data: bytes) -> Any:
        calls.append(data)
        if len(calls) == 1:
            raise KeyboardInterrupt("a bug of ours")
        return real_decode(channel, data)

    class Buggy:
        decode = staticmethod(buggy)

    monkeypatch.setattr(broker, "_inbound", Buggy())
    client.publish(f"{prefix}ORDERS", order(1))
    client.publish(f"{prefix}ORDERS", order(2))
    assert inbox.wait_for(1) == [OrderPlaced(2, 1.0)]
    assert broker.stats().listener_errors == 1
    [record] = [r for r in caplog.records if "a bug of ours" in str(r.exc_info)]
    assert record.exc_info is not None  # with its traceback


def test_a_failing_listener_loop_starts_over(
    broker: RedisBroker,
    client: redis.Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    listener = broker._listener
    real_read = listener._read
    failures = [RuntimeError("bug in the loop")]

    def read(link: Any) -> None:
        if failures:
            raise failures.pop()
        real_read(link)

    monkeypatch.setattr(listener, "_read", read)
    wait_until(lambda: broker.stats().listener_restarts == 1)
    # Started over: connected and subscribed again by itself.
    broker.wait_until_subscribed(timeout=10)
    client.publish(f"{prefix}ORDERS", order(5))
    assert inbox.wait_for(1) == [OrderPlaced(5, 1.0)]


def test_a_dead_listener_thread_is_replaced(
    broker: RedisBroker, client: redis.Redis, prefix: str
) -> None:
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    listener = broker._listener
    # The thread ends while channels are still wanted (what SystemExit did).
    listener._stop.set()
    listener._work.set()
    [thread] = listener_threads()
    if listener._link is not None and not listener._link.interrupt():
        listener._ping(listener._link)
    thread.join(10)
    assert not thread.is_alive()
    listener._stop.clear()

    stats = broker.stats()  # notices, and starts a new thread
    assert stats.listener_restarts == 1
    broker.wait_until_subscribed(timeout=10)
    client.publish(f"{prefix}ORDERS", order(7))
    assert inbox.wait_for(1) == [OrderPlaced(7, 1.0)]


def test_allow_unregistered_classes_warns_once(
    client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_registry, "_warned", False)
    with pytest.warns(UnsafeClassImportWarning, match="import any module"):
        RedisBroker(client, allow_unregistered_classes=True).close()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        RedisBroker(client, allow_unregistered_classes=True).close()


def test_allowed_modules_import_only_from_those_modules(
    broker_factory: Any,
    client: redis.Redis,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "_redis_side_effect_module", raising=False)
    # Importing it sets this variable: undone after the test, so that later
    # tests of this worker (test_stream_admin checks it) find it unset.
    monkeypatch.setenv("EVENTSPYPE_REDIS_SIDE_EFFECT", "")
    monkeypatch.delenv("EVENTSPYPE_REDIS_SIDE_EFFECT")
    broker = broker_factory(allowed_modules=["_redis_side_effect_module"])
    inbox = Inbox()
    broker.subscribe("PLANTED", inbox.subscriber)
    for module in ("_redis_side_effect_modulex", "json", "_redis_side_effect_module"):
        client.publish(
            f"{prefix}PLANTED",
            json.dumps(
                {
                    "event_tag": "PLANTED",
                    "event_class": "Planted",
                    "event_module": module,
                    "payload": '{"value": 1}',
                }
            ),
        )
    [event] = inbox.wait_for(1)
    assert type(event).__module__ == "_redis_side_effect_module"
    assert broker.stats().dropped["unregistered_class"] == 2
    assert "_redis_side_effect_modulex" not in sys.modules
    sys.modules.pop("_redis_side_effect_module", None)


@pytest.mark.parametrize("modules", ["myapp.events", ["myapp", ""], [".."]])
def test_allowed_modules_must_be_module_names(
    client: redis.Redis, modules: Any
) -> None:
    with pytest.raises(ValueError, match="allowed_modules"):
        RedisBroker(client, allowed_modules=modules)


# -- item 7: a dead server is not accepted silently ----------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_a_server_that_is_not_there_is_reported() -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    with RedisBroker.from_url(url, reconnect_delay=(0.05, 0.2)) as broker:
        assert broker.stats().connected is False
        inbox = Inbox()
        broker.subscribe("ORDERS", inbox.subscriber)  # returns: Redis is down
        wait_until(lambda: broker.stats().last_connection_error is not None)
        stats = broker.stats()
        assert stats.connected is False
        assert stats.subscribed == 0
        assert "ConnectionError" in str(stats.last_connection_error)
        with pytest.raises(TimeoutError, match="ORDERS") as caught:
            broker.wait_until_subscribed(timeout=0.5)
        assert "ConnectionError" in str(caught.value)


def test_wait_until_subscribed_and_the_connection_state(
    broker: RedisBroker, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="eventspype.broker.redis")
    broker.wait_until_subscribed(timeout=1)  # nothing subscribed: at once
    assert broker.stats().connected is False
    inboxes = [Inbox(), Inbox()]
    broker.subscribe("ORDERS", inboxes[0].subscriber)
    broker.subscribe("OTHER", inboxes[1].subscriber)
    broker.wait_until_subscribed(timeout=10)
    stats = broker.stats()
    assert stats.connected is True
    assert stats.connected_since is not None
    assert stats.subscribed == 2
    assert stats.last_connection_error is None
    assert stats.listener_restarts == stats.listener_errors == 0
