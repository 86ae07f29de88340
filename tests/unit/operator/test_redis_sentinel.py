"""`spec.redis.managed.mode: sentinel` and external Sentinels: the children, the hub's config and
env, and the status the operator reads from live Sentinels (real processes)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from semantest import config as hub_config
from semantest_operator import redis_sentinel, resources
from tests.faults.sentinel import MASTER, SENTINEL_PASSWORD, SentinelGroup

from .conftest import Make
from .specs import by_kind, container, env

SENTINEL = {"redis": {"managed": {"mode": "sentinel"}}}


def test_sentinel_mode_runs_three_redis_and_three_sentinels(make: Make) -> None:
    children = by_kind(resources.desired(make(SENTINEL)))
    data, sentinels = children["StatefulSet", "hub-redis"], children["StatefulSet",
                                                                      "hub-redis-sentinel"]
    assert data["spec"]["replicas"] == 3 and sentinels["spec"]["replicas"] == 3
    for workload, component in ((data, "redis"), (sentinels, "redis-sentinel")):
        pod = workload["spec"]["template"]["spec"]
        term = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        assert term[0]["podAffinityTerm"]["labelSelector"]["matchLabels"][
            "app.kubernetes.io/component"] == component
        assert children["PodDisruptionBudget", f"hub-{component}"]["spec"]["maxUnavailable"] == 1
        service = children["Service", f"hub-{component}"]["spec"]
        assert service["clusterIP"] == "None" and service["publishNotReadyAddresses"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert env(workload)["REDIS_PASSWORD"] == {
            "secretKeyRef": {"name": "hub-redis", "key": "password"}}
    assert container(data)["command"] == ["/scripts/redis.sh"]
    assert env(sentinels)["QUORUM"] == "2"
    assert env(data)["FIRST"] == "hub-redis-0.hub-redis.team.svc:6379"
    assert data["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"] == {
        "storage": "1Gi"}  # persistence as in standalone mode
    assert set(children["ConfigMap", "hub-redis-scripts"]["data"]) == {"redis.sh", "sentinel.sh"}


def test_more_sentinels_make_a_larger_quorum_and_storage_off_is_an_empty_dir(make: Make) -> None:
    cluster = make({"redis": {"managed": {"mode": "sentinel", "replicas": 5, "sentinels": 5,
                                          "storage": {"enabled": False}}}})
    children = by_kind(resources.desired(cluster))
    data = children["StatefulSet", "hub-redis"]
    assert data["spec"]["replicas"] == 5 and "volumeClaimTemplates" not in data["spec"]
    assert {"name": "data", "emptyDir": {}} in data["spec"]["template"]["spec"]["volumes"]
    assert env(children["StatefulSet", "hub-redis-sentinel"])["QUORUM"] == "3"


def test_standalone_stays_as_it_was(make: Make) -> None:
    children = by_kind(resources.desired(make()))
    assert ("StatefulSet", "hub-redis-sentinel") not in children
    assert children["StatefulSet", "hub-redis"]["spec"]["replicas"] == 1
    assert "REDIS_SENTINEL_PASSWORD" not in env(children["Deployment", "hub-router"])


def test_the_hub_finds_the_managed_primary_through_the_sentinels(make: Make,
                                                                 tmp_path: Path) -> None:
    cluster = make(SENTINEL)
    router = by_kind(resources.desired(cluster))["Deployment", "hub-router"]
    assert env(router)["REDIS_SENTINEL_PASSWORD"] == env(router)["REDIS_PASSWORD"]
    path = tmp_path / "config.json"
    path.write_text(resources.config_map(cluster)["data"]["config.json"])
    settings = hub_config.load_settings({"CONFIG_FILE": str(path)})
    assert settings.redis.url is None and settings.redis.sentinel_master == "semantest"
    assert settings.redis.sentinels == [
        f"hub-redis-sentinel-{i}.hub-redis-sentinel.team.svc:26379" for i in range(3)]


def test_an_external_redis_may_be_named_by_its_sentinels(make: Make, tmp_path: Path) -> None:
    cluster = make({"redis": {"managed": {"enabled": False}, "external": {
        "sentinels": ["s1.example:26379", "s2.example:26379"], "masterName": "prod",
        "passwordSecretRef": {"name": "redis-credentials"},
        "sentinelPasswordSecretRef": {"name": "sentinel-credentials", "key": "pw"}}}})
    children = by_kind(resources.desired(cluster))
    assert not [name for kind, name in children if "redis" in name]
    assert env(children["Deployment", "hub-gateway"])["REDIS_SENTINEL_PASSWORD"] == {
        "secretKeyRef": {"name": "sentinel-credentials", "key": "pw"}}
    assert resources.SecretRef("sentinel-credentials", "pw") in resources.user_refs(cluster)
    config = json.loads(resources.config_map(cluster)["data"]["config.json"])["redis"]
    assert config == {"sentinels": ["s1.example:26379", "s2.example:26379"],
                      "sentinelMaster": "prod", "keyPrefix": "semantest:"}


@pytest.fixture(scope="module")
def group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    made = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    yield made
    made.stop()


async def test_status_names_the_primary_and_each_replica(group: SentinelGroup) -> None:
    addresses = [f"127.0.0.1:{s.port}" for s in group.sentinels]
    view = await redis_sentinel.observe(["no-such-host.invalid:1", *addresses], MASTER,
                                        SENTINEL_PASSWORD)
    assert view["primary"] == f"127.0.0.1:{group.primary().port}"
    assert view["sentinelsAnswering"] == 3
    assert view["replicaStates"] == sorted(
        ({"address": f"127.0.0.1:{node.port}", "state": "online"} for node in group.data[1:]),
        key=lambda replica: replica["address"])
    group.data[2].kill()
    await _until_down(addresses, f"127.0.0.1:{group.data[2].port}")


async def _until_down(addresses: list[str], replica: str) -> None:
    for _ in range(100):  # a Sentinel calls a replica down after DOWN_AFTER_MS (1 s)
        view = await redis_sentinel.observe(addresses, MASTER, SENTINEL_PASSWORD)
        if {"address": replica, "state": "down"} in view["replicaStates"]:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{replica} never reported down: {view}")


async def test_no_sentinel_answering_says_so() -> None:
    view = await redis_sentinel.observe(["no-such-host.invalid:26379"], MASTER, None)
    assert view == {"primary": "", "replicaStates": [], "sentinelsAnswering": 0}
