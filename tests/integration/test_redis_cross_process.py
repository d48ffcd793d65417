"""Two real processes exchange events through the shared Redis, both ways."""

from __future__ import annotations

import pytest
from redis_helpers import (
    peer_lines,
    receive_here,
    send_from_here,
    shared_redis_url,
    unique_prefix,
)
from redis_peer_events import make_event

pytestmark = pytest.mark.slow


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()


COUNT = 50


@pytest.mark.parametrize(("tag", "expected_tag"), [("shipped", "SHIPPED"), (7, 7)])
def test_a_peer_publishes_this_process_receives(
    redis_url: str, tag: str | int, expected_tag: str | int
) -> None:
    received = receive_here(redis_url, unique_prefix(), tag, COUNT)
    assert [event for event, _, _ in received] == [make_event(i) for i in range(COUNT)]
    assert {event_tag for _, event_tag, _ in received} == {expected_tag}


@pytest.mark.parametrize(("tag", "expected_tag"), [("shipped", "SHIPPED"), (7, 7)])
def test_this_process_publishes_a_peer_receives(
    redis_url: str, tag: str | int, expected_tag: str | int
) -> None:
    lines, err = send_from_here(redis_url, unique_prefix(), tag, COUNT)
    assert err == ""
    assert [line["event"] for line in lines] == peer_lines(COUNT)
    assert {line["tag"] for line in lines} == {expected_tag}
    assert {line["caller"] for line in lines} == {"RedisBroker"}
