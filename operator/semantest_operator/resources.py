"""Pure builders: a SemantestCluster spec in, the manifests of its children out.

Nothing here talks to Kubernetes or reads the clock: every function maps its arguments to plain
dicts, so the unit tests can check each child exactly and the reconciler can apply them with
server-side apply. The spec is the one the API server returns, i.e. with the CRD's defaults
filled in (charts/semantest/crds/semantestclusters.semantest.io.yaml).

Children are named `<cluster>-<suffix>` and labelled with the app.kubernetes.io set plus
`app.kubernetes.io/managed-by: semantest-operator`, which is how the operator finds (and only
ever touches) its own objects.

The module is long (one builder per child kind, mostly dict literals); it stays whole because
every builder shares the same names, labels and references defined at the top.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from semantest_operator import redis_sentinel

GROUP = "semantest.io"
VERSION = "v1alpha1"
PLURAL = "semantestclusters"
KIND = "SemantestCluster"
MANAGER = "semantest-operator"

NAME_LABEL = "app.kubernetes.io/name"
INSTANCE_LABEL = "app.kubernetes.io/instance"
COMPONENT_LABEL = "app.kubernetes.io/component"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
OWNED = {MANAGED_BY_LABEL: MANAGER}
CONFIG_HASH = f"{GROUP}/config-hash"
TLS_HASH = f"{GROUP}/tls-hash"

COMPONENTS = ("auth", "router", "gateway")
HUB_PORT = 3000
METRICS_PORT = 9090
REDIS_PORT = 6379
CONFIG_DIR = "/etc/semantest"
TLS_DIR = f"{CONFIG_DIR}/tls"
HUB_UID = 10001
REDIS_UID = 999  # the official redis image's user
# Pod shutdown: Kubernetes runs preStop (a sleep, so Services and load balancers stop sending
# new connections first), then SIGTERM starts the hub's drain (spec.drainTimeout), and the pod is
# killed after terminationGracePeriodSeconds = preStop + drain + the hub's exit margin.
PRESTOP_SECONDS = 5
EXIT_MARGIN_SECONDS = 5

Manifest = dict[str, Any]


@dataclass(frozen=True)
class SecretRef:
    """A key in a Secret of the cluster's namespace."""

    name: str
    key: str


@dataclass(frozen=True)
class Cluster:
    """A SemantestCluster as the builders need it: identity, defaulted spec, operator version."""

    name: str
    namespace: str
    spec: Mapping[str, Any]
    version: str
    users: tuple[Mapping[str, Any], ...] = ()  # auth.users, read from spec.auth.usersSecret

    @classmethod
    def of(cls, body: Mapping[str, Any], version: str) -> Cluster:
        meta = body["metadata"]
        return cls(meta["name"], meta["namespace"], body["spec"], version)

    def child(self, suffix: str) -> str:
        return f"{self.name}-{suffix}"

    @property
    def image(self) -> str:
        image = self.spec["image"]
        tag = image.get("tag") or self.version
        separator = "@" if tag.startswith("sha256:") else ":"
        return f"{image['repository']}{separator}{tag}"

    @property
    def auth_enabled(self) -> bool:
        return bool(self.spec["auth"]["enabled"])

    @property
    def components(self) -> tuple[str, ...]:
        return COMPONENTS if self.auth_enabled else tuple(c for c in COMPONENTS if c != "auth")

    @property
    def managed_redis(self) -> bool:
        return bool(self.spec["redis"]["managed"]["enabled"])

    @property
    def redis_url(self) -> str:
        if self.managed_redis:
            return f"redis://{self.child('redis')}:{REDIS_PORT}/0"
        return str(self.spec["redis"]["external"]["url"])

    @property
    def tls_enabled(self) -> bool:
        return bool(self.spec["tls"]["enabled"])

    @property
    def tls_mode(self) -> str:
        return str(self.spec["tls"]["mode"])

    def autoscaled(self, component: str) -> bool:
        """Replicas left to someone else: an autoscaler, or the auto-pilot."""
        return bool(self.spec[component]["autoscaling"]["enabled"])

    def autopiloted(self, component: str) -> bool:
        """Replicas set by the operator's auto-pilot (autopilot.py), not an autoscaler."""
        scaling = self.spec[component]["autoscaling"]
        return bool(scaling["enabled"]) and scaling.get("mode", "cpu") == "load"


# ---- names, labels, references ------------------------------------------------------------


def selector(cluster: Cluster, component: str) -> dict[str, str]:
    """The immutable pod selector of a component."""
    return {
        NAME_LABEL: "semantest",
        INSTANCE_LABEL: cluster.name,
        COMPONENT_LABEL: component,
    }


def selector_string(cluster: Cluster, component: str) -> str:
    return ",".join(f"{k}={v}" for k, v in selector(cluster, component).items())


def labels(cluster: Cluster, component: str) -> dict[str, str]:
    return {
        **selector(cluster, component),
        "app.kubernetes.io/part-of": "semantest",
        "app.kubernetes.io/version": cluster.version,
        **OWNED,
    }


def _meta(cluster: Cluster, name: str, component: str) -> dict[str, Any]:
    return {"name": name, "namespace": cluster.namespace, "labels": labels(cluster, component)}


def jwt_ref(cluster: Cluster) -> SecretRef | None:
    """Where the JWT signing secret lives (None when auth is off)."""
    if not cluster.auth_enabled:
        return None
    ref = cluster.spec["auth"]["jwt"].get("secretRef")
    return _ref(ref, "jwt-secret") if ref else SecretRef(cluster.child("jwt"), "jwt-secret")


def admin_key_ref(cluster: Cluster) -> SecretRef | None:
    """Where the admin API key lives (None when auth is off)."""
    if not cluster.auth_enabled:
        return None
    ref = cluster.spec["auth"]["apiKeys"].get("secretRef")
    default = SecretRef(cluster.child("admin-key"), "admin-api-key")
    return _ref(ref, "admin-api-key") if ref else default


def managed_redis_password(cluster: Cluster) -> SecretRef:
    """The generated password of the managed Redis."""
    return SecretRef(cluster.child("redis"), "password")


def redis_password_ref(cluster: Cluster) -> SecretRef | None:
    """The Redis password: generated for the managed Redis, optional for an external one."""
    if cluster.managed_redis:
        return managed_redis_password(cluster)
    ref = cluster.spec["redis"]["external"].get("passwordSecretRef")
    return _ref(ref, "password") if ref else None


def _ref(ref: Mapping[str, str], default_key: str) -> SecretRef:
    return SecretRef(ref["name"], ref.get("key") or default_key)


def generated_refs(cluster: Cluster) -> list[SecretRef]:
    """The Secrets the operator creates when they are missing (the user named none)."""
    spec = cluster.spec
    refs = []
    if cluster.auth_enabled and not spec["auth"]["jwt"].get("secretRef"):
        refs.append(jwt_ref(cluster))
    if cluster.auth_enabled and not spec["auth"]["apiKeys"].get("secretRef"):
        refs.append(admin_key_ref(cluster))
    if cluster.managed_redis:
        refs.append(managed_redis_password(cluster))
    return [ref for ref in refs if ref is not None]


def user_refs(cluster: Cluster) -> list[SecretRef]:
    """The Secrets the user named: they must exist; the operator never writes them."""
    generated = generated_refs(cluster)
    refs = [jwt_ref(cluster), admin_key_ref(cluster), redis_password_ref(cluster),
            redis_sentinel.sentinel_password_ref(cluster)]
    return [ref for ref in refs if ref is not None and ref not in generated]


def tls_secret_name(cluster: Cluster) -> str | None:
    """The kubernetes.io/tls Secret the gateways serve, when TLS is on."""
    if not cluster.tls_enabled:
        return None
    return str(cluster.spec["tls"].get("secretName") or cluster.child("tls"))


def dns_names(cluster: Cluster) -> list[str]:
    """The gateway certificate's names: the Service's in-cluster names, then the spec's."""
    service = cluster.child("gateway")
    ns = cluster.namespace
    own = [service, f"{service}.{ns}", f"{service}.{ns}.svc", f"{service}.{ns}.svc.cluster.local"]
    extra = [n for n in cluster.spec["tls"].get("dnsNames", []) if n not in own]
    return own + extra


def users_secret_name(cluster: Cluster) -> str | None:
    """The Secret with the login users (spec.auth.usersSecret), when auth is on and one is set."""
    if not cluster.auth_enabled:
        return None
    ref = cluster.spec["auth"].get("usersSecret")
    return str(ref["name"]) if ref else None


def referenced_secrets(cluster: Cluster) -> set[str]:
    """Every Secret the spec names that the user (or cert-manager) writes: a change to one of
    them is a reason for a pass."""
    names = {ref.name for ref in user_refs(cluster)}
    if cluster.tls_enabled and cluster.tls_mode != "selfSigned":
        names.add(str(tls_secret_name(cluster)))
    users = users_secret_name(cluster)
    if users:
        names.add(users)
    return names


def endpoint(cluster: Cluster) -> str:
    """The URL in-cluster clients connect to."""
    scheme = "https" if cluster.tls_enabled else "http"
    port = cluster.spec["gateway"]["service"]["port"]
    return f"{scheme}://{cluster.child('gateway')}.{cluster.namespace}.svc:{port}"


def digest(data: bytes | str) -> str:
    """A short content hash for pod-template annotations (a change rolls the pods)."""
    raw = data.encode() if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()[:16]


# ---- configuration ---------------------------------------------------------------------------


def hub_config(cluster: Cluster, *, gateway: bool) -> dict[str, Any]:
    """The hub's config file (DESIGN §4 keys); secrets never go here, they are env vars."""
    spec = cluster.spec
    server: dict[str, Any] = {"port": HUB_PORT, "host": "0.0.0.0",
                              "drainTimeout": spec["drainTimeout"]}
    if gateway:
        server["maxConnections"] = spec["gateway"]["maxConnections"]
        if cluster.tls_enabled:
            server["tls"] = {
                "enabled": True,
                "cert": f"{TLS_DIR}/tls.crt",
                "key": f"{TLS_DIR}/tls.key",
            }
    config: dict[str, Any] = {
        "server": server,
        "auth": {"enabled": cluster.auth_enabled},
        "redis": {**redis_sentinel.hub_redis(cluster), "keyPrefix": spec["redis"]["keyPrefix"]},
        "websocket": dict(spec["websocket"]),
        "rateLimiting": dict(spec["rateLimiting"]),
        "logging": dict(spec["logging"]),
    }
    if cluster.auth_enabled:
        config["auth"]["jwt"] = {"expiresIn": spec["auth"]["jwt"]["expiresIn"]}
    if "cors" in spec:
        cors = dict(spec["cors"])
        origin = cors["origin"]
        cors["origin"] = origin[0] if len(origin) == 1 else origin
        config["cors"] = cors
    return config


def _config_text(cluster: Cluster, *, gateway: bool) -> str:
    return json.dumps(hub_config(cluster, gateway=gateway), indent=2, sort_keys=True) + "\n"


def _auth_config_text(cluster: Cluster) -> str:
    """The auth service's config: the common one plus auth.users (kept in a Secret)."""
    config = hub_config(cluster, gateway=False)
    config["auth"]["users"] = [dict(user) for user in cluster.users]
    return json.dumps(config, indent=2, sort_keys=True) + "\n"


def auth_config_secret(cluster: Cluster) -> Manifest:
    """`config.json` of the auth pods when login users are set: a Secret, as it holds them."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(cluster, cluster.child("auth-config"), "auth"),
        "type": "Opaque",
        "data": {"config.json": base64.b64encode(_auth_config_text(cluster).encode()).decode()},
    }


def config_map(cluster: Cluster) -> Manifest:
    """`config.json` for auth and router, `gateway.json` (with TLS and limits) for gateways."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _meta(cluster, cluster.child("config"), "config"),
        "data": {
            "config.json": _config_text(cluster, gateway=False),
            "gateway.json": _config_text(cluster, gateway=True),
        },
    }


# ---- workloads -----------------------------------------------------------------------------


def _secret_env(name: str, ref: SecretRef | None) -> list[dict[str, Any]]:
    if ref is None:
        return []
    return [{"name": name, "valueFrom": {"secretKeyRef": {"name": ref.name, "key": ref.key}}}]


def _env(cluster: Cluster, component: str) -> list[dict[str, Any]]:
    env: list[dict[str, Any]] = [
        {"name": "CONFIG_FILE", "value": f"{CONFIG_DIR}/config.json"}
    ]
    if component in ("auth", "gateway"):
        env += _secret_env("JWT_SECRET", jwt_ref(cluster))
        env += _secret_env("ADMIN_API_KEY", admin_key_ref(cluster))
    env += _secret_env("REDIS_PASSWORD", redis_password_ref(cluster))
    env += _secret_env("REDIS_SENTINEL_PASSWORD", redis_sentinel.sentinel_password_ref(cluster))
    return env + _tracing_env(cluster.spec["tracing"])


def _tracing_env(tracing: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The standard OTEL_* variables the hub reads (its default service name is its role's)."""
    if not tracing.get("endpoint"):
        return []
    return [{"name": name, "value": value} for name, value in (
        ("OTEL_TRACES_EXPORTER", "otlp"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", tracing["endpoint"]),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", tracing["protocol"]),
        ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
        ("OTEL_TRACES_SAMPLER_ARG", tracing["sampleRatio"]),
    )]


def _probe(path: str, scheme: str, period: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": path, "port": "http", "scheme": scheme},
        "periodSeconds": period,
        "timeoutSeconds": 3,
        "failureThreshold": 3,
    }


_CONTAINER_SECURITY = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "capabilities": {"drop": ["ALL"]},
}


def _pod_security(uid: int) -> dict[str, Any]:
    return {
        "runAsNonRoot": True,
        "runAsUser": uid,
        "runAsGroup": uid,
        "fsGroup": uid,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def deployment(cluster: Cluster, component: str, tls_hash: str = "") -> Manifest:
    """One hub component; replicas are left out when its autoscaler owns them."""
    gateway = component == "gateway"
    config_key = "gateway.json" if gateway else "config.json"
    tls = gateway and cluster.tls_enabled
    scheme = "HTTPS" if tls else "HTTP"
    config_volume: dict[str, Any] = {
        "configMap": {
            "name": cluster.child("config"),
            "items": [{"key": config_key, "path": "config.json"}],
        }
    }
    config_text = _config_text(cluster, gateway=gateway)
    if component == "auth" and users_secret_name(cluster):
        config_text = _auth_config_text(cluster)
        config_volume = {"secret": {"secretName": cluster.child("auth-config"),
                                    "defaultMode": 0o440,
                                    "items": [{"key": "config.json", "path": "config.json"}]}}
    annotations = {CONFIG_HASH: digest(config_text)}
    mounts = [
        {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
        {"name": "tmp", "mountPath": "/tmp"},
    ]
    volumes: list[dict[str, Any]] = [
        {"name": "config", **config_volume},
        {"name": "tmp", "emptyDir": {}},
    ]
    if tls:
        annotations[TLS_HASH] = tls_hash
        mounts.append({"name": "tls", "mountPath": TLS_DIR, "readOnly": True})
        volumes.append(
            {
                "name": "tls",
                "secret": {
                    "secretName": tls_secret_name(cluster),
                    "defaultMode": 0o440,
                    "items": [{"key": "tls.crt", "path": "tls.crt"},
                              {"key": "tls.key", "path": "tls.key"}],
                },
            }
        )
    image = cluster.spec["image"]
    drain_seconds = -(-cluster.spec["drainTimeout"] // 1000)
    pod: dict[str, Any] = {
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": PRESTOP_SECONDS + drain_seconds + EXIT_MARGIN_SECONDS,
        "securityContext": _pod_security(HUB_UID),
        "topologySpreadConstraints": [
            {
                "maxSkew": 1,
                "topologyKey": "kubernetes.io/hostname",
                "whenUnsatisfiable": "ScheduleAnyway",
                "labelSelector": {"matchLabels": selector(cluster, component)},
            }
        ],
        "containers": [
            {
                "name": component,
                "image": cluster.image,
                "imagePullPolicy": image["pullPolicy"],
                "command": [f"semantest-{component}"],
                "ports": [{"name": "http", "containerPort": HUB_PORT, "protocol": "TCP"}],
                "env": _env(cluster, component),
                "resources": cluster.spec[component]["resources"],
                "livenessProbe": _probe("/health/live", scheme, 10),
                "readinessProbe": _probe("/health/ready", scheme, 5),
                "lifecycle": {"preStop": {"sleep": {"seconds": PRESTOP_SECONDS}}},
                "securityContext": _CONTAINER_SECURITY,
                "volumeMounts": mounts,
            }
        ],
        "volumes": volumes,
    }
    if image.get("pullSecrets"):
        pod["imagePullSecrets"] = [{"name": name} for name in image["pullSecrets"]]
    spec: dict[str, Any] = {
        "revisionHistoryLimit": 3,
        "selector": {"matchLabels": selector(cluster, component)},
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1},
        },
        "template": {
            "metadata": {"labels": labels(cluster, component), "annotations": annotations},
            "spec": pod,
        },
    }
    if not cluster.autoscaled(component):
        spec = {"replicas": cluster.spec[component]["replicas"], **spec}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(cluster, cluster.child(component), component),
        "spec": spec,
    }


def service(cluster: Cluster, component: str) -> Manifest:
    """The gateway's Service (client port, ClientIP affinity for polling) or a metrics one."""
    metrics = {"name": "metrics", "port": METRICS_PORT, "targetPort": "http", "protocol": "TCP"}
    spec: dict[str, Any] = {"type": "ClusterIP", "selector": selector(cluster, component)}
    meta = _meta(cluster, cluster.child(component), component)
    if component == "gateway":
        settings = cluster.spec["gateway"]["service"]
        port = {"name": "http", "port": settings["port"], "targetPort": "http", "protocol": "TCP"}
        spec.update(
            type=settings["type"],
            sessionAffinity="ClientIP",
            sessionAffinityConfig={"clientIP": {"timeoutSeconds": 10800}},
            ports=[port, metrics],
        )
        if settings.get("annotations"):
            meta["annotations"] = dict(settings["annotations"])
    else:
        spec["ports"] = [metrics]
    return {"apiVersion": "v1", "kind": "Service", "metadata": meta, "spec": spec}


def disruption_budget(cluster: Cluster, component: str) -> Manifest:
    """At most one pod of a component drained at a time during voluntary disruptions (node
    drains, evictions). maxUnavailable, not minAvailable, so a single replica can always be
    evicted (it drains first); pods that are not ready may always go, so a crash-looping pod
    never blocks a node drain."""
    return {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": _meta(cluster, cluster.child(component), component),
        "spec": {
            "maxUnavailable": 1,
            "unhealthyPodEvictionPolicy": "AlwaysAllow",
            "selector": {"matchLabels": selector(cluster, component)},
        },
    }


def autoscaler(cluster: Cluster, component: str) -> Manifest:
    """A CPU-based HorizontalPodAutoscaler for a component's Deployment."""
    scaling = cluster.spec[component]["autoscaling"]
    return {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": _meta(cluster, cluster.child(component), component),
        "spec": {
            "scaleTargetRef": {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "name": cluster.child(component),
            },
            "minReplicas": scaling["minReplicas"],
            "maxReplicas": scaling["maxReplicas"],
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {
                            "type": "Utilization",
                            "averageUtilization": scaling["targetCPUUtilizationPercentage"],
                        },
                    },
                }
            ],
        },
    }


# ---- Redis -----------------------------------------------------------------------------------


def redis_service(cluster: Cluster) -> Manifest:
    """The headless Service that governs the Redis StatefulSet and that the hub dials."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _meta(cluster, cluster.child("redis"), "redis"),
        "spec": {
            "clusterIP": "None",
            "selector": selector(cluster, "redis"),
            "ports": [
                {"name": "redis", "port": REDIS_PORT, "targetPort": "redis", "protocol": "TCP"}
            ],
        },
    }


def redis_statefulset(cluster: Cluster) -> Manifest:
    """One Redis with append-only persistence and a generated password."""
    managed = cluster.spec["redis"]["managed"]
    storage = managed["storage"]
    password = managed_redis_password(cluster)
    ping = 'redis-cli -a "$REDIS_PASSWORD" --no-auth-warning ping | grep -q PONG'
    container = {
        "name": "redis",
        "image": managed["image"],
        "imagePullPolicy": "IfNotPresent",
        "args": [
            "redis-server",
            "--port", str(REDIS_PORT),
            "--requirepass", "$(REDIS_PASSWORD)",
            "--appendonly", "yes",
            "--dir", "/data",
        ],
        "env": _secret_env("REDIS_PASSWORD", password),
        "ports": [{"name": "redis", "containerPort": REDIS_PORT, "protocol": "TCP"}],
        "livenessProbe": {"tcpSocket": {"port": "redis"}, "periodSeconds": 10},
        "readinessProbe": {"exec": {"command": ["sh", "-c", ping]}, "periodSeconds": 5},
        "resources": managed["resources"],
        "securityContext": _CONTAINER_SECURITY,
        "volumeMounts": [
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {}}]
    spec: dict[str, Any] = {
        "replicas": 1,
        "serviceName": cluster.child("redis"),
        "selector": {"matchLabels": selector(cluster, "redis")},
        "template": {
            "metadata": {"labels": labels(cluster, "redis")},
            "spec": {
                "automountServiceAccountToken": False,
                "enableServiceLinks": False,
                "securityContext": _pod_security(REDIS_UID),
                "containers": [container],
                "volumes": volumes,
            },
        },
    }
    if storage["enabled"]:
        claim: dict[str, Any] = {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": storage["size"]}},
        }
        if storage.get("storageClassName"):
            claim["storageClassName"] = storage["storageClassName"]
        spec["volumeClaimTemplates"] = [{"metadata": {"name": "data"}, "spec": claim}]
    else:
        volumes.append({"name": "data", "emptyDir": {}})
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _meta(cluster, cluster.child("redis"), "redis"),
        "spec": spec,
    }


# ---- TLS and Secrets ---------------------------------------------------------------------------


def certificate(cluster: Cluster) -> Manifest:
    """A cert-manager Certificate for the gateways (mode certManager)."""
    tls = cluster.spec["tls"]
    issuer = tls["issuerRef"]
    return {
        "apiVersion": "cert-manager.io/v1",
        "kind": "Certificate",
        "metadata": _meta(cluster, cluster.child("tls"), "tls"),
        "spec": {
            "secretName": tls_secret_name(cluster),
            "commonName": dns_names(cluster)[0],
            "dnsNames": dns_names(cluster),
            "duration": f"{tls['validityDays'] * 24}h",
            "renewBefore": f"{tls['renewBeforeDays'] * 24}h",
            "usages": ["server auth", "digital signature"],
            "privateKey": {"algorithm": "ECDSA", "size": 256, "rotationPolicy": "Always"},
            "issuerRef": {
                "name": issuer["name"],
                "kind": issuer.get("kind", "Issuer"),
                "group": issuer.get("group", "cert-manager.io"),
            },
        },
    }


def secret(
    cluster: Cluster,
    name: str,
    component: str,
    data: Mapping[str, bytes],
    secret_type: str = "Opaque",
) -> Manifest:
    """A Secret the operator creates (generated credentials, self-signed certificates)."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": _meta(cluster, name, component),
        "type": secret_type,
        "data": {key: base64.b64encode(value).decode() for key, value in sorted(data.items())},
    }


# ---- everything --------------------------------------------------------------------------------


def desired(cluster: Cluster, tls_hash: str = "") -> list[Manifest]:
    """Every child that server-side apply keeps in shape, in apply order.

    Generated Secrets and self-signed certificates are not here: they are created once (and
    renewed) rather than applied, so that a value is never overwritten.
    """
    children = [config_map(cluster)]
    if users_secret_name(cluster):
        children.append(auth_config_secret(cluster))
    children += redis_sentinel.children(cluster)
    for component in cluster.components:
        children.append(deployment(cluster, component, tls_hash))
    for component in cluster.components:
        children += [service(cluster, component), disruption_budget(cluster, component)]
        if cluster.autoscaled(component) and not cluster.autopiloted(component):
            children.append(autoscaler(cluster, component))
    if cluster.tls_enabled and cluster.tls_mode == "certManager":
        children.append(certificate(cluster))
    return children
