"""Wire compatibility with eventspype 1.4.2, both ways, on the shared Redis.

A process running the reference implementation (eventspype 1.4.2 from PyPI,
which needs Python 3.13+, in a virtualenv of its own) and this process
exchange events. The virtualenv is built once and cached under the temporary
directory, keyed by version. Skipped when Python 3.13 or PyPI is unavailable;
a missing Redis server fails instead when ``EVENTSPYPE_REQUIRE_REDIS=1``.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
    InMemorySpanExporter,
)
from redis_helpers import (
    receive_here,
    send_from_here,
    shared_redis_url,
    unique_prefix,
)
from redis_peer_events import make_event

from eventspype.otel import EventspypeInstrumentor

pytestmark = pytest.mark.slow

REFERENCE = "eventspype==1.4.2"


@pytest.fixture
def redis_url() -> str:
    return shared_redis_url()


COUNT = 20


def _python_313() -> str | None:
    candidates = [
        os.environ.get("EVENTSPYPE_PY313", ""),
        *sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python"))),
        "/usr/bin/python3.13",
        "/usr/local/bin/python3.13",
    ]
    return next((c for c in candidates if c and os.access(c, os.X_OK)), None)


@pytest.fixture(scope="session")
def reference_python() -> str:
    """The interpreter of a cached venv with eventspype 1.4.2 and redis."""
    base = _python_313()
    if base is None:
        pytest.skip("eventspype 1.4.2 needs Python 3.13, which is not installed")
    cache = Path(tempfile.gettempdir()) / "eventspype-wire-compat"
    cache.mkdir(exist_ok=True)
    venv = cache / REFERENCE
    python = venv / "bin" / "python"
    marker = venv / ".complete"
    # Test runs on several Pythons may build it at the same time.
    with open(cache / f"{REFERENCE}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.exists():
            problem = _build_venv(base, venv)
            if problem:
                pytest.skip(f"cannot install {REFERENCE} from PyPI: {problem}")
            marker.touch()
    return str(python)


def _build_venv(base: str, venv: Path) -> str | None:
    subprocess.run([base, "-m", "venv", "--clear", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet",
         REFERENCE, "redis>=5"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )  # fmt: skip
    return None if install.returncode == 0 else install.stderr[-500:]


def test_reference_publishes_we_receive(
    redis_url: str,
    reference_python: str,
) -> None:
    received = receive_here(
        redis_url, unique_prefix(), "shipped", COUNT, reference_python
    )
    assert [event for event, _, _ in received] == [make_event(i) for i in range(COUNT)]
    assert {tag for _, tag, _ in received} == {"SHIPPED"}


def test_we_publish_reference_receives(
    redis_url: str,
    reference_python: str,
) -> None:
    lines, _ = send_from_here(redis_url, unique_prefix(), 11, COUNT, reference_python)
    expected = [make_event(i) for i in range(COUNT)]
    assert [line["event"]["order_id"] for line in lines] == list(range(COUNT))
    assert [line["event"]["note"] for line in lines] == [e.note for e in expected]
    assert [line["event"]["items"] for line in lines] == [e.items for e in expected]
    assert {line["tag"] for line in lines} == {11}
    assert {line["caller"] for line in lines} == {"RedisBroker"}


# --- a traced fleet: headers in the envelope (issue 18) ------------------------


@pytest.fixture
def traced() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    EventspypeInstrumentor().instrument(tracer_provider=provider)
    try:
        yield exporter
    finally:
        EventspypeInstrumentor().uninstrument()


def test_we_publish_with_trace_headers_reference_receives(
    redis_url: str, reference_python: str, traced: InMemorySpanExporter
) -> None:
    prefix = unique_prefix()
    spy = redis.Redis.from_url(redis_url).pubsub()
    spy.subscribe(f"{prefix}12")
    try:
        lines, _ = send_from_here(redis_url, prefix, 12, COUNT, reference_python)
        envelopes = []
        while len(envelopes) < COUNT:
            message = spy.get_message(timeout=10)
            assert message is not None, f"saw {len(envelopes)} of {COUNT}"
            if message["type"] == "message":
                envelopes.append(json.loads(message["data"]))
    finally:
        spy.close()
    # 1.4.2 got every event, from envelopes that all carried a trace context.
    assert [line["event"]["order_id"] for line in lines] == list(range(COUNT))
    assert all("traceparent" in envelope["headers"] for envelope in envelopes)
    sends = [s for s in traced.get_finished_spans() if s.name == "send 12"]
    assert len(sends) == COUNT


def test_reference_publishes_without_headers_we_trace_the_delivery(
    redis_url: str, reference_python: str, traced: InMemorySpanExporter
) -> None:
    received = receive_here(
        redis_url, unique_prefix(), "packed", COUNT, reference_python
    )
    assert [event for event, _, _ in received] == [make_event(i) for i in range(COUNT)]
    processes = [s for s in traced.get_finished_spans() if s.name == "process PACKED"]
    assert len(processes) == COUNT
    # No context came with the events: each delivery starts a trace of its own.
    assert all(span.parent is None for span in processes)
