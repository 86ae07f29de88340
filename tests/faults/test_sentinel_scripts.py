"""The start scripts of the operator's Sentinel mode (semantest_operator/redis_sentinel.py), run
as the pods run them, with real redis-server processes (data nodes and Sentinels) on loopback ports.

No kubelet runs here, so the pods' only logic is tested this way: a fresh group makes pod 0 the
primary; a primary that comes back after a failover starts as a replica of the new one; a
Sentinel that comes back monitors the current primary. Host names are 127.0.0.1 (SELF_HOST),
each node on its own port, as pods differ by name.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from semantest_operator import redis_sentinel
from tests.conftest import free_port, wait_for_port

PASSWORD = "script-secret"
MASTER = "semantest"
BOUND_S = 30.0
PROMOTION_WAIT_S = 2


class ScriptPod:
    """One "pod": its script from the ConfigMap, its env, its own directory."""

    def __init__(self, script: Path, workdir: Path, env: dict[str, str]) -> None:
        self.port = int(env["PORT"])
        self.dir = workdir / f"pod-{self.port}"
        self.dir.mkdir()
        self.script, self.env = script, {**env, "DIR": str(self.dir)}
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self, listening: bool = True) -> None:
        """Run the script; with `listening`, until its server listens."""
        with (self.dir / "log").open("ab") as log:
            self.process = subprocess.Popen(
                ["sh", str(self.script)], stdout=log, stderr=subprocess.STDOUT,
                env={"PATH": "/usr/local/bin:/usr/bin:/bin", **self.env})
        if listening:
            wait_for_port(self.port, self.process)

    def listening(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 0.2):
            return True
        return False

    def kill(self) -> None:
        assert self.process is not None
        self.process.kill()
        self.process.wait(10)

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, password=PASSWORD, socket_timeout=2,
                           decode_responses=True)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.kill()


def until(what: str, done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + BOUND_S
    while time.monotonic() < deadline:
        try:
            if done():
                return
        except redis.RedisError:
            pass
        time.sleep(0.2)
    raise TimeoutError(f"waited {BOUND_S}s for {what}")


Group = tuple[list[ScriptPod], list[ScriptPod]]
"""Three data pods (pod 0 first), three Sentinels."""


@contextlib.contextmanager
def group(workdir: Path, down_after_ms: int) -> Iterator[Group]:
    for name, text in (("redis.sh", redis_sentinel.REDIS_SCRIPT),
                       ("sentinel.sh", redis_sentinel.SENTINEL_SCRIPT)):
        (workdir / name).write_text(text)
    data_ports = [free_port() for _ in range(3)]
    sentinel_ports = [free_port() for _ in range(3)]
    common = {"REDIS_PASSWORD": PASSWORD, "SELF_HOST": "127.0.0.1", "MASTER": MASTER,
              "SENTINELS": " ".join(f"127.0.0.1:{port}" for port in sentinel_ports),
              "FIRST": f"127.0.0.1:{data_ports[0]}", "PROMOTION_WAIT_S": str(PROMOTION_WAIT_S)}
    data: list[ScriptPod] = []
    sentinels: list[ScriptPod] = []
    try:
        for port in data_ports:
            data.append(ScriptPod(workdir / "redis.sh", workdir, {**common, "PORT": str(port)}))
        for port in sentinel_ports:
            sentinels.append(ScriptPod(workdir / "sentinel.sh", workdir, {
                **common, "PORT": str(port), "QUORUM": "2", "DOWN_AFTER_MS": str(down_after_ms),
                "FAILOVER_TIMEOUT_MS": "5000"}))
        yield data, sentinels
    finally:
        for pod in [*sentinels, *data]:
            pod.stop()


@pytest.fixture
def pods(tmp_path: Path) -> Iterator[Group]:
    with group(tmp_path, down_after_ms=1000) as made:
        yield made


@pytest.fixture
def slow_sentinels(tmp_path: Path) -> Iterator[Group]:
    """Sentinels that never call a primary down by themselves (10 min of silence first)."""
    with group(tmp_path, down_after_ms=600_000) as made:
        yield made


def named_primary(sentinels: list[ScriptPod]) -> int:
    """The primary's port every live Sentinel names (and that says it is one), else 0."""
    ports = set()
    for sentinel in sentinels:
        if sentinel.process is not None and sentinel.process.poll() is None:
            with sentinel.client() as client:
                ports.add(int(client.sentinel_get_master_addr_by_name(MASTER)[1]))
    return ports.pop() if len(ports) == 1 else 0


def replicas_of(primary: ScriptPod) -> int:
    with primary.client() as client:
        info = client.info("replication")
    online = [v for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)
              and v.get("state") == "online"]
    return len(online) if info["role"] == "master" else 0


def led_by_pod_0(data: list[ScriptPod], sentinels: list[ScriptPod]) -> ScriptPod:
    """Pod 0 once it leads two replicas, holding `k` on all three."""
    first = data[0]
    until("pod 0 to lead two replicas", lambda: replicas_of(first) == 2
          and named_primary(sentinels) == first.port)
    with first.client() as client:
        client.set("k", "v")
        assert client.wait(2, 2000) == 2
    return first


@pytest.mark.timeout(180)
def test_the_scripts_form_a_group_that_survives_failovers(
        pods: Group) -> None:
    data, sentinels = pods
    first = data[0]
    until("pod 0 to lead two replicas, watched by three Sentinels that know each other", lambda:
          replicas_of(first) == 2 and named_primary(sentinels) == first.port and all(
              int(s.client().sentinel_master(MASTER)["num-other-sentinels"]) == 2
              for s in sentinels))
    with first.client() as client:
        client.set("k", "v")
        assert client.wait(2, 2000) == 2
    first.kill()
    until("a replica to be promoted", lambda: named_primary(sentinels) not in (0, first.port))
    promoted = next(pod for pod in data if pod.port == named_primary(sentinels))
    first.start()  # the pod comes back: its script asks the Sentinels who leads now
    until("the old primary to follow the new one", lambda: replicas_of(promoted) == 2)
    with first.client() as client:
        assert client.info("replication")["role"] == "slave"
        assert client.get("k") == "v"
    sentinels[0].kill()
    sentinels[0].start()  # a fresh config file: it must monitor the current primary
    until("the restarted Sentinel to name the promoted primary",
          lambda: named_primary(sentinels) == promoted.port)


@pytest.mark.timeout(180)
def test_a_primary_back_before_the_sentinels_noticed_waits_and_follows(
        pods: Group) -> None:
    """A primary pod restarted at once (no volume: it comes back empty) is still named primary
    by the Sentinels: it must not serve as one, or the replicas would copy its empty data."""
    data, sentinels = pods
    first = led_by_pod_0(data, sentinels)
    first.kill()
    shutil.rmtree(first.dir / "appendonlydir", ignore_errors=True)  # as an emptyDir after a restart
    first.start()  # at once: the Sentinels still name it primary
    until("a replica to be promoted", lambda: named_primary(sentinels) not in (0, first.port))
    promoted = next(pod for pod in data if pod.port == named_primary(sentinels))
    until("the restarted pod to follow it", lambda: replicas_of(promoted) == 2)
    for pod in data:
        with pod.client() as client:
            assert client.get("k") == "v", pod.port


@pytest.mark.timeout(180)
def test_a_primary_back_empty_waits_while_the_sentinels_see_a_replica_up(
        slow_sentinels: Group) -> None:
    """Sentinels slower than the pod's PROMOTION_WAIT_S (an election lost, TILT mode): while
    they see a replica they can promote, the pod back empty keeps waiting, however long."""
    data, sentinels = slow_sentinels
    first = led_by_pod_0(data, sentinels)
    first.kill()
    shutil.rmtree(first.dir / "appendonlydir", ignore_errors=True)
    first.start(listening=False)
    time.sleep(3 * PROMOTION_WAIT_S + 3)  # the time it would have waited, and then some
    assert not first.listening(), "started as the primary the Sentinels still name, empty"
    assert named_primary(sentinels) == first.port
    assert "waiting for a promotion" in (first.dir / "log").read_text()
    with sentinels[0].client() as client:
        client.execute_command("SENTINEL", "FAILOVER", MASTER)  # the promotion, at last
    until("a replica to be promoted", lambda: named_primary(sentinels) not in (0, first.port))
    promoted = next(pod for pod in data if pod.port == named_primary(sentinels))
    until("the pod back to follow it", lambda: first.listening() and replicas_of(promoted) == 2)
    for pod in data:
        with pod.client() as client:
            assert client.get("k") == "v", pod.port


@pytest.mark.timeout(180)
def test_a_primary_back_with_no_replica_up_serves_its_own_data(slow_sentinels: Group) -> None:
    """Every data pod went: nothing better than what the primary kept on its volume, so after
    PROMOTION_WAIT_S it serves it as the primary the Sentinels still name."""
    data, sentinels = slow_sentinels
    first = led_by_pod_0(data, sentinels)
    for pod in data:
        pod.kill()
    first.start(listening=False)
    until("the pod to serve as primary", lambda: first.listening()
          and first.client().info("replication")["role"] == "master")
    with first.client() as client:
        assert client.get("k") == "v"
    assert "serving this pod's own data as the primary" in (first.dir / "log").read_text()
