"""The pytest plugin: its fixtures in a user's test suite (run by pytester),
with pytest-asyncio and anyio, and the redis_url fixture's three ways."""

from __future__ import annotations

import os
import re
import shutil

import pytest

USES_FIXTURES = """
from dataclasses import dataclass

import pytest
from eventspype import EventPublication, EventPublisher, FunctionalEventSubscriber


@dataclass
class OrderPlaced:
    order_id: int


PLACED = EventPublication("order_placed", OrderPlaced)


def test_recorder_and_broker(event_recorder, test_broker):
    publisher = EventPublisher(PLACED, test_broker)
    recorder = event_recorder(publisher)
    publisher.publish(OrderPlaced(1))
    recorder.assert_published(OrderPlaced(1))


def test_collected_error_fails_at_teardown(test_broker):
    test_broker._errors = "collect"
    publisher = EventPublisher(PLACED, test_broker)

    def fail(event):
        raise LookupError("left unraised")

    failing = FunctionalEventSubscriber(fail, with_event_info=False)
    publisher.add_subscriber(failing)
    publisher.publish(OrderPlaced(1))
"""


def test_fixtures_in_a_users_suite(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_user=USES_FIXTURES)
    result = pytester.runpytest_inprocess("-p", "no:asyncio")
    result.assert_outcomes(passed=2, errors=1)
    result.stdout.fnmatch_lines(["*LookupError: left unraised*"])


ASYNC_TESTS = """
import asyncio
import threading
from dataclasses import dataclass

import pytest
from eventspype import EventPublication, EventPublisher


@dataclass
class OrderPlaced:
    order_id: int


PLACED = EventPublication("order_placed", OrderPlaced)


async def scenario(event_recorder, test_broker):
    publisher = EventPublisher(PLACED, test_broker)
    recorder = event_recorder(publisher)
    await publisher.publish_async(OrderPlaced(1))
    threading.Thread(target=publisher.publish, args=(OrderPlaced(2),)).start()
    assert await recorder.wait_for(order_id=2, timeout=30) == OrderPlaced(2)


@pytest.mark.asyncio
async def test_with_pytest_asyncio(event_recorder, test_broker):
    await scenario(event_recorder, test_broker)


@pytest.mark.anyio
async def test_with_anyio(event_recorder, test_broker):
    await scenario(event_recorder, test_broker)


@pytest.fixture
def anyio_backend():
    return "asyncio"
"""


def test_fixtures_with_pytest_asyncio_and_anyio(pytester: pytest.Pytester) -> None:
    pytest.importorskip("pytest_asyncio")
    pytest.importorskip("anyio")
    pytester.makepyfile(test_async=ASYNC_TESTS)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    result = pytester.runpytest_inprocess("-p", "asyncio", "-p", "anyio")
    result.assert_outcomes(passed=2)


REDIS_URL_TEST = """
def test_url(redis_url):
    print("URL", redis_url)
"""


def _run_redis_url(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, **env: str
) -> pytest.RunResult:
    for name in ("EVENTSPYPE_TEST_REDIS_URL", "EVENTSPYPE_REQUIRE_REDIS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    pytester.makepyfile(test_redis_url=REDIS_URL_TEST)
    return pytester.runpytest_inprocess("-p", "no:asyncio", "-s", "-rs")


def _dead_url() -> str:
    import socket

    with socket.socket() as probe:  # a port nobody listens on once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_redis_url_skips_when_the_configured_server_is_down(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_redis_url(
        pytester, monkeypatch, EVENTSPYPE_TEST_REDIS_URL=_dead_url()
    )
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*EVENTSPYPE_TEST_REDIS_URL is set but no Redis*"])


def test_redis_url_fails_instead_when_redis_is_required(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = _run_redis_url(
        pytester,
        monkeypatch,
        EVENTSPYPE_TEST_REDIS_URL=_dead_url(),
        EVENTSPYPE_REQUIRE_REDIS="1",
    )
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*EVENTSPYPE_REQUIRE_REDIS=1 but*"])


def test_redis_url_skips_saying_what_to_install_without_redis_server(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(pytester.path))  # no redis-server there
    result = _run_redis_url(pytester, monkeypatch)
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["*install redis-server*"])


def test_redis_url_starts_a_private_server_and_stops_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    if shutil.which("redis-server") is None:
        if os.environ.get("EVENTSPYPE_REQUIRE_REDIS") == "1":
            pytest.fail("EVENTSPYPE_REQUIRE_REDIS=1 but redis-server is not installed")
        pytest.skip("redis-server is not installed")
    from eventspype.testing._redis_server import ping

    result = _run_redis_url(pytester, monkeypatch)
    result.assert_outcomes(passed=1)
    [url] = re.findall(r"URL (redis://\S+)", result.stdout.str())
    assert url.startswith("redis://127.0.0.1:")
    assert not url.endswith(":6379/0")
    assert ping(url) is not None, "the private server outlived the session"


def test_fake_redis_says_what_to_install_without_fakeredis(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytester.makeconftest(
        "import sys\nsys.modules['fakeredis'] = None  # as if not installed\n"
    )
    pytester.makepyfile(test_fake="def test_it(fake_redis):\n    pass\n")
    result = pytester.runpytest_subprocess("-p", "no:asyncio")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(['*pip install "eventspype-testing?redis?"*'])
