"""The chart renders valid Kubernetes 1.37 objects, and renders what each value asks for.

`helm lint --strict` and `helm template` for the defaults and for tests/chart/data/full-values.yaml;
every built-in object is checked with kubernetes-validate (strict: unknown fields fail), the
SemantestCluster against the CRD's own schema. The rest pins behaviour the operator depends on:
its command line (parsed by the operator's real argument parser), its RBAC (derived from the
operator's own tables of kinds), peering, security context, NOTES and the `helm test` Pod.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest

from semantest_operator import apply as operator_api
from semantest_operator import handlers, resources
from semantest_operator.main import parse as parse_operator_args
from tests.chart.chart import (
    CHART,
    KUBE_VERSION,
    Helm,
    crd_spec_schema,
    find,
    load_all,
    load_yaml,
    one,
)

FULL_VALUES = Path(__file__).parent / "data" / "full-values.yaml"
CASES = {"defaults": None, "full": FULL_VALUES}
VERBS_ALWAYS = {"list", "watch"}  # kopf watches every kind it serves or that the operator owns


_RENDERED: dict[str, str] = {}


def render(helm: Helm, case: str) -> list[dict[str, Any]]:
    """The objects of one case, CRDs included (rendered once per session, parsed afresh)."""
    if case not in _RENDERED:
        values = load_yaml(CASES[case]) if CASES[case] else None
        _RENDERED[case] = helm.template(values, extra=["--include-crds"]).stdout
    return load_all(_RENDERED[case])


def operator_container(objs: list[dict[str, Any]]) -> dict[str, Any]:
    deployment = one(objs, "Deployment")
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def rules_for(rules: list[dict[str, Any]], group: str, resource: str) -> set[str]:
    return {
        verb
        for rule in rules
        if group in rule["apiGroups"] and resource in rule["resources"]
        for verb in rule["verbs"]
    }


@pytest.mark.parametrize("case", CASES)
def test_helm_lint_strict_passes(helm: Helm, case: str) -> None:
    args = ["lint", "--strict", str(CHART), "--namespace", "semantest"]
    if CASES[case]:
        args += ["--values", str(CASES[case])]
    proc = helm.run(*args, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "0 chart(s) failed" in proc.stdout


@pytest.mark.parametrize("case", CASES)
def test_every_rendered_object_is_valid_kubernetes_1_37(helm: Helm, case: str) -> None:
    objs = render(helm, case)
    custom = [o for o in objs if o["apiVersion"].startswith("semantest.io/")]
    for obj in objs:
        if obj in custom:
            continue
        try:
            kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{obj['kind']} {obj['metadata']['name']}: {e.message} at {list(e.path)}")
    for obj in custom:  # the API server checks CEL rules too: tests/k8s/test_chart_install.py
        jsonschema.validate(obj["spec"], crd_spec_schema())
    kinds = {o["kind"] for o in objs}
    assert {"CustomResourceDefinition", "ServiceAccount", "ClusterRole", "Deployment"} <= kinds


def test_defaults_render_operator_rbac_and_crds_but_no_hub(helm: Helm) -> None:
    objs = render(helm, "defaults")
    crds = {o["metadata"]["name"] for o in find(objs, "CustomResourceDefinition")}
    assert crds == {
        "semantestclusters.semantest.io",
        "clusterkopfpeerings.kopf.dev",
        "kopfpeerings.kopf.dev",
    }
    assert not find(objs, "SemantestCluster")
    assert not find(objs, "Pod"), "the helm test Pod needs a hub (cluster.enabled)"
    assert not find(objs, "Role"), "serving all namespaces needs no namespaced Role"
    assert not find(objs, "PodDisruptionBudget"), "one replica: a PDB would block node drains"


def test_operator_command_line_is_accepted_by_the_operator(helm: Helm) -> None:
    for case in CASES:
        container = operator_container(render(helm, case))
        assert container["command"] == ["semantest-operator"]
        args = parse_operator_args(container["args"])  # SystemExit on an unknown flag
        port = next(p["containerPort"] for p in container["ports"] if p["name"] == "health")
        assert args.liveness == f"http://0.0.0.0:{port}/healthz"
        assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "health"}
        if case == "full":
            assert args.namespace == ["semantest", "staging"]
            assert args.peering == "semantest-hub" and args.priority == 100 and args.verbose
        else:
            assert args.namespace == [] and args.peering == "semantest" and not args.standalone


def test_operator_pod_is_non_root_read_only_and_matches_the_image_user(helm: Helm) -> None:
    deployment = one(render(helm, "defaults"), "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == resources.HUB_UID  # the Dockerfile's user too
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] is True
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
        assert container["resources"]["requests"] and container["resources"]["limits"]
    assert pod["serviceAccountName"] == one(render(helm, "defaults"), "ServiceAccount")[
        "metadata"
    ]["name"]


def test_cluster_wide_rbac_covers_exactly_what_the_operator_touches(helm: Helm) -> None:
    rules = one(render(helm, "defaults"), "ClusterRole")["rules"]
    # every kind the operator's API client reads or writes (operator/semantest_operator/apply.py)
    for kind, (prefix, plural) in operator_api.KINDS.items():
        group = "" if prefix == "/api/v1" else prefix.split("/")[2]
        if kind == "Pod":  # the auto-pilot's: gateway pods read and marked, nothing more
            assert rules_for(rules, group, plural) == {"list", "patch"}
            continue
        assert VERBS_ALWAYS <= rules_for(rules, group, plural), kind
    # every kind kopf watches for the operator (handlers.py)
    for group, _version, plural in handlers.CHILDREN:
        assert VERBS_ALWAYS <= rules_for(rules, group, plural), plural
    assert rules_for(rules, "", "secrets") == {
        "get", "list", "watch", "create", "update", "patch"}, "Secrets are never deleted"
    assert rules_for(rules, "semantest.io", "semantestclusters/status") == {"patch"}
    assert rules_for(rules, "", "events") == {"create"}
    assert rules_for(rules, "kopf.dev", "clusterkopfpeerings") == {
        "list", "watch", "create", "patch"}
    granted = {(g, r) for rule in rules for g in rule["apiGroups"] for r in rule["resources"]}
    assert rules_for(rules, "apps", "deployments/scale") == {"patch"}
    assert ("", "namespaces") not in granted
    assert all("*" not in rule["verbs"] + rule["resources"] for rule in rules)


def test_watch_namespaces_grants_roles_only_in_those_namespaces(helm: Helm) -> None:
    objs = render(helm, "full")
    cluster_rules = one(objs, "ClusterRole")["rules"]
    assert {r for rule in cluster_rules for r in rule["resources"]} == {
        "customresourcedefinitions", "namespaces"}
    roles = find(objs, "Role")
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["semantest", "staging"]
    for role in roles:
        assert rules_for(role["rules"], "kopf.dev", "kopfpeerings") == {
            "list", "watch", "create", "patch"}
        assert rules_for(role["rules"], "apps", "deployments")
    bindings = find(objs, "RoleBinding")
    assert {b["subjects"][0]["name"] for b in bindings} == {"semantest-operator"}
    init = one(objs, "Deployment")["spec"]["template"]["spec"]["initContainers"][0]
    assert init["command"][-3:] == ["semantest-hub", "semantest", "staging"]


def test_two_replicas_get_peering_rolling_updates_and_a_disruption_budget(helm: Helm) -> None:
    objs = helm.objects(sets=["operator.replicaCount=2"])
    spec = one(objs, "Deployment")["spec"]
    assert spec["replicas"] == 2
    assert spec["strategy"]["type"] == "RollingUpdate"
    assert spec["template"]["spec"]["initContainers"][0]["name"] == "peering"
    assert one(objs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1


def test_without_peering_one_operator_is_replaced_not_rolled(helm: Helm) -> None:
    objs = helm.objects(sets=["operator.peering.enabled=false"])
    spec = one(objs, "Deployment")["spec"]
    assert spec["strategy"] == {"type": "Recreate"}, "two standalone operators would both act"
    assert "initContainers" not in spec["template"]["spec"]
    assert "--standalone" in spec["template"]["spec"]["containers"][0]["args"]
    assert not rules_for(one(objs, "ClusterRole")["rules"], "kopf.dev", "clusterkopfpeerings")


def test_cross_field_mistakes_fail_at_once_with_every_problem_named(helm: Helm) -> None:
    proc = helm.template(
        sets=[
            "operator.replicaCount=2",
            "operator.peering.enabled=false",
            "cluster.enabled=true",
            "cluster.spec.redis.external.url=redis://r:6379",
            "cluster.spec.tls.mode=secret",
            "cluster.spec.gateway.autoscaling.minReplicas=9",
            "cluster.spec.gateway.autoscaling.maxReplicas=3",
        ],
        check=False,
    )
    assert proc.returncode != 0
    for expected in (
        "VALUES VALIDATION",
        "operator.replicaCount: 2 replicas need operator.peering.enabled=true",
        "needs cluster.spec.redis.managed.enabled=false",
        "secret needs cluster.spec.tls.secretName",
        "cluster.spec.gateway.autoscaling: minReplicas (9) exceeds maxReplicas (3)",
    ):
        assert expected in proc.stderr


def test_hub_uses_the_chart_image_and_leaves_empty_optional_fields_unset(helm: Helm) -> None:
    objs = helm.objects(sets=["cluster.enabled=true", "image.tag=2.1.0"])
    hub = one(objs, "SemantestCluster")
    spec = hub["spec"]
    assert spec["image"] == {"repository": "ghcr.io/semantest/hub", "tag": "2.1.0",
                             "pullPolicy": "IfNotPresent"}
    assert "cors" not in spec and "external" not in spec["redis"]
    assert "issuerRef" not in spec["tls"] and "secretName" not in spec["tls"]
    assert "secretRef" not in spec["auth"]["jwt"]
    assert hub["metadata"]["name"] == "semantest"
    jsonschema.validate(spec, crd_spec_schema())


def test_hub_name_fits_the_crd_limit_for_long_release_names(helm: Helm) -> None:
    release = "a-very-long-release-name-for-the-semantest-hub"
    hub = one(helm.objects(sets=["cluster.enabled=true"], release=release), "SemantestCluster")
    assert len(hub["metadata"]["name"]) <= 40
    assert not hub["metadata"]["name"].endswith("-")


def test_image_digest_pins_operator_and_hub(helm: Helm) -> None:
    digest = "sha256:" + "ab" * 32
    objs = helm.objects(sets=["cluster.enabled=true", f"image.digest={digest}"])
    assert operator_container(objs)["image"] == f"ghcr.io/semantest/hub@{digest}"
    hub = resources.Cluster.of(one(objs, "SemantestCluster"), "1.0.0")
    assert hub.image == f"ghcr.io/semantest/hub@{digest}"


def test_helm_test_pod_checks_the_gateway_the_operator_creates(helm: Helm) -> None:
    objs = render(helm, "full")
    pod = one(objs, "Pod")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    hub = resources.Cluster.of(one(objs, "SemantestCluster"), "1.0.0")
    service = resources.service(hub, "gateway")
    port = service["spec"]["ports"][0]["port"]
    url = f"https://{service['metadata']['name']}.{hub.namespace}.svc:{port}/health"
    assert pod["spec"]["containers"][0]["command"][-1] == url
    volume = pod["spec"]["volumes"][0]["secret"]
    assert volume["secretName"] == resources.tls_secret_name(hub)


def test_notes_show_access_admin_key_and_verify_commands(helm: Helm) -> None:
    proc = helm.run(
        "install", "semantest", str(CHART), "--dry-run=client", "--namespace", "semantest",
        "--set", "cluster.enabled=true",
    )
    notes = proc.stdout.split("NOTES:", 1)[1]
    hub = resources.Cluster("semantest", "semantest", {"auth": {"enabled": True,
                            "apiKeys": {}}}, "1.0.0")
    admin = resources.admin_key_ref(hub)
    assert admin is not None
    for expected in (
        "=== ACCESS ===", "=== VERIFY ===", "=== NEXT ===",
        "kubectl -n semantest port-forward service/semantest-gateway 3000:3000",
        f"kubectl -n semantest get secret {admin.name} -o jsonpath='{{.data.{admin.key}}}'",
        "kubectl -n semantest wait semantestcluster/semantest --for=condition=Ready",
        "helm test semantest -n semantest",
    ):
        assert expected in notes, expected
    assert notes.rstrip().splitlines()[-1].startswith("WARNING"), "warnings come last"


def test_common_labels_and_annotations_reach_every_object(helm: Helm) -> None:
    for obj in render(helm, "full"):
        if obj["kind"] == "CustomResourceDefinition":
            continue  # crds/ are not templated
        meta = obj["metadata"]
        assert meta["labels"]["team"] == "automation", obj["kind"]
        assert meta["labels"]["app.kubernetes.io/part-of"] == "semantest"
        if obj["kind"] != "Pod":
            assert meta["annotations"]["owner"] == "qa-platform", obj["kind"]
    assert json.loads(json.dumps(render(helm, "full")))  # plain data, nothing YAML-only
