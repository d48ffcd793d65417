"""The installed console script, as an operator runs it: a real process.

Ctrl-C (SIGINT) ends ``tail`` with status 0 and no traceback; colour and
progress bars appear on a terminal (a pseudo-terminal here) and nowhere else,
and what a hostile entry carries is escaped on both.
"""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import threading
import time
from typing import Any

import pytest
import redis
from _cli_support import HOSTILE_MODULE, console_script, good_envelope, hostile_envelope
from _redis_support import REDIS_URL
from click.testing import CliRunner
from redis_helpers import private_redis

from eventspype import versions
from eventspype.cli import cli


def _command(prefix: str, *args: str) -> list[str]:
    return [console_script(), "--url", REDIS_URL, "--prefix", prefix, *args]


def test_version_from_the_consoleconsole_script() -> None:
    done = subprocess.run(
        [console_script(), "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert done.stdout.splitlines() == [f"{n} {v}" for n, v in versions().items()]


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_or_sigterm_ends_tail_cleanly(
    client: redis.Redis, prefix: str, stop: signal.Signals
) -> None:
    process = subprocess.Popen(
        _command(prefix, "tail"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    first_line: list[str] = []
    reader = threading.Thread(
        target=lambda: first_line.append(process.stdout.readline())  # type: ignore[union-attr]
    )
    reader.start()
    try:
        deadline = time.monotonic() + 60
        # Until the process has subscribed and shown one event.
        while reader.is_alive() and time.monotonic() < deadline:
            client.publish(f"{prefix}ORDERS", good_envelope("ORDERS", 1))
            reader.join(0.1)
        assert first_line, "tail showed nothing"
        assert "ORDERS  _redis_support:OrderPlaced" in first_line[0]
        process.send_signal(stop)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    assert "Traceback" not in out


def test_tail_waits_for_a_restarted_server_and_goes_on(prefix: str) -> None:
    with private_redis() as server:
        process = subprocess.Popen(
            [
                console_script(),
                "--url",
                server.url,
                "--prefix",
                prefix,
                "tail",
                "--json",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        seen: list[int] = []

        def read() -> None:
            for line in process.stdout:  # type: ignore[union-attr]
                seen.append(json.loads(line)["payload"]["order_id"])

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        try:
            _publish_until(server, prefix, 1, seen)
            server.kill()
            server.start()  # same port, empty
            _publish_until(server, prefix, 2, seen)
            process.send_signal(signal.SIGINT)
            _, errors = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
    assert process.returncode == 0, errors
    assert "lost Redis (" in errors
    assert "Redis is back" in errors
    assert "Traceback" not in errors


def _publish_until(server: Any, prefix: str, order_id: int, seen: list[int]) -> None:
    client = server.client()
    deadline = time.monotonic() + 60
    try:
        while order_id not in seen:
            assert time.monotonic() < deadline, f"tail never showed order {order_id}"
            client.publish(f"{prefix}ORDERS", good_envelope("ORDERS", order_id))
            time.sleep(0.1)
    finally:
        client.close()


def _on_a_terminal(command: list[str]) -> bytes:
    """What ``command`` writes to a pseudo-terminal."""
    parent, child = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "200"}
    env.pop("NO_COLOR", None)
    process = subprocess.Popen(
        command, stdout=child, stderr=child, stdin=subprocess.DEVNULL, env=env
    )
    os.close(child)
    chunks = []
    try:
        while True:
            ready, _, _ = select.select([parent], [], [], 60)
            if not ready:
                break
            try:
                chunk = os.read(parent, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(parent)
        process.wait(30)
    assert process.returncode == 0, b"".join(chunks)
    return b"".join(chunks)


def test_colour_on_a_terminal_only_and_hostile_text_escaped_on_both(
    client: redis.Redis, prefix: str
) -> None:
    key = f"{prefix}{{ORDERS}}"
    client.xadd(key, {"event": hostile_envelope("ORDERS")})
    client.xadd(key, {"event": b"\x1b[2Jnot json"})
    client.xadd(f"{key}:dead", {"event": b"x"})

    tail = _command(prefix, "tail", "--streams", "--since", "0", "--count", "2")
    piped = subprocess.run(tail, capture_output=True, timeout=60)
    terminal = _on_a_terminal(tail)
    table = _on_a_terminal(_command(prefix, "streams"))
    replayed = _on_a_terminal(_command(prefix, "dead-letters", "replay", "ORDERS"))
    replayed_piped = subprocess.run(
        _command(prefix, "dead-letters", "replay", "ORDERS"),
        capture_output=True,
        timeout=60,
    )

    assert piped.returncode == 0
    assert b"\x1b" not in piped.stdout
    assert f"{HOSTILE_MODULE}:Planted\\x1b[2J".encode() in piped.stdout
    assert f"{HOSTILE_MODULE}:Planted\\x1b[2J".encode() in terminal
    assert b"\x1b[2J" not in terminal
    assert b"\x1b]0;pwned" not in terminal
    assert b"REFUSED" in terminal
    assert b"\x1b[" in table  # styled: a terminal gets colour and bold
    assert b"replaying" in replayed  # a progress bar, on a terminal only
    assert b"1/1" in replayed
    assert b"replaying" not in replayed_piped.stdout + replayed_piped.stderr
    assert b"\x1b" not in replayed_piped.stdout
    assert HOSTILE_MODULE not in sys.modules


def test_credentials_and_acl_refusals_are_one_line(prefix: str) -> None:
    """On a private server (its ACL is changed here, never the shared one's)."""
    with private_redis() as server:
        admin = server.client()
        admin.execute_command(
            "ACL", "SETUSER", "ops", "on", ">pw", "~*", "+@all", "-xinfo"
        )
        admin.xadd(f"{prefix}{{ORDERS}}", {"event": b"x"})
        admin.close()
        base = f"redis://ops:{{}}@127.0.0.1:{server.port}/0"
        refused = CliRunner().invoke(
            cli, ["--url", base.format("wrong"), "--prefix", prefix, "streams"]
        )
        denied = CliRunner().invoke(
            cli, ["--url", base.format("pw"), "--prefix", prefix, "streams"]
        )
    assert refused.exit_code == 1
    assert refused.output.startswith(
        f"Error: Redis at redis://ops:***@127.0.0.1:{server.port}/0 refused the "
        "credentials: "
    )
    assert denied.exit_code == 1
    assert "denied it (ACL): " in denied.output
    assert "xinfo" in denied.output
    for result in (refused, denied):
        assert len(result.output.splitlines()) == 1
        assert "pw" not in result.output.replace("***", "")
