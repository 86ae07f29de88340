"""A Redis primary, two replicas and three Sentinels on loopback ports (Debian's redis-server
and redis-sentinel), for the Sentinel tests of the bus and the fault tier.

Data nodes and Sentinels both require a password (the setup the operator runs). Sentinels
decide with quorum 2 and call a primary down after 3 s of silence; three of them need about 8 s
to find each other (shared/research/redis-sentinel.md), so `start` waits until each sees the
other two and both replicas before it returns.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import redis

from tests.conftest import free_port, wait_for_port

MASTER = "hub"
PASSWORD = "data-node-secret"
SENTINEL_PASSWORD = "sentinel-secret"
DOWN_AFTER_MS = 3000
"""1 s made false failovers on a loaded 2-core machine: a Sentinel's first PING to the just
promoted primary went unanswered for 1 s, and a second failover promoted the other replica,
leaving the first one a primary without replicas for 11 s (every `WAIT` failed meanwhile)."""
FAILOVER_TIMEOUT_MS = 5000
DISCOVERY_BOUND_S = 30.0
"""Sentinels and replicas find each other within this (about 8 s measured)."""
FAILOVER_BOUND_S = 20.0
"""A killed primary is replaced within this (1.5-2.4 s measured, plus the 3 s to notice)."""


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} is missing: `make system-deps` installs it")
    return found


class Node:
    """One redis-server or redis-sentinel process with its own directory and config file (a
    Sentinel rewrites its file; a data node keeps no data on disk: replication is the copy)."""

    def __init__(self, kind: str, workdir: Path, lines: list[str]) -> None:
        self.kind, self.port = kind, free_port()
        self.dir = workdir / f"{kind}-{self.port}"
        self.dir.mkdir(parents=True)
        self.config = self.dir / f"{kind}.conf"
        self.config.write_text("\n".join([
            f"port {self.port}", "bind 127.0.0.1", f"dir {self.dir}", 'save ""',
            f"logfile {self.dir / 'log'}", *lines]) + "\n")
        self.binary = _binary("redis-sentinel" if kind == "sentinel" else "redis-server")
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        self.process = subprocess.Popen([self.binary, str(self.config)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        """kill -9: no goodbye to replicas, Sentinels or clients."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def client(self) -> redis.Redis:
        password = SENTINEL_PASSWORD if self.kind == "sentinel" else PASSWORD
        return redis.Redis(port=self.port, password=password, socket_timeout=2,
                           decode_responses=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


class SentinelGroup:
    """The primary is `data[0]` at first; `primary()` asks the Sentinels who it is now."""

    def __init__(self, workdir: Path) -> None:
        auth = [f"requirepass {PASSWORD}", f"masterauth {PASSWORD}",
                "repl-diskless-sync-delay 0"]  # default 5 s: a returning node syncs at once
        self.data: list[Node] = []
        self.sentinels: list[Node] = []
        try:
            self.data.append(Node("redis", workdir, auth))
            for _ in range(2):
                self.data.append(Node("redis", workdir, [
                    *auth, f"replicaof 127.0.0.1 {self.data[0].port}"]))
            for _ in range(3):
                self.sentinels.append(Node("sentinel", workdir, [
                    f"requirepass {SENTINEL_PASSWORD}",
                    f"sentinel sentinel-pass {SENTINEL_PASSWORD}",
                    f"sentinel monitor {MASTER} 127.0.0.1 {self.data[0].port} 2",
                    f"sentinel auth-pass {MASTER} {PASSWORD}",
                    f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}",
                    f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}",
                    f"sentinel parallel-syncs {MASTER} 1"]))
            self._until(DISCOVERY_BOUND_S, "Sentinels and replicas to find each other",
                        self._discovered)
        except BaseException:
            self.stop()
            raise

    @property
    def env(self) -> dict[str, str]:
        """How a hub process reaches the group."""
        return {"REDIS_SENTINELS": ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels),
                "REDIS_SENTINEL_MASTER": MASTER, "REDIS_PASSWORD": PASSWORD,
                "REDIS_SENTINEL_PASSWORD": SENTINEL_PASSWORD}

    @property
    def url(self) -> str:
        """The bus URL `config.Redis.sentinel_url` builds from `env`."""
        hosts = ",".join(f"127.0.0.1:{s.port}" for s in self.sentinels)
        return f"redis+sentinel://:{SENTINEL_PASSWORD}@{hosts}/{MASTER}"

    def _views(self) -> list[dict[str, object]]:
        views = []
        for sentinel in self.sentinels:
            if sentinel.alive:
                with sentinel.client() as client:
                    views.append(client.sentinel_master(MASTER))
        return views

    def _discovered(self) -> bool:
        return all(int(view["num-other-sentinels"]) == 2 and int(view["num-slaves"]) == 2
                   for view in self._views()) and len(self.replicas_in_sync()) == 2

    def primary(self) -> Node:
        """The node every live Sentinel names as primary (and which says it is one)."""
        ports = {int(view["port"]) for view in self._views()}
        if len(ports) != 1:
            raise LookupError(f"the Sentinels disagree: {sorted(ports)}")
        node = next(node for node in self.data if node.port in ports)
        with node.client() as client:
            if client.info("replication")["role"] != "master":
                raise LookupError(f"{node.port} is named primary but is not one yet")
        return node

    def replicas_in_sync(self) -> list[Node]:
        """Replicas of the current primary whose link is up."""
        primary = self.primary()
        found = []
        for node in self.data:
            if node is primary or not node.alive:
                continue
            with node.client() as client:
                info = client.info("replication")
            if info.get("master_port") == primary.port and info.get("master_link_status") == "up":
                found.append(node)
        return found

    def kill_primary(self) -> tuple[Node, Node, float]:
        """kill -9 the primary; wait until the Sentinels name another one that answers as
        primary. → (old, new, seconds from the kill to the promotion being visible)."""
        old = self.primary()
        old.kill()
        killed = time.monotonic()
        self._until(FAILOVER_BOUND_S, "a replica to be promoted", lambda: self._promoted(old))
        return old, self.primary(), time.monotonic() - killed

    def _promoted(self, old: Node) -> bool:
        try:
            return self.primary() is not old
        except (LookupError, redis.RedisError):
            return False

    def _until(self, bound_s: float, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + bound_s
        while True:
            try:
                if done():
                    return
            except (LookupError, redis.RedisError):
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"waited {bound_s}s for {what}")
            time.sleep(0.1)

    def wait_replica(self, node: Node, bound_s: float = FAILOVER_BOUND_S) -> None:
        """Until `node` (an old primary started again) replicates from the current primary."""
        self._until(bound_s, f"{node.port} to rejoin as a replica",
                    lambda: node in self.replicas_in_sync())

    def stop(self) -> None:
        for node in [*self.sentinels, *self.data]:
            node.stop()
