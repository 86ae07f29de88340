"""`spec.redis.managed.mode: sentinel` and external Sentinels on a real API server.

The CRD's rules refuse nonsense (each message names its field), and the operator builds the
Sentinel group and points the hub at it. No kubelet runs here: the pods stay Pending (or are
marked Ready by the test, as tests/k8s/test_operator.py does), so nothing answers as a Sentinel
and the status says so; the Sentinel group itself is tested with real processes in
tests/faults/test_sentinel_scripts.py and tests/unit/operator/test_redis_sentinel.py.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from .plane import ControlPlane
from .test_operator import (  # noqa: F401  (fixtures)
    Hub,
    crds,
    hub,
    operator,
    operator_kubeconfig,
    server_dry_run,
)

SENTINEL = {"redis": {"managed": {"mode": "sentinel"}}}
EXTERNAL = {"redis": {"managed": {"enabled": False}, "external": {
    "sentinels": ["s1.example:26379", "[fd00::2]:26379"], "masterName": "prod"}}}


@pytest.mark.parametrize(
    ("spec", "field", "message"),
    [
        ({"redis": {"managed": {"replicas": 3}}}, "spec.redis.managed.replicas",
         "mode standalone runs exactly one Redis"),
        ({"redis": {"managed": {"mode": "sentinel", "replicas": 1}}},
         "spec.redis.managed.replicas", "mode sentinel needs at least 3 Redis pods"),
        ({"redis": {"managed": {"mode": "sentinel", "sentinels": 4}}},
         "spec.redis.managed.sentinels", "an odd number (3, 5 or 7)"),
        ({"redis": {"managed": {"mode": "sentinel", "sentinels": 1}}},
         "spec.redis.managed.sentinels", "greater than or equal to 3"),
        ({"redis": {"managed": {"sentinels": 3}}}, "spec.redis.managed.sentinels",
         "for mode sentinel only"),
        ({"redis": {"managed": {"mode": "cluster"}}}, "spec.redis.managed.mode",
         "Unsupported value"),
        ({"redis": {"managed": {"enabled": False}, "external": {
            "url": "redis://r:6379", "sentinels": ["s:26379"], "masterName": "m"}}},
         "spec.redis.external.url", "names either url or sentinels"),
        ({"redis": {"managed": {"enabled": False}, "external": {}}},
         "spec.redis.external.url", "names either url or sentinels"),
        ({"redis": {"managed": {"enabled": False}, "external": {"sentinels": ["s:26379"]}}},
         "spec.redis.external.masterName", "sentinels and masterName go together"),
        ({"redis": {"managed": {"enabled": False}, "external": {
            "url": "redis://r:6379", "sentinelPasswordSecretRef": {"name": "s"}}}},
         "spec.redis.external.sentinelPasswordSecretRef", "needs sentinels"),
        ({"redis": {"managed": {"enabled": False}, "external": {
            "sentinels": ["no-port"], "masterName": "m"}}},
         "spec.redis.external.sentinels[0]", "should match"),
    ],
)
def test_nonsense_is_refused_naming_the_field(
    k8s_plane: ControlPlane, crds: None, spec: dict[str, Any], field: str,  # noqa: F811
    message: str
) -> None:
    error = server_dry_run(k8s_plane, "bad", spec)
    assert message in error and field in error, error or "accepted"


def test_sentinel_specs_are_accepted(k8s_plane: ControlPlane, crds: None) -> None:  # noqa: F811
    assert server_dry_run(k8s_plane, "sentinel", SENTINEL) == ""
    bigger = {"redis": {"managed": {"mode": "sentinel", "replicas": 5, "sentinels": 5}}}
    assert server_dry_run(k8s_plane, "bigger", bigger) == ""
    assert server_dry_run(k8s_plane, "external", EXTERNAL) == ""


def test_sentinel_mode_builds_the_group_and_points_the_hub_at_it(hub: Hub) -> None:  # noqa: F811
    hub.create(SENTINEL)
    wanted = {"StatefulSet/hub-redis", "StatefulSet/hub-redis-sentinel", "Service/hub-redis",
              "Service/hub-redis-sentinel", "PodDisruptionBudget/hub-redis",
              "PodDisruptionBudget/hub-redis-sentinel", "ConfigMap/hub-redis-scripts"}
    children = hub.eventually(lambda: (c := hub.children()) and set(c) >= wanted and c,
                              "the Sentinel group")
    assert children["StatefulSet/hub-redis"]["spec"]["replicas"] == 3
    assert children["StatefulSet/hub-redis-sentinel"]["spec"]["replicas"] == 3
    config = json.loads(children["ConfigMap/hub-config"]["data"]["config.json"])["redis"]
    assert config["sentinelMaster"] == "semantest" and "url" not in config
    assert config["sentinels"][0] == f"hub-redis-sentinel-0.hub-redis-sentinel.{hub.ns}.svc:26379"

    def ready() -> dict[str, Any] | None:
        hub.play_kubelet()
        return hub.condition("Ready").get("status") == "True" and hub.cluster()["status"]

    status = hub.eventually(ready, "Ready=True once every Redis and Sentinel pod is ready")
    assert status["redis"]["readyReplicas"] == 3
    assert status["redis"]["sentinelsAnswering"] == 0  # no process behind the pods here
    assert status["redis"]["primary"] == ""
    refused = hub.plane.kubectl("patch", "semantestcluster", "hub", "-n", hub.ns,
                                "--type=merge", "-p", json.dumps(
                                    {"spec": {"redis": {"managed": {"mode": "standalone"}}}}),
                                check=False)
    assert "redis.managed.mode cannot be changed after creation" in refused.stderr
    assert hub.cluster()["spec"]["redis"]["managed"]["mode"] == "sentinel"


def test_external_sentinels_reach_the_hub_config(hub: Hub) -> None:  # noqa: F811
    hub.create(EXTERNAL)
    children = hub.eventually(lambda: (c := hub.children()) and "ConfigMap/hub-config" in c and c,
                              "the config")
    config = json.loads(children["ConfigMap/hub-config"]["data"]["config.json"])["redis"]
    assert config == {"sentinels": EXTERNAL["redis"]["external"]["sentinels"],
                      "sentinelMaster": "prod", "keyPrefix": "semantest:"}
    assert not [key for key in children if key.startswith("StatefulSet/")]
