"""Helpers for the RedisStreamBroker process tests: start, feed, read, stop peers."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from redis_helpers import HERE, wait_ready

PEER = HERE / "stream_peer.py"


def start_consumer(
    url: str, prefix: str, group: str, out: Path, *options: str
) -> subprocess.Popen[str]:
    """A consumer process, once it is subscribed."""
    process = subprocess.Popen(
        [sys.executable, str(PEER), "consume", url, prefix, group, str(out), *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=HERE,
    )
    wait_ready(process)
    return process


def publish(url: str, prefix: str, count: int, first: int = 0) -> None:
    """Publish ``count`` events from another process, numbered from ``first``."""
    subprocess.run(
        [
            sys.executable,
            str(PEER),
            "publish",
            url,
            prefix,
            str(count),
            "--first",
            str(first),
        ],
        cwd=HERE,
        check=True,
        timeout=120,
    )


def handled(out: Path) -> list[int]:
    """The order ids a consumer logged, in order."""
    if not out.exists():
        return []
    return [int(line) for line in out.read_text().split()]


def stop(process: subprocess.Popen[str]) -> dict[str, Any]:
    """SIGTERM (the consumer closes its broker); its final stats."""
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return dict(json.loads(out.strip().splitlines()[-1]))
