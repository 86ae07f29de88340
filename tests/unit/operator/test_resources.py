"""The builders turn SemantestCluster specs into exactly the children the hub needs."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from semantest import config as hub_config
from semantest.tracing import create_tracing
from semantest_operator import resources

from .conftest import Make
from .specs import VERSION, by_kind, container, env, spec_schema


def kinds(manifests: list[dict]) -> set[tuple[str, str]]:
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def test_minimal_spec_gives_the_whole_hub(make: Make) -> None:
    children = resources.desired(make())
    assert kinds(children) == {
        ("ConfigMap", "hub-config"),
        ("Service", "hub-redis"),
        ("StatefulSet", "hub-redis"),
        *((kind, f"hub-{c}") for c in ("auth", "router", "gateway")
          for kind in ("Deployment", "Service", "PodDisruptionBudget")),
    }
    for child in children:
        meta = child["metadata"]
        assert meta["namespace"] == "team"
        assert meta["labels"]["app.kubernetes.io/managed-by"] == "semantest-operator"
        assert meta["labels"]["app.kubernetes.io/instance"] == "hub"
        assert "ownerReferences" not in meta  # the reconciler adopts them


def test_config_map_comes_before_the_workloads_that_mount_it(make: Make) -> None:
    order = [m["kind"] for m in resources.desired(make())]
    assert order[0] == "ConfigMap"
    assert order.index("StatefulSet") < order.index("Deployment")


@pytest.mark.parametrize("component", ["auth", "router", "gateway"])
def test_each_component_runs_its_console_script_hardened(make: Make, component: str) -> None:
    deployment = resources.deployment(make(), component)
    pod = deployment["spec"]["template"]["spec"]
    main = container(deployment)
    assert main["command"] == [f"semantest-{component}"]
    assert main["image"] == f"ghcr.io/semantest/hub:{VERSION}"
    assert main["ports"] == [{"name": "http", "containerPort": 3000, "protocol": "TCP"}]
    assert main["livenessProbe"]["httpGet"] == {
        "path": "/health/live", "port": "http", "scheme": "HTTP"
    }
    assert main["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert {"name": "tmp", "emptyDir": {}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in main["volumeMounts"]
    assert pod["automountServiceAccountToken"] is False
    spread = pod["topologySpreadConstraints"][0]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert spread["labelSelector"]["matchLabels"] == resources.selector(make(), component)
    assert deployment["spec"]["replicas"] == 2
    assert main["resources"] == {"requests": {"cpu": "100m", "memory": "128Mi"},
                                 "limits": {"memory": "512Mi"}}


def test_secrets_reach_the_pods_as_env_from_secrets_never_in_the_config(make: Make) -> None:
    cluster = make()
    gateway = env(resources.deployment(cluster, "gateway"))
    router = env(resources.deployment(cluster, "router"))
    assert gateway["CONFIG_FILE"] == "/etc/semantest/config.json"
    assert gateway["JWT_SECRET"] == {"secretKeyRef": {"name": "hub-jwt", "key": "jwt-secret"}}
    assert gateway["ADMIN_API_KEY"] == {
        "secretKeyRef": {"name": "hub-admin-key", "key": "admin-api-key"}
    }
    assert gateway["REDIS_PASSWORD"] == {"secretKeyRef": {"name": "hub-redis", "key": "password"}}
    assert set(router) == {"CONFIG_FILE", "REDIS_PASSWORD"}
    text = json.dumps(resources.config_map(cluster)["data"]).lower()
    assert "secret" not in text and "password" not in text and "hub-jwt" not in text


def test_user_secrets_are_referenced_not_generated(make: Make) -> None:
    cluster = make({
        "auth": {"jwt": {"secretRef": {"name": "mine"}},
                 "apiKeys": {"secretRef": {"name": "keys", "key": "admin"}}},
        "redis": {"managed": {"enabled": False},
                  "external": {"url": "rediss://redis.example:6380/1",
                               "passwordSecretRef": {"name": "redis-pass"}}},
    })
    assert resources.generated_refs(cluster) == []
    assert resources.user_refs(cluster) == [
        resources.SecretRef("mine", "jwt-secret"),
        resources.SecretRef("keys", "admin"),
        resources.SecretRef("redis-pass", "password"),
    ]
    assert env(resources.deployment(cluster, "auth"))["ADMIN_API_KEY"] == {
        "secretKeyRef": {"name": "keys", "key": "admin"}
    }


def test_generated_secrets_are_the_ones_the_user_did_not_name(make: Make) -> None:
    assert resources.generated_refs(make()) == [
        resources.SecretRef("hub-jwt", "jwt-secret"),
        resources.SecretRef("hub-admin-key", "admin-api-key"),
        resources.SecretRef("hub-redis", "password"),
    ]
    assert resources.user_refs(make()) == []


def test_external_redis_replaces_the_managed_one(make: Make) -> None:
    cluster = make({"redis": {"managed": {"enabled": False},
                              "external": {"url": "redis://cache:6379/2"}}})
    children = kinds(resources.desired(cluster))
    assert ("StatefulSet", "hub-redis") not in children
    assert ("Service", "hub-redis") not in children
    assert resources.hub_config(cluster, gateway=False)["redis"]["url"] == "redis://cache:6379/2"
    assert "REDIS_PASSWORD" not in env(resources.deployment(cluster, "router"))


def test_managed_redis_is_a_password_protected_statefulset(make: Make) -> None:
    cluster = make({"redis": {"managed": {"storage": {"size": "5Gi",
                                                      "storageClassName": "fast"}}}})
    sts = resources.redis_statefulset(cluster)
    redis = container(sts)
    assert "$(REDIS_PASSWORD)" in redis["args"]
    assert sts["spec"]["serviceName"] == "hub-redis"
    claim = sts["spec"]["volumeClaimTemplates"][0]["spec"]
    assert claim["resources"]["requests"]["storage"] == "5Gi"
    assert claim["storageClassName"] == "fast"
    assert resources.hub_config(cluster, gateway=False)["redis"] == {
        "url": "redis://hub-redis:6379/0", "keyPrefix": "semantest:"
    }
    assert resources.redis_service(cluster)["spec"]["clusterIP"] == "None"


def test_redis_without_storage_uses_an_empty_dir(make: Make) -> None:
    sts = resources.redis_statefulset(make({"redis": {"managed": {"storage": {"enabled": False}}}}))
    assert "volumeClaimTemplates" not in sts["spec"]
    assert {"name": "data", "emptyDir": {}} in sts["spec"]["template"]["spec"]["volumes"]


def test_autoscaling_adds_an_hpa_and_leaves_replicas_to_it(make: Make) -> None:
    cluster = make({"gateway": {"autoscaling": {"enabled": True, "minReplicas": 3,
                                                "maxReplicas": 9,
                                                "targetCPUUtilizationPercentage": 60}}})
    children = by_kind(resources.desired(cluster))
    hpa = children[("HorizontalPodAutoscaler", "hub-gateway")]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1", "kind": "Deployment", "name": "hub-gateway"
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    assert hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"] == 60
    assert "replicas" not in children[("Deployment", "hub-gateway")]["spec"]
    assert children[("Deployment", "hub-router")]["spec"]["replicas"] == 2
    assert ("HorizontalPodAutoscaler", "hub-router") not in children


def test_auth_disabled_drops_the_auth_service_and_its_secrets(make: Make) -> None:
    cluster = make({"auth": {"enabled": False}})
    children = kinds(resources.desired(cluster))
    assert not any(name == "hub-auth" for _, name in children)
    assert resources.generated_refs(cluster) == [resources.SecretRef("hub-redis", "password")]
    assert resources.hub_config(cluster, gateway=True)["auth"] == {"enabled": False}
    assert "JWT_SECRET" not in env(resources.deployment(cluster, "gateway"))


def test_gateway_service_keeps_polling_clients_on_one_pod(make: Make) -> None:
    svc = resources.service(make({"gateway": {"service": {
        "type": "LoadBalancer", "port": 443, "annotations": {"lb/kind": "nlb"}}}}), "gateway")
    assert svc["spec"]["type"] == "LoadBalancer"
    assert svc["spec"]["sessionAffinity"] == "ClientIP"
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("http", 443, "http"), ("metrics", 9090, "http")
    ]
    assert svc["metadata"]["annotations"] == {"lb/kind": "nlb"}
    router = resources.service(make(), "router")
    assert [p["name"] for p in router["spec"]["ports"]] == ["metrics"]


def test_disruption_budget_allows_one_pod_down(make: Make) -> None:
    pdb = resources.disruption_budget(make(), "router")
    assert pdb["spec"] == {"maxUnavailable": 1, "unhealthyPodEvictionPolicy": "AlwaysAllow",
                           "selector": {"matchLabels": resources.selector(make(), "router")}}


def test_self_signed_tls_is_served_by_the_gateway_only(make: Make) -> None:
    cluster = make({"tls": {"enabled": True}})
    gateway = resources.deployment(cluster, "gateway", tls_hash="abc")
    main = container(gateway)
    pod = gateway["spec"]["template"]["spec"]
    assert main["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert {"name": "tls", "mountPath": "/etc/semantest/tls", "readOnly": True} in (
        main["volumeMounts"]
    )
    tls_volume = next(v for v in pod["volumes"] if v["name"] == "tls")
    assert tls_volume["secret"]["secretName"] == "hub-tls"
    assert gateway["spec"]["template"]["metadata"]["annotations"][resources.TLS_HASH] == "abc"
    assert resources.hub_config(cluster, gateway=True)["server"]["tls"] == {
        "enabled": True, "cert": "/etc/semantest/tls/tls.crt", "key": "/etc/semantest/tls/tls.key"
    }
    assert "tls" not in resources.hub_config(cluster, gateway=False)["server"]
    router = container(resources.deployment(cluster, "router"))
    assert router["readinessProbe"]["httpGet"]["scheme"] == "HTTP"
    assert resources.endpoint(cluster) == "https://hub-gateway.team.svc:3000"
    assert not any(m["kind"] == "Certificate" for m in resources.desired(cluster))


def test_gateway_reads_its_own_config_key(make: Make) -> None:
    gateway = resources.deployment(make(), "gateway")
    router = resources.deployment(make(), "router")
    key = lambda d: d["spec"]["template"]["spec"]["volumes"][0]["configMap"]["items"][0]  # noqa: E731
    assert key(gateway) == {"key": "gateway.json", "path": "config.json"}
    assert key(router) == {"key": "config.json", "path": "config.json"}


def test_cert_manager_mode_asks_for_a_certificate(make: Make) -> None:
    cluster = make({"tls": {"enabled": True, "mode": "certManager",
                            "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"},
                            "dnsNames": ["hub.example.com"], "secretName": "hub-cert"}})
    cert = by_kind(resources.desired(cluster))[("Certificate", "hub-tls")]
    assert cert["spec"]["secretName"] == "hub-cert"
    assert cert["spec"]["issuerRef"] == {
        "name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"
    }
    assert cert["spec"]["dnsNames"] == [
        "hub-gateway", "hub-gateway.team", "hub-gateway.team.svc",
        "hub-gateway.team.svc.cluster.local", "hub.example.com",
    ]
    assert cert["spec"]["duration"] == "8760h"
    assert cert["spec"]["renewBefore"] == "720h"


def test_config_hash_rolls_pods_only_when_their_config_changes(make: Make) -> None:
    def annotation(cluster: resources.Cluster, component: str) -> str:
        deployment = resources.deployment(cluster, component)
        return deployment["spec"]["template"]["metadata"]["annotations"][resources.CONFIG_HASH]

    base, again = make(), make()
    changed = make({"websocket": {"pingInterval": 5000}})
    more_connections = make({"gateway": {"maxConnections": 5}})
    assert annotation(base, "router") == annotation(again, "router")
    assert annotation(base, "router") != annotation(changed, "router")
    assert annotation(base, "router") == annotation(more_connections, "router")
    assert annotation(base, "gateway") != annotation(more_connections, "gateway")


def test_image_tag_defaults_to_the_operator_version_and_accepts_digests(make: Make) -> None:
    assert make().image == f"ghcr.io/semantest/hub:{VERSION}"
    assert make({"image": {"repository": "r.io/hub", "tag": "2.0"}}).image == "r.io/hub:2.0"
    digest = "sha256:" + "a" * 64
    assert make({"image": {"tag": digest}}).image == f"ghcr.io/semantest/hub@{digest}"
    pull = make({"image": {"pullSecrets": ["regcred"], "pullPolicy": "Always"}})
    pod = resources.deployment(pull, "auth")["spec"]["template"]["spec"]
    assert pod["imagePullSecrets"] == [{"name": "regcred"}]
    assert pod["containers"][0]["imagePullPolicy"] == "Always"


def test_single_cors_origin_is_written_like_the_seed(make: Make) -> None:
    assert resources.hub_config(make({"cors": {}}), gateway=True)["cors"]["origin"] == "*"
    two = make({"cors": {"origin": ["https://a.example", "https://b.example"]}})
    assert resources.hub_config(two, gateway=True)["cors"]["origin"] == [
        "https://a.example", "https://b.example"
    ]
    assert "cors" not in resources.hub_config(make(), gateway=True)


@pytest.mark.parametrize("gateway", [False, True])
def test_the_hub_accepts_the_config_the_operator_writes(
    make: Make, gateway: bool, tmp_path: Path
) -> None:
    """Contract with semantest.config: every key the operator writes is one the hub knows."""
    cluster = make({
        "tls": {"enabled": True},
        "cors": {"origin": ["https://a.example"], "credentials": True, "methods": ["GET"]},
        "rateLimiting": {"enabled": True, "maxRequests": 10},
        "logging": {"level": "warn", "format": "pretty"},
    })
    key = "gateway.json" if gateway else "config.json"
    path = tmp_path / "config.json"
    path.write_text(resources.config_map(cluster)["data"][key])
    settings = hub_config.load_settings({"CONFIG_FILE": str(path), "JWT_SECRET": "x" * 32})
    assert settings.redis.url == "redis://hub-redis:6379/0"
    assert settings.websocket.ping_interval == 25000
    assert settings.rate_limiting.max_requests == 10
    assert settings.server.tls.enabled is gateway
    if gateway:
        assert settings.server.max_connections == 10000


def test_secret_builder_encodes_data(make: Make) -> None:
    secret = resources.secret(make(), "hub-jwt", "auth", {"jwt-secret": b"s3cret"})
    assert secret["data"] == {"jwt-secret": "czNjcmV0"}
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["labels"]["app.kubernetes.io/component"] == "auth"


def test_tracing_gives_every_hub_pod_the_otel_variables_the_hub_reads(
        make: Make, monkeypatch: pytest.MonkeyPatch) -> None:
    untraced = env(resources.deployment(make(), "gateway"))
    assert not any(name.startswith("OTEL_") for name in untraced)
    cluster = make({"tracing": {"endpoint": "http://jaeger.tracing:4318", "sampleRatio": "0.25"}})
    for component in cluster.components:
        variables = env(resources.deployment(cluster, component))
        assert {k: v for k, v in variables.items() if k.startswith("OTEL_")} == {
            "OTEL_TRACES_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://jaeger.tracing:4318",
            "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
            "OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
            "OTEL_TRACES_SAMPLER_ARG": "0.25",
        }
    # What the hub's own tracing setup makes of them: an OTLP exporter, the ratio sampler.
    for name, value in variables.items():
        if name.startswith("OTEL_"):
            monkeypatch.setenv(name, value)
    tracing = create_tracing("semantest-router")
    assert tracing.provider is not None
    assert "TraceIdRatioBased{0.25}" in tracing.provider.sampler.get_description()
    exporter = tracing.provider._active_span_processor._span_processors[0].span_exporter
    assert type(exporter).__module__.startswith("opentelemetry.exporter.otlp.proto.http")
    tracing.provider.shutdown()


def test_tracing_settings_are_checked_by_the_crd() -> None:
    tracing = spec_schema()["properties"]["tracing"]["properties"]
    assert not re.fullmatch(tracing["endpoint"]["pattern"], "jaeger:4318")
    assert re.fullmatch(tracing["endpoint"]["pattern"], "https://otel.example/v1")
    for ratio, good in (("0", True), ("0.5", True), ("1", True), ("1.5", False), ("half", False)):
        assert bool(re.fullmatch(tracing["sampleRatio"]["pattern"], ratio)) is good
