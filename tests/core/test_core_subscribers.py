"""The subscriber base classes, FunctionalEventSubscriber, the reporter and
make_json_safe."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, NamedTuple

import pytest
from _core_support import PLACED, Placed, Refunded, Tags

from eventspype import (
    EventPublisher,
    EventSubscriber,
    FunctionalEventSubscriber,
    OwnedEventSubscriber,
    ReportingEventSubscriber,
    make_json_safe,
)
from eventspype.event import NormalizedTag

# --- EventSubscriber / OwnedEventSubscriber ---------------------------------


def test_event_subscriber_is_abstract() -> None:
    with pytest.raises(TypeError):
        EventSubscriber()  # type: ignore[abstract]

    class NoCall(EventSubscriber):
        pass

    with pytest.raises(TypeError):
        NoCall()  # type: ignore[abstract]


def test_dunder_call_delegates_to_call() -> None:
    seen: list[Any] = []

    class Sub(EventSubscriber):
        def call(
            self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
        ) -> None:
            seen.append((arg, current_event_tag, current_event_caller))

    sub = Sub()
    assert sub("event", "TAG", "caller") is None
    assert seen == [("event", "TAG", "caller")]


def test_publishers_call_the_call_method() -> None:
    """Publishers use ``.call``; overriding only ``__call__`` is not enough."""
    seen: list[str] = []

    class Sub(EventSubscriber):
        def call(
            self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
        ) -> None:
            seen.append("call")

        def __call__(self, *args: Any) -> None:  # pragma: no cover - must not run
            seen.append("__call__")

    publisher = EventPublisher(PLACED)
    sub = Sub()
    publisher.add_subscriber(sub)
    publisher.publish(Placed(1))
    assert seen == ["call"]


def test_owned_subscriber_exposes_owner() -> None:
    class Owned(OwnedEventSubscriber):
        def call(
            self, arg: Any, current_event_tag: NormalizedTag, current_event_caller: Any
        ) -> None:
            self.owner.append(arg)

    owner: list[Any] = []
    sub = Owned(owner)
    assert sub.owner is owner
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(sub)
    publisher.publish(Placed(1))
    assert owner == [Placed(1)]


def test_owned_subscriber_is_abstract() -> None:
    with pytest.raises(TypeError):
        OwnedEventSubscriber(object())  # type: ignore[abstract]


# --- FunctionalEventSubscriber ----------------------------------------------


def test_functional_with_event_info() -> None:
    seen: list[Any] = []
    sub = FunctionalEventSubscriber(lambda e, t, c: seen.append((e, t, c)))
    publisher = EventPublisher(PLACED)
    publisher.add_subscriber(sub)
    publisher.publish(Placed(1))
    assert seen == [(Placed(1), "ORDER_PLACED", publisher)]


def test_functional_without_event_info() -> None:
    seen: list[Any] = []
    sub = FunctionalEventSubscriber(seen.append, with_event_info=False)
    assert sub.callback == seen.append
    sub.call(Placed(1), "ORDER_PLACED", None)
    sub(Placed(2), "ORDER_PLACED", None)
    assert seen == [Placed(1), Placed(2)]


def test_functional_defaults_to_event_info() -> None:
    seen: list[int] = []
    sub = FunctionalEventSubscriber(lambda *args: seen.append(len(args)))
    sub.call(Placed(1), "T", None)
    assert seen == [3]


# --- ReportingEventSubscriber -----------------------------------------------


class Plain:
    def __str__(self) -> str:
        return "plain-event"


def _report(event: Any, tag: NormalizedTag, caplog: pytest.LogCaptureFixture) -> Any:
    sub = ReportingEventSubscriber(event_source="shop")
    with caplog.at_level(logging.INFO, logger="eventspype.sub.reporter"):
        sub.call(event, tag, None)
    records = [r for r in caplog.records if r.name == "eventspype.sub.reporter"]
    assert len(records) == 1
    assert records[0].levelno == logging.INFO
    return records[0]


def test_reporter_logs_dataclass(caplog: pytest.LogCaptureFixture) -> None:
    record = _report(Placed(5), "ORDER_PLACED", caplog)
    data = record.event_data
    assert data["order_id"] == 5
    assert data["event_name"] == "Placed"
    assert data["event_tag"] == "ORDER_PLACED"
    assert data["event_source"] == "shop"
    message = record.getMessage()
    assert "Placed" in message
    assert "ORDER_PLACED" in message
    assert "order_id" in message


def test_reporter_logs_namedtuple(caplog: pytest.LogCaptureFixture) -> None:
    record = _report(Refunded(3, 9.5), 7, caplog)
    data = record.event_data
    assert data["order_id"] == 3
    assert data["amount"] == 9.5
    assert data["event_name"] == "Refunded"
    assert data["event_tag"] == 7


def test_reporter_logs_other_objects(caplog: pytest.LogCaptureFixture) -> None:
    record = _report(Plain(), "PLAIN", caplog)
    data = record.event_data
    assert data["value"] == "plain-event"
    assert data["event_name"] == "Plain"
    assert data["event_tag"] == "PLAIN"
    assert "plain-event" in record.getMessage()


def test_reporter_never_raises(caplog: pytest.LogCaptureFixture) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no str")

    sub = ReportingEventSubscriber()
    with caplog.at_level(logging.INFO, logger="eventspype.sub.reporter"):
        sub.call(Unprintable(), "X", None)  # must not propagate
    assert any(r.levelno >= logging.ERROR for r in caplog.records)


def test_reporter_through_a_publisher(caplog: pytest.LogCaptureFixture) -> None:
    publisher = EventPublisher(PLACED)
    sub = ReportingEventSubscriber()
    publisher.add_subscriber(sub)
    with caplog.at_level(logging.INFO, logger="eventspype.sub.reporter"):
        publisher.publish(Placed(8))
    (record,) = [r for r in caplog.records if r.name == "eventspype.sub.reporter"]
    assert record.event_data["order_id"] == 8
    assert record.event_data["event_tag"] == "ORDER_PLACED"


# --- make_json_safe ---------------------------------------------------------


class Color(Enum):
    RED = "red"
    BLUE = 2


class Point(NamedTuple):
    x: int
    y: int


@dataclass
class Inner:
    color: Color
    point: Point


@dataclass
class Outer:
    name: str
    inner: Inner
    tags: set[str] = field(default_factory=set)
    mapping: dict[Any, Any] = field(default_factory=dict)
    items: tuple[int, ...] = ()


def test_json_safe_scalars_pass_through() -> None:
    for value in (None, True, 0, 1.5, "s"):
        assert make_json_safe(value) == value


def test_json_safe_nested_structures() -> None:
    obj = Outer(
        name="o",
        inner=Inner(Color.RED, Point(1, 2)),
        tags={"only"},
        mapping={1: Color.BLUE, Tags.SHIPPED: [Point(3, 4)]},
        items=(1, 2),
    )
    result = make_json_safe(obj)
    assert result == {
        "name": "o",
        "inner": {"color": "red", "point": {"x": 1, "y": 2}},
        "tags": ["only"],
        "mapping": {"1": 2, "Tags.SHIPPED": [{"x": 3, "y": 4}]},
        "items": [1, 2],
    }
    json.dumps(result)  # really JSON-safe


def test_json_safe_dict_keys_become_strings() -> None:
    assert make_json_safe({1: "a", None: "b", (1, 2): "c"}) == {
        "1": "a",
        "None": "b",
        "(1, 2)": "c",
    }


def test_json_safe_set_and_frozenset_become_lists() -> None:
    assert sorted(make_json_safe({3, 1, 2})) == [1, 2, 3]
    assert make_json_safe(frozenset({"a"})) == ["a"]


def test_json_safe_enum_becomes_value() -> None:
    assert make_json_safe(Color.RED) == "red"
    assert make_json_safe(Color.BLUE) == 2


def test_json_safe_circular_reference_marker() -> None:
    loop: list[Any] = [1]
    loop.append(loop)
    assert make_json_safe(loop) == [1, "<circular ref list>"]

    cyclic: dict[str, Any] = {"a": 1}
    cyclic["self"] = cyclic
    assert make_json_safe(cyclic) == {"a": 1, "self": "<circular ref dict>"}


def test_json_safe_shared_reference_is_not_circular() -> None:
    shared = [1]
    assert make_json_safe([shared, shared]) == [[1], [1]]


def test_json_safe_falls_back_to_str() -> None:
    assert make_json_safe(Plain()) == "plain-event"
    assert make_json_safe(b"raw") == str(b"raw")
    assert make_json_safe(Placed) == str(Placed)  # a class, not an instance
