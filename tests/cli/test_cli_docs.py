"""docs/operating.md cannot drift: each command it shows runs and prints that.

The page's ```` ```console ```` blocks are ``$ eventspype ...`` followed by
the output. This test sets up the page's situation on the real server (under
a prefix of its own, shown as the default ``eventspype:``), runs each command
in page order through click's runner, and compares the output with the
page's, with times, entry ids and idle times made alike. A non-zero exit
status is shown as a last line ``[exit status N]``. A block after
``<!-- docs-output: not compared (why) -->`` only has to run;
``<!-- docs-input: y -->`` answers a prompt.

``EVENTSPYPE_DOCS_REGENERATE=1`` writes the real output into the page
instead (then read the diff before committing it).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from _cli_support import Run, dead_lettered

from eventspype.broker.redis import StreamAdmin

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operating.md"
BLOCK = re.compile(
    r"(?P<marks>(?:<!-- docs-[a-z]+: [^>]*-->\n)*)```console\n(?P<body>.*?)```", re.S
)
SHOWN_PREFIX = "eventspype:"
ENTRY_ID = re.compile(r"\b\d{13}-\d+\b")
VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(\.\d+)?(\+00:00)?"), "<time>"),
    (ENTRY_ID, "<id>"),
    (re.compile(r'"idle": [\d.]+'), '"idle": <s>'),
    (re.compile(r" \d+\.\d$", re.M), " <s>"),  # the idle column, last of its table
    (re.compile(r"[ \t]+"), " "),
]

SHOP = '''"""The shop's events (an application's own module)."""

import dataclasses


@dataclasses.dataclass
class OrderPlaced:
    order_id: int
    amount: float
'''


def _envelope(channel: str, module: str, name: str, payload: object) -> bytes:
    return json.dumps({
        "event_tag": channel, "event_class": name, "event_module": module,
        "payload": json.dumps(payload),
    }).encode()  # fmt: skip


def _situation(client: redis.Redis, prefix: str) -> None:
    """Orders flowing to a lagging billing group; payments with dead letters."""
    orders = f"{prefix}{{ORDERS}}"
    for order_id, amount in ((1, 9.5), (2, 120.0)):
        payload = {"order_id": order_id, "amount": amount}
        client.xadd(
            orders,
            {"event": _envelope("ORDERS", "shop.events", "OrderPlaced", payload)},
        )
    client.xadd(
        orders, {"event": _envelope("ORDERS", "os", "system", {"cmd": "rm -rf /"})}
    )
    client.xadd(
        orders,
        {
            "event": _envelope(
                "USERS", "shop.events", "UserDeleted", {"user": "\x1b[2J"}
            )
        },
    )
    client.xgroup_create(orders, "billing", id="0")
    client.xreadgroup("billing", "billing-1", {orders: ">"}, count=1)

    failed = _envelope("PAYMENTS", "shop.events", "PaymentFailed", {"payment_id": 41})
    dead_lettered(client, prefix, "PAYMENTS", failed, b"<html>502 Bad Gateway</html>",
                  group="ledger")  # fmt: skip


def _alike(text: str, prefix: str) -> str:
    text = text.replace(prefix, SHOWN_PREFIX)
    text = "\n".join(line.rstrip() for line in text.splitlines())
    for pattern, replacement in VOLATILE:
        text = pattern.sub(replacement, text)
    return "\n".join(line.strip() for line in text.strip().splitlines())


def _publishing(
    client: redis.Redis, prefix: str
) -> tuple[threading.Event, threading.Thread]:
    stop = threading.Event()
    event = _envelope(
        "ORDERS", "shop.events", "OrderPlaced", {"order_id": 3, "amount": 42.0}
    )

    def publish() -> None:
        while not stop.wait(0.05):
            client.publish(f"{prefix}ORDERS", event)

    thread = threading.Thread(target=publish)
    thread.start()
    return stop, thread


@pytest.fixture
def shop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The page's application module, ``shop.events``, importable from the
    current directory as `publish` expects (and forgotten after the test)."""
    package = tmp_path / "shop"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "events.py").write_text(SHOP)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [str(tmp_path), *sys.path])
    yield
    for name in ("shop.events", "shop"):
        sys.modules.pop(name, None)


def test_the_operating_page_shows_what_the_commands_print(
    run: Run, client: redis.Redis, prefix: str, shop: None
) -> None:
    _situation(client, prefix)
    with StreamAdmin(client, prefix) as admin:
        first_letter = admin.dead_letters("PAYMENTS")[0].id
    page = PAGE.read_text(encoding="utf-8")
    regenerate = os.environ.get("EVENTSPYPE_DOCS_REGENERATE") == "1"
    rebuilt, done, problems = [], 0, []
    for block in BLOCK.finditer(page):
        marks, body = block.group("marks"), block.group("body")
        command = body.splitlines()[0]
        assert command.startswith("$ eventspype"), command
        command = ENTRY_ID.sub(first_letter, command)
        args = shlex.split(command)[2:]
        live_tail = args[:1] == ["tail"] and "--streams" not in args
        stop, thread = _publishing(client, prefix) if live_tail else (None, None)
        try:
            answer = re.search(r"docs-input: (\S+)", marks)
            result = run(*args, input=answer.group(1) + "\n" if answer else None)
        finally:
            if stop is not None and thread is not None:
                stop.set()
                thread.join()
        output = result.output.replace(prefix, SHOWN_PREFIX)
        if result.exit_code:
            output += f"[exit status {result.exit_code}]\n"
        assert "Traceback" not in output
        shown = "\n".join(body.splitlines()[1:])
        compared = "docs-output: not compared" not in marks
        if compared and _alike(shown, SHOWN_PREFIX) != _alike(output, SHOWN_PREFIX):
            # Only blocks that differ are rewritten: no churn of times and ids.
            body_text = f"{command}\n{output}"
            rebuilt.append((block.start("body"), block.end("body"), body_text))
            problems.append(f"{command}\n--- page\n{shown}\n--- real\n{output}")
        done += 1
    assert done >= 14
    if regenerate:
        for start, end, text in reversed(rebuilt):
            page = page[:start] + text + page[end:]
        PAGE.write_text(page, encoding="utf-8")
        pytest.skip("docs/operating.md regenerated: read the diff")
    assert not problems, "\n\n".join(problems)
