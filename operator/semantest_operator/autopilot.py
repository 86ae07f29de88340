"""Auto-pilot: gateway replicas that follow the hub's own load (`gateway.autoscaling.mode: load`).

An HPA on the hub's metrics would need a metrics adapter or KEDA the operator cannot assume, so
the operator runs the loop itself and behaves as an HPA does (docs/operator.md, "Auto-pilot"):
every `interval` it reads each ready gateway pod's open connections from its `GET /metrics`
(the series Prometheus scrapes), wants `ceil(connections / target per pod)` replicas, leaves a
change within 10 % alone, rises at once (at most doubling, or +4), and falls only to the highest
recommendation of the last `scaleDownStabilizationSeconds`. Before a fall it marks each pod's
`pod-deletion-cost` with its connections, so the ReplicaSet removes the emptiest (which then
drains). Replicas are set through the Deployment's scale subresource, as the HPA sets them.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import kopf
from prometheus_client.parser import text_string_to_metric_families

from semantest_operator import resources
from semantest_operator.apply import Kube

METRIC = "websocket_connections_active"
INTERVAL_S = 15.0
SCRAPE_TIMEOUT_S = 2.0
TOLERANCE = 0.1
MANAGER = "semantest-autopilot"
DELETION_COST = "controller.kubernetes.io/pod-deletion-cost"
COMPONENT = "gateway"
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Reading:
    """One look at a gateway Deployment: its pods, and the open connections of those read."""

    pods: int
    read: int
    connections: int
    per_pod: dict[str, int] = field(default_factory=dict)  # pod name -> its connections


def recommend(current: int, reading: Reading, target: float, low: int, high: int) -> int:
    """The HPA's rule on open connections. Pods not read (starting, not ready, not answering)
    count as empty when rising (no overshoot while new pods start) and forbid a fall."""
    if reading.pods == 0:
        return max(low, min(high, current))
    ratio = reading.connections / (reading.pods * target)
    if abs(ratio - 1) <= TOLERANCE:
        desired = current
    else:
        desired = math.ceil(reading.connections / target)
    if desired < current and reading.read < reading.pods:
        desired = current
    desired = min(desired, max(2 * current, current + 4))
    return max(low, min(high, desired))


class Window:
    """Recommendations of the last `seconds`: a fall goes only to their highest."""

    def __init__(self) -> None:
        self._seen: deque[tuple[float, int]] = deque()

    def stabilize(self, now: float, recommendation: int, seconds: float) -> int:
        self._seen.append((now, recommendation))
        while self._seen and self._seen[0][0] < now - seconds:
            self._seen.popleft()
        return max(value for _, value in self._seen)


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return bool(status.get("podIP")) and any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or [])


def _port(pod: Mapping[str, Any]) -> int:
    for container in pod["spec"]["containers"]:
        for port in container.get("ports") or []:
            if port.get("name") == "http":
                return int(port["containerPort"])
    return resources.HUB_PORT


def connections(text: str) -> int:
    """The open WebSocket connections a hub's /metrics reports (every series summed)."""
    return int(sum(sample.value for family in text_string_to_metric_families(text)
                   if family.name == METRIC for sample in family.samples))


class Autopilot:
    """The loop, for every SemantestCluster whose gateways are in load mode."""

    def __init__(self, kube: Kube, version: str, interval: float = INTERVAL_S) -> None:
        self._kube = kube
        self._version = version
        self._interval = interval
        self._followed: set[tuple[str, str]] = set()
        self._windows: dict[tuple[str, str], Window] = {}
        self._http: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None

    def follow(self, namespace: str, name: str, body: Mapping[str, Any]) -> None:
        """Called by every reconcile (a kopf handler): start or stop following the cluster, as
        its spec says. The loop starts with the first cluster to follow, from the handler, so
        that it inherits the handler's context, where kopf's Event posting lives."""
        key = (namespace, name)
        if resources.Cluster.of(body, self._version).autopiloted(COMPONENT):
            self._followed.add(key)
            if self._task is None or self._task.done():
                self._task = asyncio.create_task(self.run())
        else:
            self._followed.discard(key)
            self._windows.pop(key, None)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=SCRAPE_TIMEOUT_S)
        async with aiohttp.ClientSession(timeout=timeout) as self._http:
            while True:
                await asyncio.sleep(self._interval)
                for namespace, name in sorted(self._followed):
                    try:
                        await self.step(namespace, name)
                    except Exception:  # one cluster's trouble must not stop the others'
                        log.exception("[%s/%s] auto-pilot step failed", namespace, name)

    async def step(self, namespace: str, name: str) -> None:
        """Read the load, decide, scale, report."""
        body = await self._kube.get(resources.KIND, namespace, name)
        if body is None or body["metadata"].get("deletionTimestamp"):
            self._followed.discard((namespace, name))
            return
        cluster = resources.Cluster.of(body, self._version)
        if not cluster.autopiloted(COMPONENT):
            return
        scaling = cluster.spec[COMPONENT]["autoscaling"]
        deployment = await self._kube.get("Deployment", namespace, cluster.child(COMPONENT))
        if deployment is None:
            return  # the reconcile makes it
        current = int(deployment["spec"].get("replicas") or 0)
        reading = await self.read(namespace, resources.selector_string(cluster, COMPONENT))
        target = (cluster.spec[COMPONENT]["maxConnections"]
                  * scaling["targetConnectionsPercent"] / 100)
        low, high = scaling["minReplicas"], scaling["maxReplicas"]
        wanted = recommend(current, reading, target, low, high)
        window = self._windows.setdefault((namespace, name), Window())
        desired = window.stabilize(asyncio.get_running_loop().time(), wanted,
                                   scaling["scaleDownStabilizationSeconds"])
        desired = min(desired, high)
        reason = (f"{reading.connections} connections on {reading.read} of {reading.pods} pods, "
                  f"target {target:g} per pod")
        status: dict[str, Any] = {"metric": "connections", "current": reading.connections,
                                  "target": math.ceil(target), "desiredReplicas": desired,
                                  "reason": reason}
        if desired != current:
            if desired < current:
                await self.mark_deletion_costs(namespace, reading)
            await self._kube.scale("Deployment", namespace, cluster.child(COMPONENT), desired,
                                   MANAGER)
            status["lastScaleTime"] = _now()
            log.info("[%s/%s] gateways %d -> %d: %s", namespace, name, current, desired, reason)
            # what an HPA posts on its own scales, so `kubectl describe stc` tells the story
            kopf.event(body, type="Normal", reason="SuccessfulRescale",
                       message=f"New gateway size: {desired}; reason: {reason}")
        await self._kube.patch_status(resources.KIND, namespace, name,
                                      {COMPONENT: {"autoscaling": status}})

    async def read(self, namespace: str, selector: str) -> Reading:
        pods = [pod for pod in await self._kube.select("Pod", namespace, selector)
                if not pod["metadata"].get("deletionTimestamp")]
        ready = [pod for pod in pods if _ready(pod)]
        found = await asyncio.gather(*(self.scrape(pod) for pod in ready))
        per_pod = {pod["metadata"]["name"]: count
                   for pod, count in zip(ready, found, strict=True) if count is not None}
        return Reading(len(pods), len(per_pod), sum(per_pod.values()), per_pod)

    async def scrape(self, pod: Mapping[str, Any]) -> int | None:
        """The pod's open connections, or None when it does not answer."""
        assert self._http is not None
        url = f"http://{pod['status']['podIP']}:{_port(pod)}/metrics"
        try:
            async with self._http.get(url) as response:
                response.raise_for_status()
                return connections(await response.text())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            log.debug("cannot read %s: %s", url, exc)
            return None

    async def mark_deletion_costs(self, namespace: str, reading: Reading) -> None:
        """The ReplicaSet removes the pod with the lowest cost first: the emptiest gateway."""
        await asyncio.gather(*(
            self._kube.annotate("Pod", namespace, pod, {DELETION_COST: str(count)})
            for pod, count in reading.per_pod.items()))


def _now() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
