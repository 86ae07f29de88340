"""Redis with Sentinel failover: `spec.redis.managed.mode: sentinel`, or Sentinels an
external Redis names (`spec.redis.external.sentinels`).

The managed group is two StatefulSets: `<cluster>-redis` (3 data pods by default: a primary
and its replicas, append-only persistence as in standalone mode) and `<cluster>-redis-sentinel`
(3 Sentinels, quorum 2), each behind a headless Service that publishes pods before they are
ready (peers must find each other to become ready), spread over nodes by preferred
anti-affinity, and kept up by a PodDisruptionBudget of one. Data pods and Sentinels share the
generated password. Every pod starts with a script from `<cluster>-redis-scripts`: it asks the
Sentinels which pod is primary, and only when none answers (a fresh group) takes pod 0.

Sentinels announce host names (the pods' stable DNS names), never pod IPs, so a rescheduled
pod keeps its identity. The hub is configured with the Sentinels' names
(`redis.sentinels`, `redis.sentinelMaster`) instead of `redis.url`.

This module is imported by resources.py (the hooks) and imports it back for the shared names;
both only use each other's functions at call time.
"""

from __future__ import annotations

import base64
from typing import TYPE_CHECKING, Any

from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from semantest_operator import resources as r

if TYPE_CHECKING:
    from semantest_operator.apply import Kube

SENTINEL_PORT = 26379
MASTER = "semantest"
"""The name the managed Sentinels monitor the primary under."""
DEFAULT_DATA_PODS = 3
DEFAULT_SENTINELS = 3
DOWN_AFTER_MS = 5000
"""Silence after which a Sentinel calls the primary down (a pod restart takes longer)."""
FAILOVER_TIMEOUT_MS = 60000
OBSERVE_TIMEOUT_S = 1.0
PROMOTION_WAIT_S = 2 * DOWN_AFTER_MS // 1000 + 10
"""How long a restarted data pod the Sentinels still name primary waits for them to promote a
replica (they call it down after DOWN_AFTER_MS, then elect and promote) before it serves its own
data, when they see no replica up; while they see one, it waits as long as they take."""

# The scripts read: REDIS_PASSWORD, SELF_HOST (default `$(hostname).$DOMAIN`), PORT, SENTINELS
# ("host:port ..."), FIRST ("host:port": the primary of a fresh group), MASTER, DIR; the
# Sentinel's also QUORUM, DOWN_AFTER_MS, FAILOVER_TIMEOUT_MS. tests/faults/test_sentinel_scripts.py
# runs them against real redis-server processes (a Sentinel is `redis-server --sentinel`, which
# every Redis image has; some lack the `redis-sentinel` name).
_ASK_SENTINELS = r"""
ask_sentinel() {  # ask_sentinel HOST:PORT SUBCOMMAND: its answer about $MASTER, nothing if silent
  timeout 3 redis-cli -h "${1%:*}" -p "${1##*:}" -a "$REDIS_PASSWORD" --no-auth-warning \
    sentinel "$2" "$MASTER" 2>/dev/null || true
}
ask_sentinels() {  # prints "host port" of the primary the first answering Sentinel names
  for sentinel in $SENTINELS; do
    [ "$sentinel" = "$SELF_HOST:$PORT" ] && continue
    answer="$(ask_sentinel "$sentinel" get-master-addr-by-name | tr '\n' ' ')"
    case "$answer" in *[!\ ]\ [0-9]*) echo "$answer"; return ;; esac
  done
  echo "${FIRST%:*} ${FIRST##*:} first"  # no Sentinel answered: a fresh group
}
"""
_REPLICAS_UP = r"""
replicas_up() {  # prints how many replicas the first answering Sentinel sees up, else nothing
  for sentinel in $SENTINELS; do
    [ "$sentinel" = "$SELF_HOST:$PORT" ] && continue
    flags="$(ask_sentinel "$sentinel" replicas)"
    [ -n "$flags" ] || continue
    echo "$flags" | awk 'previous == "flags" && $0 == "slave" { up++ } { previous = $0 }
                         END { print up + 0 }'
    return
  done
}
"""
REDIS_SCRIPT = r"""#!/bin/sh
# A data pod: the primary the Sentinels name, or its replica; pod 0 on a fresh group.
set -eu
SELF_HOST="${SELF_HOST:-$(hostname).$DOMAIN}"
""" + _ASK_SENTINELS + _REPLICAS_UP + r"""
set -- $(ask_sentinels)
# Named primary by Sentinels that have not yet promoted a replica: starting as primary would
# serve what this pod has (nothing without a volume, the last second's writes missing with one)
# and have the replicas copy it. Wait (not answering) for them to promote one, as long as they
# see a replica up; only when none is, after PROMOTION_WAIT_S, is this pod's data the best left.
waited=0
while [ "$1" = "$SELF_HOST" ] && [ "$2" = "$PORT" ] && [ "${3:-}" != first ]; do
  if [ "$waited" = 0 ]; then echo "named primary by the Sentinels: waiting for a promotion"; fi
  if [ "$waited" -ge "${PROMOTION_WAIT_S:-20}" ] && [ "$(replicas_up)" = 0 ]; then
    echo "no replica up after ${waited}s: serving this pod's own data as the primary"
    break
  fi
  sleep 1
  waited=$((waited + 1))
  set -- $(ask_sentinels)
done
replicaof=""
if [ "$1" != "$SELF_HOST" ] || [ "$2" != "$PORT" ]; then
  replicaof="--replicaof $1 $2"
  echo "replica of $1:$2"
fi
exec redis-server --port "$PORT" --requirepass "$REDIS_PASSWORD" \
  --masterauth "$REDIS_PASSWORD" --replica-announce-ip "$SELF_HOST" \
  --replica-announce-port "$PORT" --appendonly yes --dir "$DIR" $replicaof
"""
SENTINEL_SCRIPT = r"""#!/bin/sh
# A Sentinel: monitors the primary its peers name (pod 0 on a fresh group); a fresh config
# file each start, in its own writable directory (a Sentinel rewrites it).
set -eu
SELF_HOST="${SELF_HOST:-$(hostname).$DOMAIN}"
""" + _ASK_SENTINELS + r"""
set -- $(ask_sentinels)
cat > "$DIR/sentinel.conf" <<EOF
port $PORT
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip $SELF_HOST
sentinel announce-port $PORT
requirepass $REDIS_PASSWORD
sentinel sentinel-pass $REDIS_PASSWORD
sentinel monitor $MASTER $1 $2 $QUORUM
sentinel auth-pass $MASTER $REDIS_PASSWORD
sentinel down-after-milliseconds $MASTER $DOWN_AFTER_MS
sentinel failover-timeout $MASTER $FAILOVER_TIMEOUT_MS
sentinel parallel-syncs $MASTER 1
EOF
exec redis-server "$DIR/sentinel.conf" --sentinel
"""


def _managed(cluster: r.Cluster) -> dict[str, Any]:
    return dict(cluster.spec["redis"]["managed"])


def enabled(cluster: r.Cluster) -> bool:
    """The operator runs Redis with Sentinels for this cluster."""
    return cluster.managed_redis and _managed(cluster).get("mode", "standalone") == "sentinel"


def data_pods(cluster: r.Cluster) -> int:
    return int(_managed(cluster).get("replicas") or DEFAULT_DATA_PODS)


def sentinel_pods(cluster: r.Cluster) -> int:
    return int(_managed(cluster).get("sentinels") or DEFAULT_SENTINELS)


def _domain(cluster: r.Cluster, service: str) -> str:
    return f"{service}.{cluster.namespace}.svc"


def sentinel_addresses(cluster: r.Cluster) -> list[str]:
    """Each managed Sentinel's stable name and port."""
    service = cluster.child("redis-sentinel")
    return [f"{service}-{i}.{_domain(cluster, service)}:{SENTINEL_PORT}"
            for i in range(sentinel_pods(cluster))]


def hub_redis(cluster: r.Cluster) -> dict[str, Any]:
    """The keys of the hub's `redis` config section that say where Redis is."""
    if enabled(cluster):
        return {"sentinels": sentinel_addresses(cluster), "sentinelMaster": MASTER}
    external = cluster.spec["redis"].get("external") or {}
    if not cluster.managed_redis and external.get("sentinels"):
        return {"sentinels": list(external["sentinels"]), "sentinelMaster": external["masterName"]}
    return {"url": cluster.redis_url}


def sentinel_password_ref(cluster: r.Cluster) -> r.SecretRef | None:
    """What the hub sends to the Sentinels: the managed group's password, or the one an
    external group names (none: its Sentinels take no password)."""
    if enabled(cluster):
        return r.managed_redis_password(cluster)
    if cluster.managed_redis:
        return None
    ref = (cluster.spec["redis"].get("external") or {}).get("sentinelPasswordSecretRef")
    return r.SecretRef(ref["name"], ref.get("key") or "password") if ref else None


# ---- the managed group ----------------------------------------------------------------------


def children(cluster: r.Cluster) -> list[r.Manifest]:
    """The managed Redis of either mode, in apply order (standalone: resources.py's)."""
    if not cluster.managed_redis:
        return []
    if not enabled(cluster):
        return [r.redis_service(cluster), r.redis_statefulset(cluster)]
    return [scripts(cluster),
            _headless(cluster, "redis", r.REDIS_PORT), _data_statefulset(cluster),
            _headless(cluster, "redis-sentinel", SENTINEL_PORT), _sentinel_statefulset(cluster),
            r.disruption_budget(cluster, "redis"), r.disruption_budget(cluster, "redis-sentinel")]


def scripts(cluster: r.Cluster) -> r.Manifest:
    return {"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": r._meta(cluster, cluster.child("redis-scripts"), "redis"),
            "data": {"redis.sh": REDIS_SCRIPT, "sentinel.sh": SENTINEL_SCRIPT}}


def _headless(cluster: r.Cluster, component: str, port: int) -> r.Manifest:
    """Governs a StatefulSet's pod names; publishes them before they are ready."""
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": r._meta(cluster, cluster.child(component), component),
            "spec": {"clusterIP": "None", "publishNotReadyAddresses": True,
                     "selector": r.selector(cluster, component),
                     "ports": [{"name": "redis", "port": port, "targetPort": "redis",
                                "protocol": "TCP"}]}}


def _script_env(cluster: r.Cluster, component: str, port: int) -> list[dict[str, Any]]:
    first = f"{cluster.child('redis')}-0.{_domain(cluster, cluster.child('redis'))}"
    return [
        *r._secret_env("REDIS_PASSWORD", r.managed_redis_password(cluster)),
        {"name": "DOMAIN", "value": _domain(cluster, cluster.child(component))},
        {"name": "PORT", "value": str(port)},
        {"name": "SENTINELS", "value": " ".join(sentinel_addresses(cluster))},
        {"name": "FIRST", "value": f"{first}:{r.REDIS_PORT}"},
        {"name": "MASTER", "value": MASTER},
    ]


def _statefulset(cluster: r.Cluster, component: str, replicas: int,
                 container: dict[str, Any], volumes: list[dict[str, Any]]) -> r.Manifest:
    ping = (f'redis-cli -p {container["ports"][0]["containerPort"]} -a "$REDIS_PASSWORD" '
            "--no-auth-warning ping | grep -q PONG")
    container = {
        "image": _managed(cluster)["image"], "imagePullPolicy": "IfNotPresent",
        # the data script may wait for a promotion first; a restart asks the Sentinels again
        "startupProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 2,
                         "failureThreshold": 30},
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10},
        "readinessProbe": {"exec": {"command": ["sh", "-c", ping]}, "periodSeconds": 5},
        "securityContext": r._CONTAINER_SECURITY, **container}
    pod = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": r._pod_security(r.REDIS_UID),
        "affinity": {"podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 100, "podAffinityTerm": {
                "topologyKey": "kubernetes.io/hostname",
                "labelSelector": {"matchLabels": r.selector(cluster, component)}}}]}},
        "containers": [container],
        "volumes": [{"name": "scripts", "configMap": {"name": cluster.child("redis-scripts"),
                                                      "defaultMode": 0o555}},
                    {"name": "tmp", "emptyDir": {}}, *volumes],
    }
    return {"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": r._meta(cluster, cluster.child(component), component),
            "spec": {"replicas": replicas, "serviceName": cluster.child(component),
                     "podManagementPolicy": "Parallel",
                     "selector": {"matchLabels": r.selector(cluster, component)},
                     "template": {"metadata": {"labels": r.labels(cluster, component),
                                               "annotations": {r.CONFIG_HASH: r.digest(
                                                   REDIS_SCRIPT + SENTINEL_SCRIPT)}},
                                  "spec": pod}}}


def _mounts(data: str) -> list[dict[str, Any]]:
    return [{"name": "scripts", "mountPath": "/scripts", "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"}, {"name": data, "mountPath": f"/{data}"}]


def _data_statefulset(cluster: r.Cluster) -> r.Manifest:
    """The data pods: persistence exactly as the standalone Redis (storage settings)."""
    managed = _managed(cluster)
    storage = managed["storage"]
    container = {
        "name": "redis", "command": ["/scripts/redis.sh"],
        "env": [*_script_env(cluster, "redis", r.REDIS_PORT), {"name": "DIR", "value": "/data"},
                {"name": "PROMOTION_WAIT_S", "value": str(PROMOTION_WAIT_S)}],
        "ports": [{"name": "redis", "containerPort": r.REDIS_PORT, "protocol": "TCP"}],
        "resources": managed["resources"], "volumeMounts": _mounts("data")}
    volumes = [] if storage["enabled"] else [{"name": "data", "emptyDir": {}}]
    manifest = _statefulset(cluster, "redis", data_pods(cluster), container, volumes)
    if storage["enabled"]:  # the standalone builder's claim, unchanged
        manifest["spec"]["volumeClaimTemplates"] = (
            r.redis_statefulset(cluster)["spec"]["volumeClaimTemplates"])
    return manifest


def _sentinel_statefulset(cluster: r.Cluster) -> r.Manifest:
    container = {
        "name": "sentinel", "command": ["/scripts/sentinel.sh"],
        "env": [*_script_env(cluster, "redis-sentinel", SENTINEL_PORT),
                {"name": "DIR", "value": "/sentinel"},
                {"name": "QUORUM", "value": str(sentinel_pods(cluster) // 2 + 1)},
                {"name": "DOWN_AFTER_MS", "value": str(DOWN_AFTER_MS)},
                {"name": "FAILOVER_TIMEOUT_MS", "value": str(FAILOVER_TIMEOUT_MS)}],
        "ports": [{"name": "redis", "containerPort": SENTINEL_PORT, "protocol": "TCP"}],
        "resources": {"requests": {"cpu": "20m", "memory": "32Mi"},
                      "limits": {"memory": "64Mi"}},
        "volumeMounts": _mounts("sentinel")}
    return _statefulset(cluster, "redis-sentinel", sentinel_pods(cluster), container,
                        [{"name": "sentinel", "emptyDir": {}}])


# ---- status ---------------------------------------------------------------------------------


async def observe(sentinels: list[str], master: str, password: str | None) -> dict[str, Any]:
    """`status.redis` additions: the primary and each replica's state, as the first Sentinel
    that answers sees them, and how many Sentinels answered."""
    view: dict[str, Any] = {"primary": "", "replicaStates": [], "sentinelsAnswering": 0}
    for address in sentinels:
        host, _, port = address.rpartition(":")
        client = aioredis.Redis(host=host, port=int(port), password=password,
                                socket_connect_timeout=OBSERVE_TIMEOUT_S,
                                socket_timeout=OBSERVE_TIMEOUT_S, retry=Retry(NoBackoff(), 0),
                                decode_responses=True)
        try:
            primary = await client.sentinel_master(master)
            replicas = await client.sentinel_slaves(master)
        except (RedisError, OSError):
            continue
        finally:
            await client.aclose()
        view["sentinelsAnswering"] += 1
        if not view["primary"]:
            view["primary"] = f"{primary['ip']}:{primary['port']}"
            view["replicaStates"] = sorted(
                ({"address": f"{replica['ip']}:{replica['port']}",
                  "state": "down" if replica["is_sdown"] or replica["is_odown"] else
                  "online" if replica.get("master-link-status") == "ok" else "syncing"}
                 for replica in replicas), key=lambda replica: replica["address"])
    return view


async def status(kube: Kube, cluster: r.Cluster) -> dict[str, Any]:
    """`observe` for a managed group, with its generated password."""
    ref = r.managed_redis_password(cluster)
    secret = await kube.get("Secret", cluster.namespace, ref.name)
    value = ((secret or {}).get("data") or {}).get(ref.key)
    password = base64.b64decode(value).decode() if value else None
    return await observe(sentinel_addresses(cluster), MASTER, password)
