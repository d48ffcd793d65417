"""A local Redis Cluster for the tests: real ``redis-server`` processes, stopped by pid.

:func:`local_cluster` starts ``masters`` nodes (and ``replicas`` per master)
with ``--cluster-enabled yes`` on free loopback ports, joins them with
``redis-cli --cluster create ... --cluster-yes``, waits until every node says
``cluster_state:ok`` (and every replica has synced), and on exit kills every
server by pid and deletes its files. Where ``redis-server`` or ``redis-cli`` is
missing, or older than 7 (no sharded Pub/Sub), the test is skipped with the
reason, or fails under ``EVENTSPYPE_REQUIRE_REDIS=1``.

Run as a script it starts a cluster and prints its first node's port, for
poking at by hand: ``python tests/redis/_cluster.py 3 1``.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import redis
from _redis_support import skip_or_fail, wait_until
from redis.cluster import RedisCluster
from redis.crc import key_slot

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: no lock, no clusters either
    fcntl = None  # type: ignore[assignment]

__all__ = ["ClusterNode", "LocalCluster", "local_cluster"]

#: How long a node may be silent before the cluster fails it over (ms): short,
#: so that a failover test waits seconds, not the default 15 s.
NODE_TIMEOUT_MS = 1000


def _free_cluster_port(taken: set[int]) -> int:
    """A free loopback port whose bus port (port + 10000) is free too."""
    while True:
        with socket.socket() as probe, socket.socket() as bus:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
            if port + 10000 > 65535 or port in taken:
                continue
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
            return port


class ClusterNode:
    """One ``redis-server`` of the cluster, controlled by pid."""

    def __init__(self, executable: str, port: int, workdir: Path) -> None:
        self.port = port
        self.process = subprocess.Popen(
            [
                executable,
                "--port", str(port),
                "--bind", "127.0.0.1",
                "--cluster-enabled", "yes",
                "--cluster-config-file", str(workdir / f"nodes-{port}.conf"),
                "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
                "--dir", str(workdir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def client(self, **options: Any) -> redis.Redis:
        """A plain client of this node alone (for INFO, CLUSTER, ...)."""
        options.setdefault("socket_timeout", 5)
        options.setdefault("socket_connect_timeout", 2)
        return redis.Redis(host="127.0.0.1", port=self.port, **options)

    def started(self) -> bool:
        """Whether it answers, or has exited (it will not answer then)."""
        return self.answers() or not self.alive

    def answers(self) -> bool:
        """Whether this node's own server answers (not another process that
        took the port first)."""
        client = self.client(socket_timeout=0.5, socket_connect_timeout=0.5)
        try:
            return bool(client.info("server")["process_id"] == self.process.pid)
        except (redis.RedisError, OSError):
            return False
        finally:
            client.close()

    def info(self, section: str) -> dict[str, Any]:
        client = self.client()
        try:
            return dict(client.info(section))
        finally:
            client.close()

    def cluster_state(self) -> str:
        """``ok`` or ``fail``, from ``CLUSTER INFO``."""
        client = self.client(socket_timeout=1, socket_connect_timeout=1)
        try:
            info = client.execute_command("CLUSTER", "INFO")
        finally:
            client.close()
        text = info.decode() if isinstance(info, bytes) else str(info)
        match = re.search(r"cluster_state:(\w+)", text)
        return match.group(1) if match else ""

    def kill(self) -> None:
        """SIGKILL: the node vanishes without closing anything gracefully."""
        if self.alive:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


class LocalCluster:
    """The nodes of a started cluster (see the module docs)."""

    def __init__(self, nodes: list[ClusterNode]) -> None:
        self.nodes = nodes

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def node(self, port: int) -> ClusterNode:
        return next(node for node in self.nodes if node.port == port)

    def client(self, **options: Any) -> RedisCluster:
        """A ``RedisCluster`` client that knows every node as a start-up node."""
        from redis.cluster import ClusterNode as StartupNode

        options.setdefault("socket_timeout", 5)
        options.setdefault("socket_connect_timeout", 2)
        startup = [StartupNode("127.0.0.1", node.port) for node in self.nodes]
        return RedisCluster(startup_nodes=startup, **options)

    def slot_owners(self) -> dict[int, int]:
        """Slot -> port of the master serving it, as a live node sees it now."""
        for node in self.nodes:
            if not node.alive:
                continue
            client = node.client()
            try:
                ranges = client.execute_command("CLUSTER", "SLOTS")
            except (redis.RedisError, OSError):
                continue
            finally:
                client.close()
            owners: dict[int, int] = {}
            for first, last, master, *_ in _slot_ranges(ranges):
                for slot in range(first, last + 1):
                    owners[slot] = master
            return owners
        raise AssertionError("no node of the cluster answers")

    def master_of(self, channel: str) -> int:
        """The port of the master that owns ``channel``'s hash slot."""
        return self.slot_owners()[key_slot(channel.encode())]

    def masters(self) -> list[int]:
        """Ports of the masters that serve slots, in port order."""
        return sorted(set(self.slot_owners().values()))

    def channels_on_distinct_masters(self, stem: str) -> dict[int, str]:
        """One channel name starting with ``stem`` per master: port -> name."""
        found: dict[int, str] = {}
        owners = self.slot_owners()
        wanted = len(set(owners.values()))
        index = 0
        while len(found) < wanted:
            name = f"{stem}{index}"
            found.setdefault(owners[key_slot(name.encode())], name)
            index += 1
        return found

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Until every live node says ``cluster_state:ok`` and agrees on the owners."""

        def healthy() -> bool:
            seen: list[dict[int, int]] = []
            for node in self.nodes:
                if not node.alive:
                    continue
                try:
                    if node.cluster_state() != "ok":
                        return False
                except (redis.RedisError, OSError):
                    return False
            for node in self.nodes:
                if node.alive:
                    seen.append(LocalCluster([node]).slot_owners())
            return all(owners == seen[0] and len(owners) == 16384 for owners in seen)

        wait_until(healthy, timeout, 0.05, "the cluster is not healthy")

    def stop(self) -> None:
        for node in self.nodes:
            with contextlib.suppress(Exception):
                node.kill()


def _slot_ranges(reply: Any) -> Iterator[tuple[int, int, int]]:
    for entry in reply:
        first, last, master = int(entry[0]), int(entry[1]), entry[2]
        yield first, last, int(master[1])


def _executables() -> tuple[str, str]:
    server, cli = shutil.which("redis-server"), shutil.which("redis-cli")
    if server is None or cli is None:
        skip_or_fail("redis-server and redis-cli are needed for a local Redis Cluster")
        raise AssertionError  # unreachable
    version = subprocess.run(
        [server, "--version"], capture_output=True, text=True, timeout=10
    ).stdout
    match = re.search(r"v=(\d+)\.", version)
    if match is None or int(match.group(1)) < 7:
        skip_or_fail(
            f"sharded Pub/Sub needs Redis 7 or later; {server} is {version.strip()!r}"
        )
    return server, cli


def _start_node(server: str, workdir: Path, taken: set[int]) -> ClusterNode:
    """A node on a free port, answering; another port if this one was lost.

    A port found free may be taken by another test process before our server
    binds it (workers and lanes start clusters at once): the server then
    exits, and the node starts again elsewhere instead of failing the test.
    """
    for _ in range(5):
        port = _free_cluster_port(taken)
        taken.add(port)
        node = ClusterNode(server, port, workdir)
        wait_until(node.started, 10, 0.05, f"redis-server on {port} does not answer")
        if node.alive:
            return node
    skip_or_fail(f"redis-server cannot start (last port tried: {port})")
    raise AssertionError("unreachable")  # skip_or_fail raises


@contextlib.contextmanager
def _one_failover_cluster_at_a_time(replicas: int) -> Iterator[None]:
    """A machine-wide lock (flock) around clusters with replicas.

    Their nodes fail a master over after NODE_TIMEOUT_MS of silence; two such
    clusters at once (parallel test runs, nox lanes) can starve a node that
    long on a small machine and fail over a master no test killed.
    """
    if not replicas or fcntl is None:
        yield
        return
    path = Path(tempfile.gettempdir()) / "eventspype-tests-failover-cluster.lock"
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextlib.contextmanager
def local_cluster(masters: int = 3, replicas: int = 0) -> Iterator[LocalCluster]:
    """A started, healthy cluster (see the module docs); stopped on exit."""
    with _one_failover_cluster_at_a_time(replicas), _cluster(masters, replicas) as c:
        yield c


@contextlib.contextmanager
def _cluster(masters: int, replicas: int) -> Iterator[LocalCluster]:
    server, cli = _executables()
    workdir = Path(tempfile.mkdtemp(prefix="eventspype-cluster-"))
    nodes: list[ClusterNode] = []
    cluster = LocalCluster(nodes)
    try:
        taken: set[int] = set()
        for _ in range(masters * (1 + replicas)):
            nodes.append(_start_node(server, workdir, taken))
        create = subprocess.run(
            [
                cli, "--cluster", "create",
                *(f"127.0.0.1:{node.port}" for node in nodes),
                "--cluster-replicas", str(replicas),
                "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=60,
        )  # fmt: skip
        if create.returncode != 0:
            raise AssertionError(f"redis-cli --cluster create failed:\n{create.stdout}")
        cluster.wait_healthy()
        if replicas:
            wait_until(
                lambda: _replicas_synced(cluster) >= masters * replicas,
                30,
                0.05,
                "the replicas did not sync",
            )
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(workdir, ignore_errors=True)


def _replicas_synced(cluster: LocalCluster) -> int:
    synced = 0
    for node in cluster.nodes:
        with contextlib.suppress(redis.RedisError, OSError):
            info = node.info("replication")
            if info.get("role") == "slave" and info.get("master_link_status") == "up":
                synced += 1
    return synced


if __name__ == "__main__":  # pragma: no cover - a tool for humans
    import sys

    with local_cluster(int(sys.argv[1]), int(sys.argv[2])) as started:
        print(" ".join(map(str, started.ports)), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()
