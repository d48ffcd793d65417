"""The one backoff policy: doubling, capped, equal jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventspype._internal.backoff import Backoff


def test_doubles_from_first_and_stops_at_longest() -> None:
    b = Backoff(first=0.5, longest=4.0)
    assert [b.ceiling(n) for n in range(7)] == [0.0, 0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_the_random_number_chooses_between_half_and_all() -> None:
    b = Backoff(first=1.0, longest=60.0)
    assert b.delay(3, 0.0) == 2.0
    assert b.delay(3, 0.5) == 3.0
    assert b.delay(0, 0.7) == 0.0


@given(
    first=st.floats(0.001, 10),
    factor=st.floats(1, 100),
    failures=st.integers(0, 10_000),
    rand=st.floats(0, 1, exclude_max=True),
)
def test_every_delay_is_within_its_bounds(
    first: float, factor: float, failures: int, rand: float
) -> None:
    b = Backoff(first=first, longest=first * factor)
    d = b.delay(failures, rand)
    assert 0 <= d <= b.longest
    if failures:
        assert b.ceiling(failures) / 2 <= d <= b.ceiling(failures)


@pytest.mark.parametrize(("first", "longest"), [(0, 1), (-1, 1), (2, 1)])
def test_a_backoff_that_cannot_work_is_refused(first: float, longest: float) -> None:
    with pytest.raises(ValueError, match="first"):
        Backoff(first=first, longest=longest)
