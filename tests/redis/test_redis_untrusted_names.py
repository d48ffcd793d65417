"""Names a message gives (module, class, tag) are the sender's (issue 16, item 3).

- ``allowed_modules=("myapp.events",)`` admits classes *defined* there: before,
  any class merely imported into an allowed module resolved (a message naming
  ``myapp.events.Danger``, defined elsewhere, ran its ``__post_init__`` with
  the sender's data).
- Names quoted in a log line are escaped: before, a newline forged a second
  (CRITICAL) line and ANSI escapes reached the operator's terminal.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import sys
import types
from typing import Any

import pytest
import redis
from _redis_support import Inbox
from hypothesis import given
from hypothesis import strategies as st

from eventspype.broker.redis._wire.envelope import EnvelopeError
from eventspype.broker.redis._wire.printable import printable
from eventspype.broker.redis._wire.registry import ClassRegistry
from eventspype.broker.redis._wire.stats import Counters

ALLOWED = "_untrusted_names_events"
RAN: list[Any] = []


@dataclasses.dataclass
class Danger:
    """Defined in this test module; imported into the allowed one."""

    value: int

    def __post_init__(self) -> None:
        RAN.append(self.value)


@pytest.fixture
def allowed_module(monkeypatch: pytest.MonkeyPatch) -> types.ModuleType:
    """An allowed module with its own classes, an imported one and an alias."""
    module = types.ModuleType(ALLOWED)

    @dataclasses.dataclass
    class Placed:
        value: int

    class Outer:
        @dataclasses.dataclass
        class Inner:
            value: int

    for cls, qualname in (
        (Placed, "Placed"),
        (Outer, "Outer"),
        (Outer.Inner, "Outer.Inner"),
    ):
        cls.__module__, cls.__qualname__ = ALLOWED, qualname
    module.Placed = Placed  # type: ignore[attr-defined]
    module.Outer = Outer  # type: ignore[attr-defined]
    module.Danger = Danger  # type: ignore[attr-defined]  # imported into it
    module.Alias = Placed  # type: ignore[attr-defined]  # another name for one
    monkeypatch.setitem(sys.modules, ALLOWED, module)
    RAN.clear()
    return module


def test_classes_defined_in_an_allowed_module_resolve(
    allowed_module: types.ModuleType,
) -> None:
    registry = ClassRegistry(allowed_modules=[ALLOWED])
    assert registry.resolve(ALLOWED, "Placed") is allowed_module.Placed
    assert registry.resolve(ALLOWED, "Outer.Inner") is allowed_module.Outer.Inner


@pytest.mark.parametrize("qualname", ["Danger", "Alias"])
def test_a_class_imported_into_an_allowed_module_or_an_alias_is_refused(
    allowed_module: types.ModuleType, qualname: str
) -> None:
    registry = ClassRegistry(allowed_modules=[ALLOWED])
    with pytest.raises(EnvelopeError) as refused:
        registry.resolve(ALLOWED, qualname)
    assert refused.value.reason == "unregistered_class"
    assert "not defined in an allowed module" in str(refused.value)


def test_allow_unregistered_classes_still_resolves_as_1_4_2_did(
    allowed_module: types.ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventspype.broker.redis._wire import registry as _registry

    monkeypatch.setattr(_registry, "_warned", True)  # its warning is tested elsewhere
    assert ClassRegistry(allow_unregistered=True).resolve(ALLOWED, "Danger") is Danger


def test_the_broker_never_builds_a_class_imported_into_an_allowed_module(
    allowed_module: types.ModuleType,
    broker_factory: Any,
    client: redis.Redis,
    prefix: str,
) -> None:
    broker = broker_factory(allowed_modules=[ALLOWED])
    inbox = Inbox()
    broker.subscribe("ORDERS", inbox.subscriber)
    broker.wait_until_subscribed(timeout=10)
    for qualname, value in (("Danger", 666), ("Placed", 1)):
        message = {
            "event_tag": "ORDERS",
            "event_class": qualname,
            "event_module": ALLOWED,
            "payload": json.dumps({"value": value}),
        }
        client.publish(f"{prefix}ORDERS", json.dumps(message))
    [event] = inbox.wait_for(1)
    assert type(event) is allowed_module.Placed
    assert broker.stats().dropped["unregistered_class"] == 1
    assert RAN == []  # Danger.__post_init__ never ran


# -- names in the log ------------------------------------------------------------

FORGED = "Placed\n2026-12-07 09:00:00 CRITICAL root: disk wiped\x1b[2J\u202e"


def test_a_forged_name_is_escaped_in_the_drop_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    registry = ClassRegistry()
    counters = Counters()
    with pytest.raises(EnvelopeError) as refused:
        registry.resolve("myapp\x1b[31m", FORGED)
    with caplog.at_level(logging.WARNING, logger="eventspype.broker.redis"):
        counters.drop("unregistered_class", "c", refused.value)
    [line] = [r.getMessage() for r in caplog.records]
    assert "\n" not in line
    assert "\x1b" not in line
    assert "\u202e" not in line
    assert "Placed\\n2026-12-07 09:00:00 CRITICAL" in line
    assert "myapp\\x1b[31m" in line


@given(st.text(max_size=200))
def test_printable_leaves_nothing_unprintable_and_printable_text_alone(
    text: str,
) -> None:
    escaped = printable(text)
    assert escaped.isprintable()
    if text.isprintable():
        assert escaped == text


def test_printable_cuts_long_texts() -> None:
    assert printable("x" * 5000, limit=10) == "xxxxxxxxxx... (4990 more characters)"
