"""The chart and manifests/install.yaml on the real API server, with exactly their RBAC.

`helm install` (and `kubectl apply -f manifests/install.yaml`) must leave the CRDs established and
the operator Deployment in place. No kubelet runs here, so the operator's pod never starts;
instead the test runs the pod's own containers as local processes — the `peering` init
container's program, then `semantest-operator` with the Deployment's arguments — authenticated
as the chart's ServiceAccount through a TokenRequest token. That operator then has to reconcile
SemantestClusters (create, autoscaling on and off, TLS) with nothing but the chart's Roles: a
missing permission shows up as a Forbidden in its log or a child that never appears, and fails
the test. A control test removes one verb and checks that this is noticed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chart import CHART, MANIFESTS, load_all
from tests.k8s.plane import ControlPlane, free_port, wait_for

VENV_BIN = Path(sys.executable).parent
# An RBAC denial as the API server words it, or kopf's own note that it lacks a permission
# (not every 403: writing into a namespace being deleted is refused with a 403 too).
FORBIDDEN = re.compile(r"cannot \w+ resource|Not enough permissions")
HUB_DEPLOYMENTS = {"auth", "gateway", "router"}


@dataclass
class Operator:
    """A `semantest-operator` process started from a Deployment's container spec."""

    proc: subprocess.Popen[bytes]
    log: Path
    health: str

    def text(self) -> str:
        return self.log.read_text(errors="replace")

    def forbidden(self) -> list[str]:
        return [line for line in self.text().splitlines() if FORBIDDEN.search(line)]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


def deployment(plane: ControlPlane, namespace: str, name: str) -> dict[str, Any]:
    return dict(plane.get_json("deployment", name, namespace=namespace))


def token_env(plane: ControlPlane, namespace: str, account: str, tmp: Path) -> dict[str, str]:
    """The environment of a process that acts as `namespace/account` (TokenRequest token)."""
    kubeconfig = plane.token_kubeconfig(plane.token_for(namespace, account), tmp / "sa.kubeconfig")
    env = {k: v for k, v in os.environ.items() if not k.startswith("KUBERNETES_SERVICE")}
    env.update(KUBECONFIG=str(kubeconfig), PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


@contextlib.contextmanager
def run_pod(plane: ControlPlane, namespace: str, name: str, tmp: Path,
            code: Path | None = None) -> Iterator[Operator]:
    """Run the operator Deployment's init container, then its operator container, as local
    processes with the pod's ServiceAccount; yield the running operator; stop it afterwards.

    `code`: a folder holding another version's `semantest_operator` package, which then runs
    instead of this checkout's (as that version's image would)."""
    pod = deployment(plane, namespace, name)["spec"]["template"]["spec"]
    env = token_env(plane, namespace, pod["serviceAccountName"], tmp)
    program = [str(VENV_BIN / "semantest-operator")]
    if code is not None:
        env["PYTHONPATH"] = str(code)
        program = [str(VENV_BIN / "python"), "-c",
                   "from semantest_operator.main import main; main()"]
    for init in pod.get("initContainers", []):
        command = [str(VENV_BIN / init["command"][0]), *init["command"][1:]]
        done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, f"init container {init['name']} failed:\n{done.stderr}"
    container = pod["containers"][0]
    assert container["command"] == ["semantest-operator"], container["command"]
    port = free_port()
    args = [
        f"--liveness=http://127.0.0.1:{port}/healthz" if a.startswith("--liveness=") else a
        for a in container["args"]
    ]
    log = tmp / "operator.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*program, *args],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    operator = Operator(proc, log, f"http://127.0.0.1:{port}/healthz")
    try:
        wait_for(lambda: operator_healthy(operator), 60, "the operator's /healthz")
        yield operator
    finally:
        operator.stop()


def operator_healthy(operator: Operator) -> bool:
    if operator.proc.poll() is not None:
        raise AssertionError(f"the operator exited:\n{operator.text()[-3000:]}")
    try:
        with urllib.request.urlopen(operator.health, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def children(plane: ControlPlane, namespace: str, cluster: str) -> dict[str, set[str]]:
    """The operator's children of one SemantestCluster, by kind."""
    kinds = "deployments,statefulsets,services,configmaps,secrets,poddisruptionbudgets,hpa"
    found = plane.get_json(kinds, "-l", f"app.kubernetes.io/instance={cluster}",
                           namespace=namespace)
    result: dict[str, set[str]] = {}
    for item in found["items"]:
        result.setdefault(item["kind"], set()).add(item["metadata"]["name"])
    return result


def wait_children(plane: ControlPlane, namespace: str, cluster: str, operator: Operator,
                  want: dict[str, set[str]], absent: dict[str, set[str]] | None = None) -> None:
    def ready() -> bool:
        assert not operator.forbidden(), "\n".join(operator.forbidden())
        have = children(plane, namespace, cluster)
        return all(names <= have.get(kind, set()) for kind, names in want.items()) and all(
            not (names & have.get(kind, set())) for kind, names in (absent or {}).items()
        )

    try:
        wait_for(ready, 90, f"the children of {namespace}/{cluster}", interval=1)
    except TimeoutError as e:
        raise AssertionError(
            f"{e}; have {children(plane, namespace, cluster)}\noperator log:\n"
            f"{operator.text()[-4000:]}"
        ) from e


def status_observed(plane: ControlPlane, namespace: str, cluster: str) -> dict[str, Any]:
    def observed() -> dict[str, Any] | None:
        body = plane.get_json("semantestcluster", cluster, namespace=namespace)
        status = body.get("status") or {}
        current = status.get("observedGeneration") == body["metadata"]["generation"]
        return status if current and status.get("conditions") else None

    return wait_for(observed, 60, f"{namespace}/{cluster} status for its generation")


def exercise(plane: ControlPlane, operator: Operator, namespace: str, cluster: str) -> None:
    """Create a hub, autoscale it, stop autoscaling, turn on self-signed TLS: every verb of the
    chart's rules on every kind is used at least once on the way."""
    plane.apply(
        {"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
         "metadata": {"name": cluster}, "spec": {}},
        namespace=namespace,
    )
    names = {c: f"{cluster}-{c}" for c in HUB_DEPLOYMENTS}
    wait_children(plane, namespace, cluster, operator, {
        "Deployment": set(names.values()),
        "StatefulSet": {f"{cluster}-redis"},
        "Service": {*names.values(), f"{cluster}-redis"},
        "ConfigMap": {f"{cluster}-config"},
        "Secret": {f"{cluster}-jwt", f"{cluster}-admin-key", f"{cluster}-redis"},
        "PodDisruptionBudget": set(names.values()),
    })
    status = status_observed(plane, namespace, cluster)
    types = {c["type"] for c in status["conditions"]}
    assert {"Ready", "Progressing", "Degraded", "RedisReady", "TLSReady"} <= types
    assert status["endpoint"] == f"http://{cluster}-gateway.{namespace}.svc:3000"

    autoscale = {"spec": {"gateway": {"autoscaling": {"enabled": True}}}}
    plane.kubectl("patch", "semantestcluster", cluster, "-n", namespace, "--type=merge",
                  "-p", json.dumps(autoscale))
    wait_children(plane, namespace, cluster, operator,
                  {"HorizontalPodAutoscaler": {names["gateway"]}})
    autoscale["spec"]["gateway"]["autoscaling"]["enabled"] = False
    plane.kubectl("patch", "semantestcluster", cluster, "-n", namespace, "--type=merge",
                  "-p", json.dumps(autoscale))
    wait_children(plane, namespace, cluster, operator, {},
                  absent={"HorizontalPodAutoscaler": {names["gateway"]}})

    tls = {"spec": {"tls": {"enabled": True, "mode": "selfSigned"}}}
    plane.kubectl("patch", "semantestcluster", cluster, "-n", namespace, "--type=merge",
                  "-p", json.dumps(tls))
    wait_children(plane, namespace, cluster, operator,
                  {"Secret": {f"{cluster}-tls", f"{cluster}-ca"}})
    events = plane.get_json("events", "--field-selector",
                            f"involvedObject.name={cluster}", namespace=namespace)
    assert {e["reason"] for e in events["items"]} >= {"Created", "SecretGenerated"}
    assert operator.forbidden() == []
    assert "Not enough permissions" not in operator.text()


def pods_admitted(plane: ControlPlane, namespace: str, name: str) -> None:
    """The Deployment's controllers created its pods, so admission (Pod Security included)
    accepted the pod template; no kubelet runs them here, so they stay Pending."""
    selector = deployment(plane, namespace, name)["spec"]["selector"]["matchLabels"]
    labels = ",".join(f"{k}={v}" for k, v in selector.items())
    wait_for(lambda: plane.get_json("pods", "-l", labels, namespace=namespace)["items"], 60,
             f"pods of {namespace}/{name}")


def established(plane: ControlPlane, crd: str) -> bool:
    body = plane.get_json("crd", crd)
    return any(c["type"] == "Established" and c["status"] == "True"
               for c in body.get("status", {}).get("conditions", []))


def helm(plane: ControlPlane, *args: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([str(plane.bin_dir / "helm"), *args], env=plane.env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stderr}"
    return proc


def fresh_namespace(plane: ControlPlane, prefix: str) -> str:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    plane.kubectl("create", "namespace", name)
    return name


@pytest.fixture
def release(k8s_plane: ControlPlane, k8s_namespace: str) -> Iterator[str]:
    """A unique release name in the test's namespace; uninstalled afterwards (the CRDs stay, as
    Helm leaves crds/ alone, so other tests keep using them)."""
    name = f"st-{uuid.uuid4().hex[:6]}"
    yield name
    subprocess.run([str(k8s_plane.bin_dir / "helm"), "uninstall", name, "-n", k8s_namespace],
                   env=k8s_plane.env, capture_output=True, timeout=120, check=False)


def test_helm_install_runs_the_operator_with_exactly_the_chart_rbac(
    k8s_plane: ControlPlane, k8s_namespace: str, release: str, tmp_path: Path
) -> None:
    peering = f"semantest-{release}"  # own peering object: no stale peers from other tests
    helm(k8s_plane, "install", release, str(CHART), "-n", k8s_namespace,
         "--set", f"operator.peering.name={peering}", "--wait=false")
    for crd in ("semantestclusters.semantest.io", "clusterkopfpeerings.kopf.dev"):
        wait_for(lambda crd=crd: established(k8s_plane, crd), 30, f"CRD {crd} established")
    name = f"{release}-semantest-operator"
    spec = deployment(k8s_plane, k8s_namespace, name)["spec"]
    assert spec["template"]["spec"]["serviceAccountName"] == name
    pods_admitted(k8s_plane, k8s_namespace, name)

    hubs = fresh_namespace(k8s_plane, "hubs")
    try:
        with run_pod(k8s_plane, k8s_namespace, name, tmp_path) as operator:
            k8s_plane.get_json("clusterkopfpeering", peering)  # made by the init container
            exercise(k8s_plane, operator, hubs, "hub")
    finally:
        k8s_plane.kubectl("delete", "namespace", hubs, "--wait=false", check=False)


def test_namespaced_install_needs_no_cluster_wide_write_access(
    k8s_plane: ControlPlane, k8s_namespace: str, release: str, tmp_path: Path
) -> None:
    helm(k8s_plane, "install", release, str(CHART), "-n", k8s_namespace,
         "--set", f"operator.watchNamespaces={{{k8s_namespace}}}", "--wait=false")
    name = f"{release}-semantest-operator"
    account = f"system:serviceaccount:{k8s_namespace}:{name}"
    other = fresh_namespace(k8s_plane, "other")
    try:
        for verb, what, where in (("create", "deployments", other),
                                  ("get", "secrets", other),
                                  ("create", "deployments", k8s_namespace)):
            allowed = k8s_plane.kubectl("auth", "can-i", verb, what, "-n", where,
                                        "--as", account, check=False).stdout.strip()
            assert allowed == ("yes" if where == k8s_namespace else "no"), (verb, what, where)
        with run_pod(k8s_plane, k8s_namespace, name, tmp_path) as operator:
            k8s_plane.get_json("kopfpeering", "semantest", namespace=k8s_namespace)
            exercise(k8s_plane, operator, k8s_namespace, "hub")
    finally:
        k8s_plane.kubectl("delete", "namespace", other, "--wait=false", check=False)


def test_a_missing_permission_is_caught(
    k8s_plane: ControlPlane, k8s_namespace: str, release: str, tmp_path: Path
) -> None:
    """Control: the same check fails when the chart's Role lacks one verb (create Deployments,
    which server-side apply needs for a new object)."""
    helm(k8s_plane, "install", release, str(CHART), "-n", k8s_namespace, "--set",
         f"operator.watchNamespaces={{{k8s_namespace}}}", "--set",
         "operator.peering.enabled=false", "--wait=false")
    name = f"{release}-semantest-operator"
    role = k8s_plane.get_json("role", name, namespace=k8s_namespace)
    for rule in role["rules"]:
        if rule["resources"] == ["deployments"]:
            rule["verbs"].remove("create")
    k8s_plane.kubectl("replace", "-f", "-", input=json.dumps(role))
    with run_pod(k8s_plane, k8s_namespace, name, tmp_path) as operator:
        with pytest.raises(AssertionError, match=r"cannot create resource \W+deployments"):
            exercise(k8s_plane, operator, k8s_namespace, "hub")


def test_rendered_hub_passes_the_api_servers_own_validation(
    k8s_plane: ControlPlane, k8s_namespace: str
) -> None:
    """Server-side dry run of the full-values chart (CEL rules of the CRD included)."""
    values = Path(__file__).resolve().parents[1] / "chart" / "data" / "full-values.yaml"
    rendered = helm(k8s_plane, "template", "semantest", str(CHART), "-n", k8s_namespace,
                    "-f", str(values), "--set", f"operator.watchNamespaces={{{k8s_namespace}}}")
    objs = [o for o in load_all(rendered.stdout) if o["kind"] == "SemantestCluster"]
    assert objs
    done = k8s_plane.kubectl("apply", "--dry-run=server", "-n", k8s_namespace, "-f", "-",
                             input=json.dumps({"apiVersion": "v1", "kind": "List",
                                               "items": objs}), check=False)
    assert done.returncode == 0, done.stderr


def test_kubectl_apply_of_install_yaml_gives_the_same_result(
    k8s_plane: ControlPlane, tmp_path: Path
) -> None:
    install = MANIFESTS / "install.yaml"
    objs = load_all(install.read_text())
    namespace = next(o["metadata"]["name"] for o in objs if o["kind"] == "Namespace")
    assert k8s_plane.kubectl("get", "namespace", namespace, check=False).returncode != 0, (
        f"{namespace} must be fresh"
    )
    cluster_scoped = [o for o in objs if o["kind"] in ("ClusterRole", "ClusterRoleBinding")]
    hubs = ""
    try:
        k8s_plane.kubectl("apply", "--server-side", "-f", str(install))
        for crd in (o["metadata"]["name"] for o in objs if o["kind"] == "CustomResourceDefinition"):
            wait_for(lambda crd=crd: established(k8s_plane, crd), 30, f"CRD {crd} established")
        name = next(o["metadata"]["name"] for o in objs if o["kind"] == "Deployment")
        assert deployment(k8s_plane, namespace, name)["spec"]["replicas"] == 1
        labels = k8s_plane.get_json("namespace", namespace)["metadata"]["labels"]
        assert labels["pod-security.kubernetes.io/enforce"] == "restricted"
        pods_admitted(k8s_plane, namespace, name)  # the operator pod meets "restricted"
        hubs = fresh_namespace(k8s_plane, "hubs")
        with run_pod(k8s_plane, namespace, name, tmp_path) as operator:
            example = MANIFESTS / "examples" / "semantestcluster.yaml"
            k8s_plane.kubectl("apply", "-n", hubs, "-f", str(example))
            cluster = load_all(example.read_text())[0]["metadata"]["name"]
            wait_children(k8s_plane, hubs, cluster, operator,
                          {"Deployment": {f"{cluster}-{c}" for c in HUB_DEPLOYMENTS}})
            status_observed(k8s_plane, hubs, cluster)
            assert operator.forbidden() == []
    finally:
        for obj in cluster_scoped:
            k8s_plane.kubectl("delete", obj["kind"], obj["metadata"]["name"], check=False)
        for ns in (namespace, hubs):
            if ns:  # the CRDs stay: other tests share them
                k8s_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)
