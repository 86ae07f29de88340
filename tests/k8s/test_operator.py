"""The operator against a real API server and controller-manager (tests/k8s/plane.py).

One `semantest-operator` process serves every test of this module: it watches the namespaces
`<prefix>-*` and each test gets its own namespace under that prefix. The operator runs as a real
process (the console script), with the admin kubeconfig of the plane.

No kubelet and no scheduler run here: the controller-manager makes ReplicaSets and Pods, but the
Pods stay Pending. Where a test needs ready workloads it plays the kubelet and patches the Pods'
status to Running/Ready; the controller-manager then computes the Deployments' and the
StatefulSet's ready counts as on a real cluster.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import subprocess
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from semantest_operator import tls
from tests.conftest import stop_process

from .plane import ControlPlane, free_port, wait_for

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "charts" / "semantest" / "crds"
CRD = CRDS / "semantestclusters.semantest.io.yaml"
EXAMPLES = ROOT / "operator" / "examples"
OPERATOR = Path(os.environ.get("VIRTUAL_ENV", ROOT / ".venv")) / "bin" / "semantest-operator"
PREFIX = f"semop-{uuid.uuid4().hex[:5]}"
OWNED = "app.kubernetes.io/managed-by=semantest-operator"
CHILD_KINDS = "deployments,statefulsets,services,configmaps,secrets,poddisruptionbudgets,hpa"
TIMEOUT = 60.0

T = TypeVar("T")


# ---- the operator process -----------------------------------------------------------------


class Operator:
    """`semantest-operator` as a child process, its output in a log file."""

    def __init__(self, plane: ControlPlane, kubeconfig: Path, log: Path, *args: str) -> None:
        self.plane = plane
        self.kubeconfig = kubeconfig
        self.log = log
        self.args = args
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0  # of its liveness endpoint, once started

    def start(self) -> Operator:
        self.port = port = free_port()
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [str(OPERATOR), *self.args, f"--liveness=http://127.0.0.1:{port}/healthz"],
                env={**self.plane.env, "KUBECONFIG": str(self.kubeconfig),
                     "PYTHONUNBUFFERED": "1"},
                stdout=sink,
                stderr=subprocess.STDOUT,
            )
        wait_for(lambda: self._alive(port), TIMEOUT, f"the operator to serve :{port}/healthz")
        return self

    def _alive(self, port: int) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"the operator exited with {self.process.returncode}:\n"
                               f"{self.output()[-3000:]}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM, as Kubernetes stops a pod; SIGKILL only if it hangs."""
        if self.process is not None:
            stop_process(self.process, grace=30)
        self.process = None

    def output(self, since: int = 0) -> str:
        """The log from byte offset `since` (see `mark`)."""
        with self.log.open("rb") as f:
            f.seek(since)
            return f.read().decode(errors="replace")

    def mark(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0


@pytest.fixture(scope="module")
def crds(k8s_plane: ControlPlane) -> None:
    """The chart's CRD files, applied as `helm install` would find them."""
    for path in sorted(CRDS.glob("*.yaml")):
        k8s_plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    for crd in ("semantestclusters.semantest.io", "kopfpeerings.kopf.dev"):
        wait_established(k8s_plane, crd)


def wait_established(plane: ControlPlane, crd: str) -> None:
    """`kubectl wait` fails on a CRD whose status is still empty; poll instead."""
    jsonpath = "-o=jsonpath={.status.conditions[?(@.type=='Established')].status}"
    wait_for(lambda: plane.kubectl("get", "crd", crd, jsonpath, check=False).stdout == "True",
             TIMEOUT, f"CRD {crd} established")


# Exactly the permissions docs/operator.md lists: the operator runs with nothing more, so a
# verb it needs but the list lacks fails these tests.
RBAC_RULES = [
    {"apiGroups": ["semantest.io"], "resources": ["semantestclusters"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["semantest.io"], "resources": ["semantestclusters/status"],
     "verbs": ["patch"]},
    {"apiGroups": ["semantest.io"], "resources": ["semantestclusters/finalizers"],
     "verbs": ["update"]},
    {"apiGroups": ["apps"], "resources": ["deployments"],
     "verbs": ["get", "list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["apps"], "resources": ["deployments/scale"], "verbs": ["patch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["list", "patch"]},
    {"apiGroups": ["apps"], "resources": ["statefulsets"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["services"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["list", "watch", "create", "patch"]},
    {"apiGroups": [""], "resources": ["secrets"],
     "verbs": ["get", "list", "watch", "create", "update", "patch"]},
    {"apiGroups": ["autoscaling"], "resources": ["horizontalpodautoscalers"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["policy"], "resources": ["poddisruptionbudgets"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    {"apiGroups": ["cert-manager.io"], "resources": ["certificates"],
     "verbs": ["list", "watch", "create", "patch", "delete"]},
    {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
    {"apiGroups": ["kopf.dev"], "resources": ["kopfpeerings", "clusterkopfpeerings"],
     "verbs": ["get", "list", "watch", "patch"]},
    {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"],
     "verbs": ["list", "watch"]},
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
]


@pytest.fixture(scope="module")
def operator_kubeconfig(k8s_plane: ControlPlane, crds: None) -> Path:
    """A ServiceAccount bound to RBAC_RULES only, and a kubeconfig with its token. Applied, not
    created: every test module that imports this fixture makes it again."""
    ns, name = f"{PREFIX}-system", f"{PREFIX}-operator"
    k8s_plane.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
    k8s_plane.apply({"apiVersion": "v1", "kind": "ServiceAccount",
                     "metadata": {"name": "semantest-operator", "namespace": ns}})
    k8s_plane.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                     "metadata": {"name": name}, "rules": RBAC_RULES})
    k8s_plane.apply({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                     "metadata": {"name": name},
                     "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                 "name": name},
                     "subjects": [{"kind": "ServiceAccount", "name": "semantest-operator",
                                   "namespace": ns}]})
    return k8s_plane.token_kubeconfig(k8s_plane.token_for(ns, "semantest-operator", "3h"))


@pytest.fixture(scope="module")
def operator(
    k8s_plane: ControlPlane, operator_kubeconfig: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Operator]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    process = Operator(k8s_plane, operator_kubeconfig, log, "--standalone",
                       f"--namespace={PREFIX}-*", "--autopilot-interval=1").start()
    yield process
    process.stop()


# ---- one namespace, one hub --------------------------------------------------------------


@dataclass
class Hub:
    """A test's namespace and the helpers to drive a SemantestCluster in it."""

    plane: ControlPlane
    operator: Operator
    ns: str

    def kubectl(self, *args: str, input: str | None = None, check: bool = True) -> str:
        return self.plane.kubectl(*args, "-n", self.ns, input=input, check=check).stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def get(self, kind: str, name: str) -> Any | None:
        proc = self.plane.kubectl("get", kind, name, "-n", self.ns, "-o", "json",
                                  "--show-managed-fields", check=False)
        return json.loads(proc.stdout) if proc.returncode == 0 else None

    def apply(self, obj: dict[str, Any]) -> None:
        self.kubectl("apply", "--server-side", "--field-manager=semantest-tests",
                     "--force-conflicts", "-f", "-", input=json.dumps(obj))

    def create(self, spec: dict[str, Any], name: str = "hub") -> None:
        self.apply({"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
                    "metadata": {"name": name}, "spec": spec})

    def patch(self, spec: dict[str, Any], name: str = "hub") -> None:
        self.kubectl("patch", "semantestcluster", name, "--type=merge",
                     "-p", json.dumps({"spec": spec}))

    def cluster(self, name: str = "hub") -> Any:
        return self.json("semantestcluster", name)

    def condition(self, kind: str, name: str = "hub") -> dict[str, Any]:
        found = self.cluster(name).get("status", {}).get("conditions", [])
        return next((c for c in found if c["type"] == kind), {})

    def children(self, instance: str = "hub") -> dict[str, Any]:
        """Everything the operator labelled for this cluster, as {"Kind/name": object}."""
        items = self.json(CHILD_KINDS, "-l", f"{OWNED},app.kubernetes.io/instance={instance}",
                          "--show-managed-fields")
        return {f"{o['kind']}/{o['metadata']['name']}": o for o in items["items"]}

    def events(self, reason: str) -> list[dict[str, Any]]:
        items = self.json("events", "--field-selector", "involvedObject.kind=SemantestCluster")
        return [e for e in items["items"] if e["reason"] == reason]

    def eventually(self, check: Callable[[], T | None], what: str, timeout: float = TIMEOUT) -> T:
        """Poll `check` until it is truthy; on timeout fail with the operator's last words."""
        try:
            return wait_for(check, timeout, what)
        except TimeoutError as exc:
            tail = "\n".join(self.operator.output().splitlines()[-40:])
            raise AssertionError(f"{exc}\n--- operator log (tail)\n{tail}") from None

    def settled(self, name: str = "hub") -> dict[str, Any] | None:
        """The cluster once the operator has reconciled its current generation."""
        body = self.cluster(name)
        status = body.get("status", {})
        done = status.get("observedGeneration") == body["metadata"]["generation"]
        return body if done and status.get("conditions") else None

    def play_kubelet(self, instance: str = "hub") -> None:
        """Mark every Pod of the cluster Running and Ready (what a kubelet would report)."""
        now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        ready = {"status": {"phase": "Running", "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")]}}
        pods = self.json("pods", "-l", f"app.kubernetes.io/instance={instance}")["items"]
        for pod in pods:
            if pod["status"].get("phase") != "Running":
                self.kubectl("patch", "pod", pod["metadata"]["name"], "--subresource=status",
                             "--type=merge", "-p", json.dumps(ready), check=False)


@pytest.fixture
def hub(k8s_plane: ControlPlane, operator: Operator) -> Iterator[Hub]:
    ns = f"{PREFIX}-{uuid.uuid4().hex[:6]}"
    k8s_plane.kubectl("create", "namespace", ns)
    wait_for(lambda: k8s_plane.kubectl("get", "serviceaccount", "default", "-n", ns,
                                       check=False).returncode == 0,
             TIMEOUT, f"the default ServiceAccount in {ns}")
    yield Hub(k8s_plane, operator, ns)
    k8s_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def resource_versions(hub: Hub) -> dict[str, str]:
    """Each child's resourceVersion; for an autoscaler, the time of the operator's last write
    (the controller-manager rewrites every HPA's status on each of its syncs)."""
    def version(key: str, obj: dict[str, Any]) -> str:
        if not key.startswith("HorizontalPodAutoscaler/"):
            return str(obj["metadata"]["resourceVersion"])
        ours = [f for f in obj["metadata"]["managedFields"] if f["manager"] == "semantest-operator"]
        return json.dumps(ours)

    return {key: version(key, obj) for key, obj in hub.children().items()}


def wait_resumed(hub: Hub, operator: Operator, since: int, children: dict[str, str]) -> None:
    """Wait until a freshly started operator has handled everything it found: one resume pass
    for the cluster, one event per child. After kopf logged all of them, every pass is over."""
    names = Counter(key.split("/", 1)[1] for key in children)

    def done() -> bool:
        log = operator.output(since)
        return f"[{hub.ns}/hub] Resuming is processed" in log and all(
            log.count(f"[{hub.ns}/{name}] Handler 'restore_child' succeeded") >= count
            for name, count in names.items()
        )

    hub.eventually(done, "the new process to handle every object")


def secret_data(hub: Hub, name: str, key: str) -> bytes:
    secret = hub.get("secret", name)
    assert secret is not None, f"Secret {name} is missing"
    return base64.b64decode(secret["data"][key])


# ---- tests -------------------------------------------------------------------------------

HUB_CHILDREN = {
    "ConfigMap/hub-config",
    "Secret/hub-jwt",
    "Secret/hub-admin-key",
    "Secret/hub-redis",
    "Service/hub-redis",
    "StatefulSet/hub-redis",
    *(f"{kind}/hub-{c}" for c in ("auth", "router", "gateway")
      for kind in ("Deployment", "Service", "PodDisruptionBudget")),
}


def test_create_makes_every_child_with_owner_references(hub: Hub) -> None:
    hub.create({"gateway": {"replicas": 2}})
    children = hub.eventually(
        lambda: (c := hub.children()) and set(c) >= HUB_CHILDREN and c, "every child")
    assert set(children) == HUB_CHILDREN
    uid = hub.cluster()["metadata"]["uid"]
    for key, child in children.items():
        refs = child["metadata"].get("ownerReferences", [])
        assert [(r["kind"], r["uid"], r.get("controller")) for r in refs] == [
            ("SemantestCluster", uid, True)], key
    deployment = hub.get("deployment", "hub-gateway")
    assert deployment["spec"]["replicas"] == 2
    managers = {m["manager"] for m in deployment["metadata"]["managedFields"]}
    assert "semantest-operator" in managers
    assert len(secret_data(hub, "hub-jwt", "jwt-secret")) >= 32
    body = hub.eventually(hub.settled, "the first status")
    assert body["status"]["endpoint"] == f"http://hub-gateway.{hub.ns}.svc:3000"
    assert body["status"]["phase"] == "Progressing"
    assert body["metadata"].get("finalizers") is None  # deletion never waits for the operator
    assert {c["type"] for c in body["status"]["conditions"]} == {
        "Ready", "Progressing", "Degraded", "RedisReady", "TLSReady"}
    hub.eventually(lambda: len(hub.events("SecretGenerated")) == 3, "SecretGenerated Events")
    assert hub.events("Created")
    columns = hub.kubectl("get", "semantestcluster", "hub").splitlines()[0].split()
    assert columns == ["NAME", "READY", "GATEWAYS", "ENDPOINT", "AGE"]


def test_ready_with_replica_counts_once_the_pods_are_ready(hub: Hub) -> None:
    hub.create({"gateway": {"replicas": 3}, "router": {"replicas": 1}})
    hub.eventually(lambda: hub.json("pods", "-l", "app.kubernetes.io/instance=hub")["items"],
                   "pods from the controller-manager")
    assert hub.condition("Ready").get("status") != "True"

    def ready() -> dict[str, Any] | None:
        hub.play_kubelet()
        return hub.condition("Ready").get("status") == "True" and hub.cluster()["status"]

    status = hub.eventually(ready, "Ready=True")
    assert status["phase"] == "Ready"
    assert status["gateway"]["replicas"] == 3 and status["gateway"]["readyReplicas"] == 3
    assert status["router"] == {**status["router"], "replicas": 1, "readyReplicas": 1}
    assert status["auth"]["readyReplicas"] == 2
    assert status["redis"]["readyReplicas"] == 1
    assert hub.condition("RedisReady")["status"] == "True"
    assert hub.condition("Progressing")["status"] == "False"
    hub.eventually(lambda: hub.events("Ready"), "a Ready Event")
    row = hub.kubectl("get", "semantestcluster", "hub", "--no-headers").split()
    assert row[1:3] == ["True", "3"]


def test_kubectl_scale_changes_the_gateway_deployment(hub: Hub) -> None:
    hub.create({})
    hub.eventually(lambda: hub.get("deployment", "hub-gateway"), "the gateway Deployment")
    hub.kubectl("scale", "semantestcluster/hub", "--replicas=5")
    hub.eventually(lambda: hub.get("deployment", "hub-gateway")["spec"]["replicas"] == 5,
                   "5 gateway replicas")
    scale = json.loads(hub.plane.kubectl(
        "get", "--raw",
        f"/apis/semantest.io/v1alpha1/namespaces/{hub.ns}/semantestclusters/hub/scale").stdout)
    assert scale["spec"]["replicas"] == 5
    hub.eventually(lambda: hub.cluster()["status"]["gateway"]["replicas"] == 5,
                   "status.gateway.replicas 5")
    assert hub.get("deployment", "hub-router")["spec"]["replicas"] == 2


def test_autoscaling_creates_hpas_and_frees_replicas(hub: Hub) -> None:
    hub.create({})
    hub.eventually(lambda: hub.get("deployment", "hub-gateway"), "the gateway Deployment")
    hub.patch({"gateway": {"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8}},
               "router": {"autoscaling": {"enabled": True}}})
    hpas = hub.eventually(lambda: len(c := [k for k in hub.children() if "Autoscaler/" in k]) == 2
                          and c, "two HorizontalPodAutoscalers")
    assert sorted(hpas) == ["HorizontalPodAutoscaler/hub-gateway",
                            "HorizontalPodAutoscaler/hub-router"]
    hpa = hub.get("hpa", "hub-gateway")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert hpa["metadata"]["ownerReferences"][0]["kind"] == "SemantestCluster"

    def ours_owns_replicas(name: str) -> bool:
        fields = hub.get("deployment", name)["metadata"]["managedFields"]
        return any(f["manager"] == "semantest-operator" and "f:replicas" in
                   f.get("fieldsV1", {}).get("f:spec", {}) for f in fields)

    hub.eventually(lambda: not ours_owns_replicas("hub-gateway"), "replicas handed over")
    assert not ours_owns_replicas("hub-router")
    assert hub.get("deployment", "hub-gateway")["spec"]["replicas"] == 2  # kept, not reset
    # As the autoscaler would: the operator must leave the count alone from now on.
    hub.kubectl("scale", "deployment/hub-gateway", "--replicas=5")
    hub.kubectl("delete", "service", "hub-router")  # forces a full pass; wait for its restore
    hub.eventually(lambda: hub.get("service", "hub-router"), "the Service restored")
    assert hub.get("deployment", "hub-gateway")["spec"]["replicas"] == 5
    assert hub.get("deployment", "hub-auth")["spec"]["replicas"] == 2  # not autoscaled

    hub.patch({"gateway": {"autoscaling": {"enabled": False}}})
    hub.eventually(lambda: hub.get("hpa", "hub-gateway") is None, "the gateway HPA pruned")
    hub.eventually(lambda: hub.get("deployment", "hub-gateway")["spec"]["replicas"] == 2,
                   "the spec's 2 replicas back")
    assert ours_owns_replicas("hub-gateway")
    assert hub.get("hpa", "hub-router") is not None
    hub.eventually(lambda: hub.events("Pruned"), "a Pruned Event")


def test_tls_modes_switch(hub: Hub) -> None:
    def gateway_tls_secret() -> str | None:
        volumes = hub.get("deployment", "hub-gateway")["spec"]["template"]["spec"]["volumes"]
        return next((v["secret"]["secretName"] for v in volumes if v["name"] == "tls"), None)

    # selfSigned: the operator's CA signs the gateway certificate
    hub.create({"tls": {"enabled": True, "dnsNames": ["hub.example.com"]}})
    hub.eventually(lambda: hub.condition("TLSReady").get("status") == "True", "TLSReady")
    assert gateway_tls_secret() == "hub-tls"
    ca = tls.KeyPair(secret_data(hub, "hub-ca", "tls.crt"), secret_data(hub, "hub-ca", "tls.key"))
    served = tls.KeyPair(secret_data(hub, "hub-tls", "tls.crt"),
                         secret_data(hub, "hub-tls", "tls.key"))
    now = datetime.datetime.now(datetime.UTC)
    names = [f"hub-gateway.{hub.ns}.svc", "hub.example.com"]
    assert tls.renewal_reason(served, ca.cert, names, datetime.timedelta(days=1), now) is None
    status = hub.cluster()["status"]
    assert status["endpoint"].startswith("https://")
    assert status["tls"]["secretName"] == "hub-tls"
    config = json.loads(hub.get("configmap", "hub-config")["data"]["gateway.json"])
    assert config["server"]["tls"]["enabled"] is True

    # secret: the user's own certificate
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "mine"},
               "type": "kubernetes.io/tls",
               "data": {"tls.crt": base64.b64encode(served.cert).decode(),
                        "tls.key": base64.b64encode(served.key).decode()}})
    hub.patch({"tls": {"mode": "secret", "secretName": "mine"}})
    hub.eventually(lambda: gateway_tls_secret() == "mine", "the gateway serving Secret mine")
    assert hub.condition("TLSReady")["status"] == "True"

    # certManager without cert-manager: Degraded, and the hub keeps what it had
    hub.patch({"tls": {"mode": "certManager", "secretName": "hub-cert",
                       "issuerRef": {"name": "ca", "kind": "ClusterIssuer"}}})
    degraded = hub.eventually(
        lambda: (c := hub.condition("Degraded")).get("reason") == "CertManagerMissing" and c,
        "Degraded CertManagerMissing")
    assert degraded["status"] == "True" and "cert-manager" in degraded["message"]
    warning = hub.eventually(lambda: hub.events("CertManagerMissing"), "a Warning Event")[0]
    assert warning["type"] == "Warning"
    assert gateway_tls_secret() == "mine"

    # disabled: plain HTTP again, no TLS volume
    hub.patch({"tls": {"enabled": False}})
    hub.eventually(lambda: gateway_tls_secret() is None, "no TLS on the gateway")
    hub.eventually(lambda: hub.condition("Degraded").get("status") == "False", "not Degraded")
    assert hub.condition("TLSReady")["reason"] == "Disabled"
    assert hub.cluster()["status"]["endpoint"].startswith("http://")


CERT_MANAGER_CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": "certificates.cert-manager.io"},
    "spec": {
        "group": "cert-manager.io",
        "scope": "Namespaced",
        "names": {"kind": "Certificate", "plural": "certificates", "singular": "certificate"},
        "versions": [{
            "name": "v1", "served": True, "storage": True,
            "subresources": {"status": {}},
            "schema": {"openAPIV3Schema": {"type": "object",
                                           "x-kubernetes-preserve-unknown-fields": True}},
        }],
    },
}


def test_cert_manager_mode_requests_a_certificate_and_serves_its_secret(hub: Hub) -> None:
    """cert-manager itself is not installed: the test installs its Certificate type and plays
    cert-manager (writes the Secret, marks the Certificate ready)."""
    # The Certificate type stays installed after this test: deleting a CRD while kopf watches
    # it races kopf's resource observer, and the watcher's 404 can stop the whole operator
    # (seen once in CI). The test for a cluster without cert-manager runs before this one.
    hub.plane.apply(CERT_MANAGER_CRD)
    wait_established(hub.plane, "certificates.cert-manager.io")
    hub.create({"tls": {"enabled": True, "mode": "certManager",
                        "issuerRef": {"name": "letsencrypt", "kind": "ClusterIssuer"}}})
    cert = hub.eventually(lambda: hub.get("certificate", "hub-tls"), "the Certificate")
    assert cert["spec"]["secretName"] == "hub-tls"
    assert cert["spec"]["issuerRef"]["name"] == "letsencrypt"
    assert cert["metadata"]["ownerReferences"][0]["kind"] == "SemantestCluster"
    assert hub.eventually(lambda: hub.condition("TLSReady").get("reason"),
                          "TLSReady") == "WaitingForCertificate"

    now = datetime.datetime.now(datetime.UTC)
    pair = tls.issue(tls.new_ca("test CA", now), [f"hub-gateway.{hub.ns}.svc"],
                     datetime.timedelta(days=90), now)
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hub-tls"},
               "type": "kubernetes.io/tls",
               "data": {"tls.crt": base64.b64encode(pair.cert).decode(),
                        "tls.key": base64.b64encode(pair.key).decode()}})
    hub.kubectl("patch", "certificate", "hub-tls", "--subresource=status", "--type=merge",
                "-p", json.dumps({"status": {"conditions": [
                    {"type": "Ready", "status": "True", "reason": "Ready"}]}}))
    hub.eventually(lambda: hub.condition("TLSReady").get("status") == "True",
                   "TLSReady once the Secret is written")
    assert hub.cluster()["status"]["tls"]["secretName"] == "hub-tls"

    hub.patch({"tls": {"enabled": False}})
    hub.eventually(lambda: hub.get("certificate", "hub-tls") is None, "Certificate pruned")


def test_deleted_or_edited_children_are_restored(hub: Hub) -> None:
    hub.create({})
    original = hub.eventually(lambda: (c := hub.children()) and set(c) >= HUB_CHILDREN and c,
                              "every child")
    hub.eventually(hub.settled, "the first pass")
    uids = {key: obj["metadata"]["uid"] for key, obj in original.items()}
    hub.kubectl("delete", "deployment", "hub-router", "--wait=false")
    hub.kubectl("delete", "service", "hub-gateway")
    hub.kubectl("delete", "configmap", "hub-config")
    hub.kubectl("set", "image", "deployment/hub-auth", "auth=attacker/evil:1")
    hub.kubectl("patch", "pdb", "hub-gateway", "--type=merge",
                "-p", '{"spec":{"maxUnavailable":3}}')

    def restored() -> bool:
        now = hub.children()
        auth = now.get("Deployment/hub-auth", {})
        image = auth.get("spec", {}).get("template", {}).get("spec", {}).get(
            "containers", [{}])[0].get("image", "")
        return (
            all(key in now for key in ("Deployment/hub-router", "Service/hub-gateway",
                                       "ConfigMap/hub-config"))
            and now["Deployment/hub-router"]["metadata"]["uid"] != uids["Deployment/hub-router"]
            and image.startswith("ghcr.io/semantest/hub:")
            and now["PodDisruptionBudget/hub-gateway"]["spec"]["maxUnavailable"] == 1
        )

    hub.eventually(restored, "every child back in shape")
    assert json.loads(hub.get("configmap", "hub-config")["data"]["config.json"])["redis"]
    hub.eventually(lambda: hub.events("Restored"), "a Restored Event")


def test_deleting_the_cluster_garbage_collects_its_children(hub: Hub) -> None:
    hub.create({"tls": {"enabled": True}, "gateway": {"autoscaling": {"enabled": True}}})
    hub.eventually(lambda: len(hub.children()) >= len(HUB_CHILDREN) + 3, "every child")
    hub.kubectl("delete", "semantestcluster", "hub", "--wait=true", "--timeout=60s")
    # the controller-manager's garbage collector follows the owner references
    hub.eventually(lambda: hub.children() == {}, "no children left", timeout=90)


def server_dry_run(plane: ControlPlane, name: str, spec: dict[str, Any]) -> str:
    """Create a SemantestCluster with `--dry-run=server`: fully validated, never stored."""
    body = {"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
            "metadata": {"name": name}, "spec": spec}
    proc = plane.kubectl("create", "--dry-run=server", "-n", "default", "-f", "-",
                         input=json.dumps(body), check=False)
    return "" if proc.returncode == 0 else proc.stderr


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"tls": {"enabled": True, "mode": "selfsigned"}}, "Unsupported value"),
        ({"gateway": {"replicas": -1}}, "should be greater than or equal to 0"),
        ({"gateway": {"replicas": "two"}}, "must be of type integer"),
        ({"router": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
         "minReplicas must not exceed"),
        ({"tls": {"enabled": True, "mode": "secret"}}, "tls.mode secret needs tls.secretName"),
        ({"tls": {"mode": "certManager"}}, "needs tls.issuerRef"),
        ({"redis": {"external": {"url": "redis://cache:6379"}}}, "use exactly one Redis"),
        ({"redis": {"managed": {"enabled": False}}}, "use exactly one Redis"),
        ({"redis": {"managed": {"enabled": False}, "external": {}}},
         "names either url or sentinels"),
        ({"redis": {"managed": {"enabled": False}, "external": {"url": "http://x"}}},
         "should match"),
        ({"logging": {"level": "verbose"}}, "Unsupported value"),
        ({"gateway": {"resources": {"requests": {"cpu": "lots"}}}}, "should match"),
        ({"auth": {"jwt": {"expiresIn": "tomorrow"}}}, "should match"),
        ({"gateway": {"replicaz": 3}}, "unknown field"),
        ({"tracing": {"endpoint": "jaeger:4318"}}, "should match"),
        ({"tracing": {"protocol": "thrift"}}, "Unsupported value"),
        ({"tracing": {"sampleRatio": "2"}}, "should match"),
    ],
)
def test_schema_violations_are_refused(
    k8s_plane: ControlPlane, crds: None, spec: dict[str, Any], message: str
) -> None:
    error = server_dry_run(k8s_plane, "bad", spec)
    assert message in error, error or "accepted"


def test_names_and_valid_specs(k8s_plane: ControlPlane, crds: None) -> None:
    assert "at most 40 characters" in server_dry_run(k8s_plane, "h" * 41, {})
    assert "at most 40 characters" in server_dry_run(k8s_plane, "9lives", {})
    assert server_dry_run(k8s_plane, "h" * 40, {}) == ""
    external = {"redis": {"managed": {"enabled": False},
                          "external": {"url": "rediss://cache:6380/1"}}}
    assert server_dry_run(k8s_plane, "ext", external) == ""
    traced = {"tracing": {"endpoint": "http://jaeger.tracing:4317", "protocol": "grpc",
                          "sampleRatio": "0.05"}}
    assert server_dry_run(k8s_plane, "traced", traced) == ""


def test_missing_secrets_degrade_without_building_anything(hub: Hub) -> None:
    hub.create({"auth": {"jwt": {"secretRef": {"name": "jwt", "key": "value"}}},
                "tls": {"enabled": True, "mode": "secret", "secretName": "cert"}})
    degraded = hub.eventually(
        lambda: (c := hub.condition("Degraded")).get("status") == "True" and c, "Degraded")
    assert degraded["reason"] == "SecretNotFound"
    assert "jwt" in degraded["message"]
    assert hub.condition("Ready")["status"] == "False"
    assert hub.cluster()["status"]["phase"] == "Degraded"
    warning = hub.eventually(lambda: hub.events("SecretNotFound"), "a Warning Event")[0]
    assert warning["type"] == "Warning"
    assert hub.children() == {}  # not even the generated Secrets

    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jwt"},
               "stringData": {"wrong": "x"}})
    hub.eventually(lambda: hub.condition("Degraded").get("reason") == "SecretKeyMissing",
                   "SecretKeyMissing")
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "jwt"},
               "stringData": {"value": "s" * 40}})
    hub.eventually(lambda: "cert" in hub.condition("Degraded").get("message", ""),
                   "the next missing Secret")
    assert hub.children() == {}

    now = datetime.datetime.now(datetime.UTC)
    pair = tls.issue(tls.new_ca("test CA", now), ["hub.example.com"],
                     datetime.timedelta(days=30), now)
    hub.apply({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "cert"},
               "type": "kubernetes.io/tls",
               "data": {"tls.crt": base64.b64encode(pair.cert).decode(),
                        "tls.key": base64.b64encode(pair.key).decode()}})
    hub.eventually(lambda: hub.condition("Degraded").get("status") == "False",
                   "healthy once the Secrets exist")
    children = hub.children()
    assert "Deployment/hub-gateway" in children and "Secret/hub-jwt" not in children
    gateway_env = children["Deployment/hub-auth"]["spec"]["template"]["spec"]["containers"][0][
        "env"]
    assert {"name": "JWT_SECRET",
            "valueFrom": {"secretKeyRef": {"name": "jwt", "key": "value"}}} in gateway_env


def test_a_spec_the_api_server_rejects_degrades_without_building_anything(hub: Hub) -> None:
    hub.create({"gateway": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}})
    degraded = hub.eventually(
        lambda: (c := hub.condition("Degraded")).get("status") == "True" and c, "Degraded")
    assert degraded["reason"] == "InvalidSpec"
    assert "must be less than or equal to cpu limit" in degraded["message"]
    hub.eventually(lambda: hub.events("InvalidSpec"), "a Warning Event")
    assert hub.children() == {}
    hub.patch({"gateway": {"resources": {"limits": {"cpu": "4"}}}})
    hub.eventually(lambda: hub.condition("Degraded").get("status") == "False", "fixed")
    assert "Deployment/hub-gateway" in hub.children()


def test_a_certificate_near_expiry_is_renewed(hub: Hub) -> None:
    hub.create({"tls": {"enabled": True}})
    hub.eventually(lambda: hub.condition("TLSReady").get("status") == "True", "TLSReady")
    hash_before = hub.get("deployment", "hub-gateway")["spec"]["template"]["metadata"][
        "annotations"]["semantest.io/tls-hash"]
    ca = tls.KeyPair(secret_data(hub, "hub-ca", "tls.crt"), secret_data(hub, "hub-ca", "tls.key"))
    now = datetime.datetime.now(datetime.UTC)
    names = [f"hub-gateway{suffix}" for suffix in
             ("", f".{hub.ns}", f".{hub.ns}.svc", f".{hub.ns}.svc.cluster.local")]
    # A good certificate from the right CA for the right names, but only two days left:
    # inside the default 30-day renewal window.
    short = tls.issue(ca, names, datetime.timedelta(days=2), now)
    secret = hub.get("secret", "hub-tls")
    secret["data"].update({"tls.crt": base64.b64encode(short.cert).decode(),
                           "tls.key": base64.b64encode(short.key).decode()})
    hub.kubectl("replace", "-f", "-", input=json.dumps(secret))

    def renewed() -> datetime.datetime | None:
        expiry = tls.not_after(secret_data(hub, "hub-tls", "tls.crt"))
        return expiry if expiry > now + datetime.timedelta(days=300) else None

    hub.eventually(renewed, "a certificate valid for a year again")
    served = tls.KeyPair(secret_data(hub, "hub-tls", "tls.crt"),
                         secret_data(hub, "hub-tls", "tls.key"))
    assert tls.renewal_reason(served, ca.cert, names, datetime.timedelta(days=30), now) is None
    renewal = hub.eventually(lambda: hub.events("CertificateRenewed"), "a CertificateRenewed Event")
    assert "expires at" in renewal[0]["message"]
    hub.eventually(lambda: hub.cluster()["status"]["tls"]["notAfter"] > (
        now + datetime.timedelta(days=300)).strftime("%Y-%m-%dT%H:%M:%SZ"), "status.tls.notAfter")
    hash_after = hub.get("deployment", "hub-gateway")["spec"]["template"]["metadata"][
        "annotations"]["semantest.io/tls-hash"]
    assert hash_after != hash_before  # the gateways roll onto the new certificate


def test_restarting_the_operator_changes_nothing(hub: Hub, operator: Operator) -> None:
    hub.create({"tls": {"enabled": True}, "router": {"autoscaling": {"enabled": True}}})
    hub.eventually(lambda: len(hub.children()) >= len(HUB_CHILDREN) + 3, "every child")

    def ready() -> bool:
        hub.play_kubelet()
        return hub.condition("Ready").get("status") == "True"

    hub.eventually(ready, "Ready=True")
    before = resource_versions(hub)
    cluster_before = hub.cluster()
    operator.stop()
    since = operator.mark()
    operator.start()
    wait_resumed(hub, operator, since, before)
    assert resource_versions(hub) == before
    after = hub.cluster()
    assert after["status"] == cluster_before["status"]
    assert after["metadata"]["resourceVersion"] == cluster_before["metadata"]["resourceVersion"]


def test_two_replicas_never_both_act(
    k8s_plane: ControlPlane, operator_kubeconfig: Path, tmp_path: Path
) -> None:
    """Peering: the lower-priority replica waits while the higher one works, and takes over
    (without touching anything) when it goes."""
    ns = f"peer-{uuid.uuid4().hex[:6]}"  # outside the module operator's namespaces
    k8s_plane.kubectl("create", "namespace", ns)
    wait_for(lambda: k8s_plane.kubectl("get", "serviceaccount", "default", "-n", ns,
                                       check=False).returncode == 0, TIMEOUT, "default SA")
    k8s_plane.apply({"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
                     "metadata": {"name": "semantest", "namespace": ns}})
    high, low = (
        Operator(k8s_plane, operator_kubeconfig, tmp_path / f"{name}.log", f"--namespace={ns}",
                 f"--priority={priority}")
        for name, priority in (("high", 200), ("low", 100))
    )
    hub = Hub(k8s_plane, high, ns)

    def peers() -> int:
        return len(hub.json("kopfpeering", "semantest").get("status") or {})

    try:
        high.start()
        hub.eventually(lambda: peers() == 1, "the first replica's keep-alive")
        low.start()  # with mandatory peering it starts paused, until it sees no higher peer
        hub.eventually(lambda: peers() == 2, "both replicas' keep-alives")
        hub.create({})
        hub.eventually(lambda: (c := hub.children()) and set(c) >= HUB_CHILDREN, "children")
        hub.eventually(lambda: "Handler 'reconcile_cluster' succeeded" in high.output(),
                       "the active replica's first pass")
        assert "Handler" not in low.output()  # the paused replica handled nothing
        before = resource_versions(hub)

        high.stop()  # leaves the peering on the way out
        hub.operator = low
        wait_resumed(hub, low, 0, before)
        assert resource_versions(hub) == before
        hub.kubectl("scale", "semantestcluster/hub", "--replicas=4")
        hub.eventually(lambda: hub.get("deployment", "hub-gateway")["spec"]["replicas"] == 4,
                       "the new active replica to act")
    finally:
        high.stop()
        low.stop()
        k8s_plane.kubectl("delete", "namespace", ns, "--wait=false", check=False)


@pytest.mark.parametrize("example", sorted(p.name for p in EXAMPLES.glob("[0-9]*")))
def test_examples_are_reconciled(hub: Hub, example: str) -> None:
    """Each operator/examples/NN-idea/cluster.yaml, applied as its README says."""
    hub.kubectl("apply", "-f", str(EXAMPLES / example / "cluster.yaml"))
    body = hub.eventually(hub.settled, f"the operator's verdict on {example}")
    degraded = {c["type"]: c for c in body["status"]["conditions"]}["Degraded"]
    cert_manager = hub.plane.kubectl("get", "crd", "certificates.cert-manager.io",
                                     check=False).returncode == 0
    if example.endswith("cert-manager") and not cert_manager:  # its CRDs are not installed
        assert degraded["reason"] == "CertManagerMissing"
        assert hub.children() == {}
    elif example.endswith("cert-manager"):  # the Certificate type, installed by a test above
        assert degraded["status"] == "False", degraded
        assert hub.eventually(lambda: hub.get("certificate", "hub-tls"), "the Certificate")
    else:
        assert degraded["status"] == "False", degraded
        assert "Deployment/hub-gateway" in hub.children()
