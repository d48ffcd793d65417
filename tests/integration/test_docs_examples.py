"""The documentation cannot rot: every example and every docs code block runs.

- Each ``examples/*.py`` runs as a script (``sys.executable``), must exit 0 and
  print what it is expected to print.
- Each page of ``docs/`` and each README with Python blocks runs in a fresh
  interpreter: its blocks execute in order in one namespace (see
  ``docs_support/``), so a page reads like one session. Blocks marked
  ``<!-- skip-test: why -->`` are not run, nor blocks marked
  ``<!-- requires: mod -->`` where ``mod`` is not installed.

What needs a Redis server (pages that connect, the Redis examples, the demo's
second part) uses ``EVENTSPYPE_TEST_REDIS_URL`` (default
redis://127.0.0.1:6379/0) and is skipped when no server answers, unless
``EVENTSPYPE_REQUIRE_REDIS=1``, which turns the skip into a failure.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SUPPORT = Path(__file__).resolve().parent / "docs_support"
REDIS_URL = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
REQUIRE_REDIS = os.environ.get("EVENTSPYPE_REQUIRE_REDIS") == "1"
# Below pytest-timeout's 120 s, so a hang fails with the script's output.
RUN_TIMEOUT = 100

pytestmark = pytest.mark.slow


def _load_markdown_blocks() -> ModuleType:
    # Loaded by path: tests/integration is not a package, and the page runner
    # (a script in the same folder) imports the module by its plain name.
    path = SUPPORT / "markdown_blocks.py"
    spec = importlib.util.spec_from_file_location("_docs_markdown_blocks", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


markdown_blocks = _load_markdown_blocks()

#: What each example must print (substrings); every example needs an entry.
EXPECTED_OUTPUT: dict[str, list[str]] = {
    "demo.py": [
        "[billing] ORDER_PLACED: order 1",
        "[audit]   recorded [1, 2, 3]",
        "wrong class refused, as it should be:",
    ],
    "local_broker.py": [
        "failed subscriber calls so far: 1",
        "live subscribers on ORDER_PLACED: 1",
        "OrderPlacedEvent(order_id=5, amount=3.2)",
    ],
    "custom_broker.py": ["handled order 3 on 'threaded-broker'", "worker stopped"],
    "testing_kit.py": [" passed"],
    "serializers.py": [
        "JsonEventSerializer: ",
        "MsgpackEventSerializer: ",
        "field: $.items[0].quantity",
    ],
    "sse_app.py": [
        "text/event-stream",
        "event: PRICE_CHANGED",
        'data: {"symbol": "INIT", "price": 3.25}',
    ],
    "redis_broker.py": [
        "received OrderPlacedEvent(order_id=1",
        "stats: published 4, delivered 4, dropped 0",
    ],
}
#: Examples that cannot run at all without a Redis server.
REDIS_EXAMPLES = {"redis_broker.py"}

EXAMPLES = sorted(ROOT.glob("examples/*.py"))
# The READMEs are documentation too: their examples must work as written.
PAGES = sorted(
    [*ROOT.glob("docs/**/*.md"), ROOT / "README.md", *ROOT.glob("packages/*/README.md")]
)


@functools.cache
def _redis_problem() -> str | None:
    """Why the test Redis server cannot be used, or None if it answers."""
    try:
        import redis
    except ImportError:
        return "the redis package is not installed"
    client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as error:
        return f"no Redis server at {REDIS_URL} ({error})"
    finally:
        client.close()
    return None


def _require_redis() -> None:
    problem = _redis_problem()
    if problem is None:
        return
    if REQUIRE_REDIS:
        pytest.fail(f"EVENTSPYPE_REQUIRE_REDIS=1 but {problem}")
    pytest.skip(problem)


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [sys.executable, *args],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired as expired:
        # Partial output may come back as bytes even with text=True.
        partial = expired.stdout or b""
        output = (
            partial.decode(errors="replace") if isinstance(partial, bytes) else partial
        )
        pytest.fail(f"{args} did not finish in {RUN_TIMEOUT} s:\n{output}")


def _report(result: subprocess.CompletedProcess[str]) -> str:
    return (
        f"exit {result.returncode}\n--- stdout\n{result.stdout}"
        f"\n--- stderr\n{result.stderr}"
    )


def _pages_with_code() -> list[Path]:
    return [
        page
        for page in PAGES
        if any(
            b.skip_reason is None for b in markdown_blocks.extract_blocks(page, ROOT)
        )
    ]


def _page_params() -> list[Any]:
    params = []
    for page in _pages_with_code():
        blocks = markdown_blocks.extract_blocks(page, ROOT)
        marks = (
            [pytest.mark.redis_server] if markdown_blocks.needs_redis(blocks) else []
        )
        params.append(pytest.param(page, id=str(page.relative_to(ROOT)), marks=marks))
    return params


def _example_params() -> list[Any]:
    return [
        pytest.param(
            path,
            id=path.name,
            marks=[pytest.mark.redis_server] if path.name in REDIS_EXAMPLES else [],
        )
        for path in EXAMPLES
    ]


@pytest.mark.parametrize("example", _example_params())
def test_example_runs(example: Path) -> None:
    env = dict(os.environ)
    env.pop("EVENTSPYPE_REDIS_URL", None)
    with_redis = example.name in REDIS_EXAMPLES or example.name == "demo.py"
    if example.name in REDIS_EXAMPLES:
        _require_redis()
    if with_redis and _redis_problem() is None:
        env["EVENTSPYPE_REDIS_URL"] = REDIS_URL
    elif with_redis and REQUIRE_REDIS:
        _require_redis()  # fails: the demo's Redis part must not be skipped

    result = _run([str(example)], env)

    assert result.returncode == 0, _report(result)
    for expected in EXPECTED_OUTPUT[example.name]:
        assert expected in result.stdout, _report(result)
    if example.name == "demo.py":
        # The second part ran through Redis, or said in one line why not.
        redis_part = "confirmations back" in result.stdout
        if "EVENTSPYPE_REDIS_URL" in env:
            assert redis_part, _report(result)
        else:
            assert redis_part or "skipped" in result.stdout, _report(result)


@pytest.mark.parametrize("page", _page_params())
def test_docs_page_runs(page: Path) -> None:
    blocks = markdown_blocks.extract_blocks(page, ROOT)
    if markdown_blocks.needs_redis(blocks):
        _require_redis()
    env = dict(os.environ, EVENTSPYPE_TEST_REDIS_URL=REDIS_URL)

    result = _run([str(SUPPORT / "run_page.py"), str(page)], env)

    assert result.returncode == 0, _report(result)


def test_every_example_has_expected_output() -> None:
    assert sorted(EXPECTED_OUTPUT) == sorted(p.name for p in EXAMPLES)


def test_key_pages_have_runnable_code() -> None:
    """The pages that promise working examples are among those executed."""
    executed = {p.name for p in _pages_with_code()}
    for name in ("message-brokers.md", "serializers.md", "redis-in-production.md"):
        assert name in executed


def test_skipped_blocks_are_few_and_explained() -> None:
    skipped = [
        (page.name, block.first_line, block.skip_reason)
        for page in PAGES
        for block in markdown_blocks.extract_blocks(page, ROOT)
        if block.skip_reason is not None
    ]
    # Only interface outlines that would shadow the real classes are skipped.
    assert len(skipped) <= 3, skipped
    assert all(reason for _, _, reason in skipped)
