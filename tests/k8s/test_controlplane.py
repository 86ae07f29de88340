"""Proof that the test control plane is a real Kubernetes: the server's own version, OpenAPI
schema validation of custom resources, the Deployment and garbage-collector controllers of the
controller-manager, and RBAC for ServiceAccount tokens from the TokenRequest API.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from pathlib import Path
from typing import Any

from .plane import ControlPlane, wait_for

WAIT = 90  # s: bound on waits for controllers; the tests assert outcomes, not durations

GROUP = "planetest.semantest.io"
CRD = {
    "apiVersion": "apiextensions.k8s.io/v1",
    "kind": "CustomResourceDefinition",
    "metadata": {"name": f"widgets.{GROUP}"},
    "spec": {
        "group": GROUP,
        "scope": "Namespaced",
        "names": {"plural": "widgets", "singular": "widget", "kind": "Widget"},
        "versions": [
            {
                "name": "v1",
                "served": True,
                "storage": True,
                "subresources": {"status": {}},
                "schema": {
                    "openAPIV3Schema": {
                        "type": "object",
                        "properties": {
                            "spec": {
                                "type": "object",
                                "required": ["size"],
                                "properties": {
                                    "size": {"type": "integer", "minimum": 1, "maximum": 10},
                                    "color": {"type": "string", "enum": ["red", "blue"]},
                                },
                            },
                        },
                    }
                },
            }
        ],
    },
}


def widget(name: str, spec: dict[str, Any]) -> str:
    return json.dumps(
        {"apiVersion": f"{GROUP}/v1", "kind": "Widget", "metadata": {"name": name}, "spec": spec}
    )


def pinned_version() -> str:
    """The k8s.io/kubernetes version pinned in the wrapper module's go.mod."""
    gomod = Path(__file__).parent.joinpath("controlplane", "kube", "go.mod").read_text()
    m = re.search(r"^\s*(?:require\s+)?k8s\.io/kubernetes (v\S+)", gomod, re.MULTILINE)
    assert m, "no k8s.io/kubernetes requirement in go.mod"
    return m.group(1)


def test_server_reports_its_real_version(k8s_plane: ControlPlane) -> None:
    out = json.loads(k8s_plane.kubectl("version", "-o", "json").stdout)
    server = out["serverVersion"]
    assert server["gitVersion"] == k8s_plane.version
    assert server["gitVersion"].startswith(f"v{server['major']}.{server['minor']}."), server
    assert server["gitTreeState"] == "clean"
    if not os.environ.get("SEMANTEST_K8S_ASSETS"):  # built here: exactly the pin
        assert server["gitVersion"] == pinned_version()
    # the components answer with the same stamped version on the command line
    for binary in ("kube-apiserver", "kube-controller-manager"):
        v = subprocess.run(
            [str(k8s_plane.bin_dir / binary), "--version"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert v.strip() == f"Kubernetes {server['gitVersion']}"


def test_crd_schema_is_enforced(k8s_plane: ControlPlane, k8s_namespace: str) -> None:
    k8s_plane.apply(CRD)
    k8s_plane.kubectl(
        "wait", "--for=condition=Established", f"crd/widgets.{GROUP}", f"--timeout={WAIT}s"
    )

    k8s_plane.kubectl("apply", "-n", k8s_namespace, "-f", "-", input=widget("ok", {"size": 3}))
    got = k8s_plane.get_json(f"widgets.{GROUP}", "ok", namespace=k8s_namespace)
    assert got["spec"] == {"size": 3}

    bad = {
        "wrong-type": {"size": "three"},
        "too-big": {"size": 11},
        "missing-required": {"color": "red"},
        "not-in-enum": {"size": 2, "color": "green"},
    }
    for name, spec in bad.items():
        proc = k8s_plane.kubectl(
            "apply", "-n", k8s_namespace, "-f", "-", input=widget(name, spec), check=False
        )
        assert proc.returncode != 0, f"{name} was accepted"
        assert "is invalid" in proc.stderr, proc.stderr
        assert "spec." in proc.stderr, proc.stderr
    names = {
        w["metadata"]["name"]
        for w in k8s_plane.get_json(f"widgets.{GROUP}", namespace=k8s_namespace)["items"]
    }
    assert names == {"ok"}


def deployment(name: str, replicas: int = 2) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                "spec": {"containers": [{"name": "main", "image": "registry.invalid/none:1"}]},
            },
        },
    }


def owned_by(items: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [
        i
        for i in items
        if any(o.get("uid") == uid for o in i["metadata"].get("ownerReferences", []))
    ]


def test_deployment_gets_replicaset_and_pods(k8s_plane: ControlPlane, k8s_namespace: str) -> None:
    k8s_plane.apply(deployment("web", replicas=2), namespace=k8s_namespace)
    dep_uid = k8s_plane.get_json("deployment", "web", namespace=k8s_namespace)["metadata"]["uid"]

    def replicasets() -> list[dict[str, Any]]:
        rs = k8s_plane.get_json("replicasets", namespace=k8s_namespace)["items"]
        return owned_by(rs, dep_uid)

    rs = wait_for(replicasets, WAIT, "the Deployment controller to create a ReplicaSet")
    assert len(rs) == 1
    rs_uid = rs[0]["metadata"]["uid"]

    def pods() -> list[dict[str, Any]] | None:
        items = owned_by(k8s_plane.get_json("pods", namespace=k8s_namespace)["items"], rs_uid)
        return items if len(items) == 2 else None

    created = wait_for(pods, WAIT, "the ReplicaSet controller to create 2 Pods")
    # no scheduler and no kubelet: the Pods exist but are never bound to a node
    assert all(p["status"]["phase"] == "Pending" for p in created)
    status = k8s_plane.get_json("deployment", "web", namespace=k8s_namespace)["status"]
    assert status.get("replicas") == 2


def test_deleting_owner_garbage_collects_dependents(
    k8s_plane: ControlPlane, k8s_namespace: str
) -> None:
    ns = k8s_namespace
    k8s_plane.kubectl("create", "configmap", "owner", "-n", ns)
    owner_uid = k8s_plane.get_json("configmap", "owner", namespace=ns)["metadata"]["uid"]
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "child",
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner_uid}
            ],
        },
        "data": {"k": "v"},
    }
    k8s_plane.apply(child, namespace=ns)
    k8s_plane.kubectl("create", "configmap", "bystander", "-n", ns)

    k8s_plane.kubectl("delete", "configmap", "owner", "-n", ns)
    wait_for(
        lambda: (
            k8s_plane.kubectl("get", "configmap", "child", "-n", ns, check=False).returncode != 0
        ),
        WAIT,
        "the garbage collector to delete the child ConfigMap",
    )
    assert (
        "NotFound" in k8s_plane.kubectl("get", "configmap", "child", "-n", ns, check=False).stderr
    )
    k8s_plane.kubectl("get", "configmap", "bystander", "-n", ns)  # unowned: untouched

    # the same for a Deployment: its ReplicaSet and Pods go with it
    k8s_plane.apply(deployment("gone", replicas=1), namespace=ns)
    dep_uid = k8s_plane.get_json("deployment", "gone", namespace=ns)["metadata"]["uid"]
    wait_for(
        lambda: owned_by(k8s_plane.get_json("replicasets", namespace=ns)["items"], dep_uid),
        WAIT,
        "a ReplicaSet for deployment/gone",
    )
    k8s_plane.kubectl("delete", "deployment", "gone", "-n", ns, "--cascade=background")
    wait_for(
        lambda: not owned_by(k8s_plane.get_json("replicasets", namespace=ns)["items"], dep_uid),
        WAIT,
        "the garbage collector to delete the ReplicaSet of deployment/gone",
    )


def test_rbac_enforced_for_service_account_token(
    k8s_plane: ControlPlane, k8s_namespace: str, tmp_path: Path
) -> None:
    ns = k8s_namespace
    k8s_plane.kubectl("create", "serviceaccount", "reader", "-n", ns)
    k8s_plane.kubectl("create", "configmap", "data", "-n", ns, "--from-literal=k=v")
    token = k8s_plane.token_for(ns, "reader")
    assert token.count(".") == 2  # a JWT from the TokenRequest API
    kc = k8s_plane.token_kubeconfig(token, tmp_path / "reader.kubeconfig")

    def as_reader(*args: str, namespace: str = ns) -> subprocess.CompletedProcess[str]:
        return k8s_plane.kubectl(*args, "-n", namespace, kubeconfig=kc, check=False)

    who = json.loads(k8s_plane.kubectl("auth", "whoami", "-o", "json", kubeconfig=kc).stdout)
    assert who["status"]["userInfo"]["username"] == f"system:serviceaccount:{ns}:reader"

    # authenticated, but no role yet: refused
    denied = as_reader("get", "configmap", "data")
    assert denied.returncode != 0
    assert "Forbidden" in denied.stderr and "cannot get resource" in denied.stderr, denied.stderr

    k8s_plane.kubectl(
        "create",
        "role",
        "cm-reader",
        "-n",
        ns,
        "--verb=get",
        "--verb=list",
        "--resource=configmaps",
    )
    k8s_plane.kubectl(
        "create",
        "rolebinding",
        "cm-reader",
        "-n",
        ns,
        "--role=cm-reader",
        f"--serviceaccount={ns}:reader",
    )
    # the RBAC authorizer learns of new bindings through a watch: wait for it, then assert
    allowed = wait_for(
        lambda: (p := as_reader("get", "configmap", "data", "-o", "json")).returncode == 0 and p,
        WAIT,
        "the new RoleBinding to take effect",
    )
    assert json.loads(allowed.stdout)["data"] == {"k": "v"}

    # a verb the role lacks stays refused
    lacking = as_reader("delete", "configmap", "data")
    assert lacking.returncode != 0
    assert "Forbidden" in lacking.stderr and "cannot delete resource" in lacking.stderr
    lacking = as_reader("create", "configmap", "other")
    assert lacking.returncode != 0 and "forbidden" in lacking.stderr.lower()
    # other namespaces are out of reach: the binding is namespaced
    assert "forbidden" in as_reader("get", "configmaps", namespace="default").stderr.lower()
    k8s_plane.kubectl("get", "configmap", "data", "-n", ns)  # the admin still sees it

    # grant the missing verb: now it works
    k8s_plane.kubectl(
        "create", "role", "cm-deleter", "-n", ns, "--verb=delete", "--resource=configmaps"
    )
    k8s_plane.kubectl(
        "create",
        "rolebinding",
        "cm-deleter",
        "-n",
        ns,
        "--role=cm-deleter",
        f"--serviceaccount={ns}:reader",
    )
    wait_for(
        lambda: as_reader("delete", "configmap", "data").returncode == 0,
        WAIT,
        "delete to be allowed once the verb is granted",
    )
    assert k8s_plane.kubectl("get", "configmap", "data", "-n", ns, check=False).returncode != 0
