"""Execute the Python blocks of one documentation page, in order, in one module.

    python tests/integration/docs_support/run_page.py docs/message-brokers.md

Run in a fresh interpreter per page (test_docs_examples.py does), so pages
cannot leak state into each other or into the test process. Tracebacks point
at the page's own line numbers. Blocks that talk to Redis as the docs show it
(``host="localhost", port=6379``, ``redis://localhost:6379/0``) are pointed at
``EVENTSPYPE_TEST_REDIS_URL`` instead.

Afterwards every broker the page left open is closed, and the page fails if a
thread it started is still running: "close() leaves no thread behind" is part
of what the docs promise.
"""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import threading
import time
import types
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from markdown_blocks import extract_blocks

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
THREAD_GRACE_SECONDS = 10.0


def point_at_test_redis(code: str, url: str) -> str:
    """Rewrite the docs' Redis address (localhost:6379) to the test server's."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 6379
    db = parts.path.lstrip("/") or "0"
    code = re.sub(r"redis://localhost:6379(/\d+)?", url, code)
    return re.sub(
        r'host="localhost",\s*port=6379',
        f'host="{host}", port={port}, db={db}',
        code,
    )


def close_brokers(namespace: dict[str, Any]) -> None:
    """Close what the page left open: brokers in variables or behind publishers."""
    from eventspype import MessageBroker

    seen: set[int] = set()
    for value in list(namespace.values()):
        for candidate in (value, getattr(value, "broker", None)):
            if isinstance(candidate, MessageBroker) and id(candidate) not in seen:
                seen.add(id(candidate))
                close = getattr(candidate, "close", None)
                if callable(close):
                    close()


def leftover_threads(before: set[threading.Thread]) -> list[threading.Thread]:
    deadline = time.monotonic() + THREAD_GRACE_SECONDS
    while True:
        alive = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def _importable(module: str) -> bool:
    # eventspype's finder raises (naming the distribution) for its own
    # optional subpackages instead of returning None.
    try:
        return importlib.util.find_spec(module) is not None
    except ImportError:
        return False


def main(argv: list[str]) -> int:
    page = Path(argv[1]).resolve()
    repo_root = Path(__file__).resolve().parents[3]
    url = os.environ.get("EVENTSPYPE_TEST_REDIS_URL", DEFAULT_REDIS_URL)

    # Pages import the examples they include by name, as the examples
    # import each other (examples/testing_kit.py imports custom_broker).
    sys.path.insert(0, str(repo_root / "examples"))
    # A real module, so that classes defined by the page have a module that
    # dataclasses, typing.get_type_hints and pickling can find.
    module = types.ModuleType("docs_" + re.sub(r"\W", "_", page.stem))
    module.__file__ = str(page)
    sys.modules[module.__name__] = module
    threads_before = set(threading.enumerate())

    ran = skipped = 0
    for block in extract_blocks(page, repo_root):
        missing = [m for m in block.requires if not _importable(m)]
        if block.skip_reason is not None or missing:
            if missing:
                print(f"{page.name}:{block.first_line}: skipped, needs {missing}")
            skipped += 1
            continue
        # Pad so that traceback line numbers are the page's line numbers.
        source = "\n" * (block.first_line - 1) + point_at_test_redis(block.code, url)
        exec(compile(source, block.filename, "exec"), module.__dict__)
        ran += 1

    close_brokers(module.__dict__)
    alive = leftover_threads(threads_before)
    if alive:
        print(f"{page.name}: threads still running: {alive}", file=sys.stderr)
        return 1
    print(f"{page.name}: ran {ran} blocks, skipped {skipped}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
