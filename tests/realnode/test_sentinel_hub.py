"""A hub whose Redis is the operator's Sentinel group (`redis.managed.mode: sentinel`: three
Redis pods and three Sentinels) on the real node: the primary pod is deleted under steady load
through the gateway Service, the Sentinels promote a replica, the hub finds it, and every
accepted command still ends exactly once.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.k8s.plane import wait_for

from .hub import LOAD_RUNS, Hub, installed
from .node import RealNode
from .test_failover import assert_each_ended_once, finish, start_load

RELEASE = "sentinel"


@pytest.fixture(scope="module")
def hub(realnode: RealNode) -> Iterator[Hub]:
    sets = {"cluster.spec.redis.managed.mode": "sentinel", "cluster.spec.gateway.replicas": "2",
            "cluster.spec.router.replicas": "1", "cluster.spec.auth.replicas": "1"}
    with installed(realnode, RELEASE, sets, timeout_s=480) as made:  # six Redis pods too
        yield made


def primary(hub: Hub) -> str:
    """The pod the Sentinels name primary, as the operator reports it (`host:port`, the host
    being the pod's stable DNS name)."""
    return str((hub.stc()["status"].get("redis") or {}).get("primary") or "").split(".")[0]


def group_logs(realnode: RealNode, deleted: str) -> str:
    """What each Sentinel said (elections, promotions, TILT) and what the pod that replaced the
    deleted primary did (waited, followed), for a failure's message."""
    pods = [f"{RELEASE}-redis-sentinel-{i}" for i in range(3)] + [deleted]
    return "\n".join(f"--- {pod}\n" + realnode.kubectl("logs", pod, "-n", RELEASE, "--tail=60",
                                                       check=False).stdout for pod in pods)


@pytest.mark.timeout(1800)  # the first test of a run also starts the node; six Redis pods here
def test_deleting_the_primary_pod_under_load_loses_no_command(realnode: RealNode,
                                                              hub: Hub) -> None:
    old = primary(hub)
    assert old.startswith(f"{RELEASE}-redis-"), hub.stc()["status"].get("redis")
    # both replicas in sync first: until then every acknowledged step is refused (no replica
    # confirms it), which is the documented guarantee, not what this test is about
    wait_for(lambda: [r["state"] for r in hub.stc()["status"]["redis"]["replicaStates"]]
             == ["online", "online"], 120, "both replicas online")
    load = start_load(hub, seconds=90)
    time.sleep(10)
    realnode.kubectl("delete", "pod", old, "-n", RELEASE, "--wait=false")
    deleted = time.monotonic()
    try:
        wait_for(lambda: primary(hub) not in ("", old), 180, "a replica promoted")
        LOAD_RUNS.append(f"Sentinel primary pod deleted: a replica promoted and reported "
                         f"{time.monotonic() - deleted:.1f} s after the delete")
    finally:
        seen = finish(load, "Sentinel primary pod deleted")
        logs = group_logs(realnode, old)
    try:
        assert_each_ended_once(seen, all_succeed=False)
    except AssertionError as e:
        raise AssertionError(f"{e}\nthe Redis group's logs:\n{logs}") from e
    hub.wait_ready(timeout=300)  # the deleted pod is back, as a replica
    assert primary(hub) != old
    assert hub.tour()["result"]["success"] is True
