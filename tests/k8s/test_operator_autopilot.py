"""The auto-pilot (`gateway.autoscaling.mode: load`) against the real API server.

No kubelet runs here, so the test plays it for the gateway Pods: each is marked Ready with a
loopback address of its own (127.0.0.N) where a real `semantest-server` listens on the pod's
port, and the operator reads that process's `GET /metrics`, as it reads a pod's in a cluster.
The load is real Socket.IO connections to those processes. The module operator reads load every
second (`--autopilot-interval=1`).
"""

# ruff: noqa: F811  (the fixtures imported from test_operator are parameters by name)
from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time
import urllib.request
from collections.abc import Coroutine, Iterator
from typing import Any

import pytest
import socketio

from tests.conftest import Hubs

from .plane import wait_for
from .test_operator import (  # noqa: F401  (fixtures are used by name)
    Hub,
    crds,
    hub,
    operator,
    operator_kubeconfig,
)

PORT = 3000  # the gateway container's port, where the operator reads /metrics
SPEC = {"gateway": {"maxConnections": 4, "autoscaling": {
    "enabled": True, "mode": "load", "minReplicas": 1, "maxReplicas": 3,
    "targetConnectionsPercent": 50, "scaleDownStabilizationSeconds": 4}}}  # 2 per pod


class Kubelet:
    """Plays the kubelet for gateway Pods: a real hub process per Pod, on 127.0.0.N:3000."""

    def __init__(self, hub: Hub, hubs: Hubs) -> None:
        self.hub, self.hubs = hub, hubs
        self.addresses: dict[str, str] = {}  # pod name -> its address
        self._next = 20

    def pods(self) -> list[dict[str, Any]]:
        selector = "app.kubernetes.io/instance=hub,app.kubernetes.io/component=gateway"
        return [pod for pod in self.hub.json("pods", "-l", selector)["items"]
                if not pod["metadata"].get("deletionTimestamp")]

    def run_all(self) -> None:
        """Every gateway Pod not yet running: start its process, then report it Ready."""
        for pod in self.pods():
            name = pod["metadata"]["name"]
            if name in self.addresses:
                continue
            self._next += 1
            address = f"127.0.0.{self._next}"
            self.hubs.start(env={"HOST": address}, port=PORT, wait=False,
                            config={"auth": {"enabled": False}})
            wait_for(lambda a=address: _serves(a), 30, f"a hub on {address}:{PORT}")
            now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            status = {"status": {"phase": "Running", "podIP": address, "podIPs": [{"ip": address}],
                                 "conditions": [{"type": t, "status": "True",
                                                 "lastTransitionTime": now}
                                                for t in ("PodScheduled", "Initialized",
                                                          "ContainersReady", "Ready")]}}
            self.hub.kubectl("patch", "pod", name, "--subresource=status", "--type=merge",
                             "-p", json.dumps(status))
            self.addresses[name] = address


def _serves(address: str) -> bool:
    try:
        with urllib.request.urlopen(f"http://{address}:{PORT}/health", timeout=1) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.fixture
def kubelet(hub: Hub, tmp_path: Any) -> Iterator[Kubelet]:
    hubs = Hubs(tmp_path)
    yield Kubelet(hub, hubs)
    hubs.stop_all()


def replicas(hub: Hub) -> int:
    return int(hub.get("deployment", "hub-gateway")["spec"]["replicas"])


def decided(hub: Hub) -> dict[str, Any]:
    return hub.cluster().get("status", {}).get("gateway", {}).get("autoscaling") or {}


class Connections:
    """Open Socket.IO connections, kept alive by an event loop in a thread of their own."""

    def __init__(self, url: str, count: int) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._clients = [socketio.AsyncClient(reconnection=False) for _ in range(count)]
        for client in self._clients:
            self._run(client.connect(url, transports=["websocket"], wait_timeout=10))

    def _run(self, work: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self._loop).result(30)

    def close(self) -> None:
        for client in self._clients:
            self._run(client.disconnect())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()


def test_gateway_replicas_follow_open_connections(hub: Hub, kubelet: Kubelet) -> None:
    hub.create(SPEC)
    hub.eventually(lambda: len(kubelet.pods()) == 1, "the first gateway Pod")
    assert hub.get("hpa", "hub-gateway") is None  # load mode: the operator scales, no HPA
    kubelet.run_all()
    status = hub.eventually(lambda: "current" in decided(hub) and decided(hub),
                            "the auto-pilot's first reading in status")
    assert (status["metric"], status["current"], status["target"]) == ("connections", 0, 2)
    assert status["desiredReplicas"] == 1 and replicas(hub) == 1

    # Five connections on the one gateway, two per pod wanted: three gateways, at once.
    (first,) = kubelet.pods()
    connections = Connections(f"http://{kubelet.addresses[first['metadata']['name']]}:{PORT}", 5)
    try:
        hub.eventually(lambda: replicas(hub) == 3, "three gateways for five connections")
        status = hub.eventually(lambda: decided(hub).get("desiredReplicas") == 3 and decided(hub),
                                "the decision in status")  # written just after the scale
        assert status["current"] == 5 and status["lastScaleTime"]
        rescaled = hub.eventually(lambda: hub.events("SuccessfulRescale"), "a rescale Event")
        assert rescaled[0]["message"].startswith("New gateway size: 3; reason: 5 connections")
    finally:
        connections.close()
    # The two new Pods are not Ready (no kubelet): no fall while they cannot be read ...
    hub.eventually(lambda: decided(hub).get("current") == 0, "the connections gone")
    time.sleep(6)  # longer than the 4 s window, with a reading every second
    assert replicas(hub) == 3
    # ... and once they run and report no connections, back to one after the window, each pod
    # marked with its connections first so that the ReplicaSet removes the emptiest.
    kubelet.run_all()
    hub.eventually(lambda: replicas(hub) == 1, "back to one gateway")
    costs = {pod["metadata"].get("annotations", {}).get(
        "controller.kubernetes.io/pod-deletion-cost") for pod in kubelet.pods()}
    assert costs == {"0"}


def test_mode_load_is_refused_for_routers_and_auth(hub: Hub) -> None:
    for component in ("router", "auth"):
        body = {"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
                "metadata": {"name": f"bad-{component}"},
                "spec": {component: {"autoscaling": {"enabled": True, "mode": "load"}}}}
        refused = hub.plane.kubectl("apply", "-n", hub.ns, "-f", "-", input=json.dumps(body),
                                    check=False)
        assert refused.returncode != 0
        assert f"spec.{component}.autoscaling.mode" in refused.stderr
        assert "gateway only" in refused.stderr


def test_load_settings_out_of_range_are_refused(hub: Hub) -> None:
    for field, value in (("targetConnectionsPercent", 0), ("targetConnectionsPercent", 101),
                         ("scaleDownStabilizationSeconds", -1),
                         ("scaleDownStabilizationSeconds", 3601)):
        body = {"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
                "metadata": {"name": "bad-range"},
                "spec": {"gateway": {"autoscaling": {"enabled": True, "mode": "load",
                                                     field: value}}}}
        refused = hub.plane.kubectl("apply", "-n", hub.ns, "-f", "-", input=json.dumps(body),
                                    check=False)
        assert refused.returncode != 0, (field, value)
        assert f"spec.gateway.autoscaling.{field}" in refused.stderr, refused.stderr
