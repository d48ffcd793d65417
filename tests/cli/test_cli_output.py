"""What the commands print, without a server: escaping, JSON, ``--since``."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click
import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventspype.cli.commands.tail import start_id
from eventspype.cli.output import as_json, safe
from eventspype.cli.session import redact

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc)
NOW_MS = 1796634000000


@given(st.text())
def test_safe_text_is_printable_and_keeps_printable_text(text: str) -> None:
    shown = safe(text)
    assert shown.isprintable()
    if text.isprintable():
        assert shown == text


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
    )
)
def test_json_output_has_no_control_character_and_round_trips(value: object) -> None:
    line = as_json(value)
    assert line.isascii()
    assert all(c >= " " for c in line)
    assert json.loads(line) == value


@pytest.mark.parametrize(
    ("since", "expected"),
    [
        (None, str(NOW_MS)),
        ("0", "0"),
        ("1796634000000-5", "1796634000000-5"),
        ("30s", str(NOW_MS - 30_000)),
        ("10m", str(NOW_MS - 600_000)),
        ("2h", str(NOW_MS - 7_200_000)),
        ("1d", str(NOW_MS - 86_400_000)),
        ("2026-12-07T08:00:00", str(NOW_MS - 3_600_000)),
        ("2026-12-07T09:00:00+01:00", str(NOW_MS - 3_600_000)),
    ],
)
def test_since_accepts_durations_times_and_ids(
    since: str | None, expected: str
) -> None:
    assert start_id(since, NOW) == expected


@pytest.mark.parametrize("since", ["yesterday", "10 m", "-5m", "1-2-3"])
def test_since_refuses_the_rest(since: str) -> None:
    with pytest.raises(click.BadParameter, match="expected a duration"):
        start_id(since, NOW)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("redis://:pw@localhost:6379/0", "redis://:***@localhost:6379/0"),
        ("rediss://me:pw@h/1", "rediss://me:***@h/1"),
    ],
)
def test_passwords_are_never_printed(url: str, shown: str) -> None:
    assert redact(url) == shown
