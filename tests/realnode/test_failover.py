"""The failover guarantees, now in pods: under steady load through the gateway Service, a gateway
container and a router container are killed (SIGKILL, as a crash) and later the hub is upgraded
to a new image tag (a rolling update); clients reconnect by themselves, and every accepted command
ends exactly once (one run by an extension, one result, however often it is delivered).
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.chart.chart import CHART
from tests.conftest import JS
from tests.k8s.plane import wait_for

from .hub import LOAD_RUNS, TOUR, Hub, helm, installed, ready_pods
from .node import RealNode

LOAD = TOUR.with_name("load.mjs")
RELEASE = "failover"


@pytest.fixture(scope="module")
def hub(realnode: RealNode) -> Iterator[Hub]:
    with installed(realnode, RELEASE, {"cluster.spec.gateway.replicas": "2",
                                       "cluster.spec.router.replicas": "2",
                                       "cluster.spec.auth.replicas": "1"}) as made:
        yield made


def start_load(hub: Hub, seconds: int) -> subprocess.Popen[str]:
    options = {"url": hub.gateway_url(), "apiKey": hub.api_key(), "seconds": seconds,
               "clients": 4, "extensions": 2, "rate": 10, "drain": 90}
    return subprocess.Popen(["node", str(LOAD), json.dumps(options)], cwd=JS,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(load: subprocess.Popen[str], label: str) -> dict[str, Any]:
    out, err = load.communicate(timeout=300)
    assert load.returncode == 0, out + err
    seen = dict(json.loads(out.strip().splitlines()[-1]))
    LOAD_RUNS.append(
        f"{label}: sent={seen['sent']} accepted={seen['accepted']} ended={seen['ended']} "
        f"unacked={seen['unacked']} {seen['unackedSpan']} refused={len(seen['errors'])} "
        f"longest-without-accept={seen['longestWithoutAccept']:.1f}s "
        f"reconnects={seen['reconnects']} ran-twice={len(seen['ranTwice'])} "
        f"failed={len(seen['failed'])}")
    return seen


def assert_each_ended_once(seen: dict[str, Any], all_succeed: bool) -> None:
    """One result per accepted command; after a crash it may be an error the protocol names
    (EXTENSION_DISCONNECTED...), after a graceful rolling update every command succeeds."""
    # the client asks again (same id) when no ack came: in the end the hub accepted every one
    assert seen["accepted"] == seen["sent"], seen
    assert seen["missing"] == [], f"accepted commands that never ended: {seen}"
    assert seen["ended"] == seen["accepted"], seen
    assert seen["ranTwice"] == [], "commands an extension ran more than once"
    # delivered again after a re-send is fine, but it is the same one result
    assert seen["differing"] == [], "a command with two different results"
    if all_succeed:
        assert seen["failed"] == [], "commands that ended in an error"
    assert seen["errors"] == [], seen["errors"]


def kill_container(realnode: RealNode, pod: dict[str, Any]) -> None:
    """SIGKILL the pod's container through containerd: a crash, not a graceful stop."""
    container = pod["status"]["containerStatuses"][0]["containerID"].split("://", 1)[1]
    realnode.ctr("tasks", "kill", "--signal", "SIGKILL", container)


def restarted(hub: Hub, component: str, name: str) -> bool:
    pod = next(p for p in hub.pods(component) if p["metadata"]["name"] == name)
    return bool(pod["status"]["containerStatuses"][0]["restartCount"] >= 1
                and name in ready_pods([pod]))


def serving(hub: Hub, component: str) -> list[dict[str, Any]]:
    """The component's pods that are Ready and not on their way out."""
    ready = set(ready_pods(hub.pods(component)))
    return [p for p in hub.pods(component)
            if p["metadata"]["name"] in ready and not p["metadata"].get("deletionTimestamp")]


def test_killing_gateways_and_a_router_loses_no_command(realnode: RealNode, hub: Hub) -> None:
    """Each gateway in turn (so every client's socket is cut once), and a router."""
    for component in ("auth", "gateway", "router"):
        realnode.kubectl("rollout", "status", f"deployment/{RELEASE}-{component}", "-n",
                         RELEASE, "--timeout=240s", timeout=260)
    gateways, router = serving(hub, "gateway"), serving(hub, "router")[0]
    load = start_load(hub, seconds=120)
    time.sleep(10)
    kill_container(realnode, router)
    for gateway in gateways:
        kill_container(realnode, gateway)
        wait_for(lambda g=gateway: restarted(hub, "gateway", g["metadata"]["name"]), 120,
                 f"{gateway['metadata']['name']} to restart")
    seen = finish(load, "gateways and a router killed")
    assert seen["reconnects"] >= 6, "every socket reconnects once"
    assert_each_ended_once(seen, all_succeed=False)
    assert restarted(hub, "router", router["metadata"]["name"]), hub.describe()


def test_rolling_upgrade_to_a_new_tag_loses_no_command(realnode: RealNode, hub: Hub) -> None:
    repo = realnode.images["hub"].rsplit(":", 1)[0]
    new_tag = f"upgrade-{int(time.time())}"
    realnode.ctr("images", "tag", realnode.images["hub"], f"{repo}:{new_tag}")
    before = {p["metadata"]["name"] for p in hub.pods()}
    load = start_load(hub, seconds=60)
    time.sleep(10)
    helm(realnode, "upgrade", RELEASE, str(CHART), "-n", RELEASE, "--reuse-values",
         "--set", f"cluster.spec.image.tag={new_tag}", "--wait", "--timeout=5m")
    for component in ("auth", "gateway", "router"):
        realnode.kubectl("rollout", "status", f"deployment/{RELEASE}-{component}", "-n",
                         RELEASE, "--timeout=240s", timeout=260)
    seen = finish(load, "rolling upgrade")
    assert_each_ended_once(seen, all_succeed=True)
    hub.wait_ready()
    for component in ("auth", "gateway", "router"):
        pods = hub.pods(component)
        assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {
            f"{repo}:{new_tag}"}, component
        assert not {p["metadata"]["name"] for p in pods} & before


def test_gateways_follow_their_connections_and_a_scale_down_loses_no_command(
        realnode: RealNode, hub: Hub) -> None:
    """The auto-pilot on real pods: the operator (in its pod) reads each gateway pod's
    /metrics over the pod network and scales the gateways, under load."""

    def autopilot(percent: int) -> None:
        sets = {"maxConnections": "10", "autoscaling.enabled": "true",
                "autoscaling.mode": "load", "autoscaling.minReplicas": "1",
                "autoscaling.maxReplicas": "3", "autoscaling.scaleDownStabilizationSeconds": "10",
                "autoscaling.targetConnectionsPercent": str(percent)}
        helm(realnode, "upgrade", RELEASE, str(CHART), "-n", RELEASE, "--reuse-values",
             *[a for k, v in sets.items() for a in ("--set", f"cluster.spec.gateway.{k}={v}")],
             "--wait", "--timeout=5m")

    def gateways() -> int:
        return int(hub.deployments()["gateway"]["spec"]["replicas"])

    autopilot(percent=20)  # two connections per gateway
    wait_for(lambda: gateways() == 1, 180, "one gateway while nothing is connected")
    load = start_load(hub, seconds=120)  # 4 clients + 2 extensions: 6 connections
    try:
        wait_for(lambda: gateways() == 3, 120, "three gateways for six connections")
        autopilot(percent=40)  # four per gateway: one gateway too many, removed under load
        wait_for(lambda: gateways() == 2, 120, "two gateways for six connections")
        wait_for(lambda: len(serving(hub, "gateway")) == 2 and len(hub.pods("gateway")) == 2,
                 120, "the third gateway drained and gone")
    finally:
        seen = finish(load, "auto-pilot scale-down")
    assert_each_ended_once(seen, all_succeed=True)
    decided = hub.stc()["status"]["gateway"]["autoscaling"]
    assert decided["metric"] == "connections" and decided["target"] == 4, decided
    wait_for(lambda: gateways() == 1, 180, "one gateway again once the load is gone")
