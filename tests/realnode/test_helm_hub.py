"""`helm install` as skaffold.yaml does it, on the real node: the operator and the whole hub run
as pods on the locally built image, go Ready on their real probes, and serve the official
socket.io-client through the gateway Service; then scaling, TLS and uninstall.

The tests share one install and run in file order (each builds on the hub the previous left).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import JS, run_node
from tests.e2e.conftest import PASSWORD
from tests.e2e.test_js_client import check
from tests.k8s.plane import wait_for

from .hub import Hub, helm, install_like_skaffold, ready_pods, skaffold_release, wait_gone
from .node import RealNode

COMPONENTS = ("auth", "gateway", "router")
VENV_BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def hub(realnode: RealNode) -> Iterator[Hub]:
    hub = install_like_skaffold(realnode, realnode.images["hub"])
    yield hub
    release = skaffold_release()
    realnode.kubectl("delete", "namespace", release["namespace"], "--wait=false", check=False)


def patch_and_roll_out(realnode: RealNode, hub: Hub, component: str, spec: Any,
                       applied: Callable[[dict[str, Any]], bool]) -> None:
    """Merge-patch the hub's spec, wait until the operator has `applied` it to the component's
    Deployment, then for its rollout (new pods Ready on their probes, old ones gone)."""
    realnode.kubectl("patch", "stc", hub.name, "-n", hub.namespace, "--type=merge", "-p",
                     json.dumps({"spec": spec}))
    wait_for(lambda: applied(hub.deployments()[component]), 60,
             f"the operator to change the {component} Deployment")
    realnode.kubectl("rollout", "status", f"deployment/{hub.name}-{component}", "-n",
                     hub.namespace, "--timeout=240s", timeout=260)
    # `rollout status` returns while the old pods still terminate (preStop, then the drain):
    # until then they keep serving, with the old spec (an auth pod without the new users reads
    # logins from the bus; a gateway without TLS stays reachable a moment through the Service).
    wait_for(lambda: not any(pod["metadata"].get("deletionTimestamp")
                             for pod in hub.pods(component)), 120,
             f"the old {component} pods to be gone")


def mentions(name: str) -> Callable[[dict[str, Any]], bool]:
    """A Deployment whose pod template names `name` (a Secret it mounts or reads)."""
    return lambda deployment: name in json.dumps(deployment["spec"]["template"])


def operator_pods(hub: Hub) -> list[dict[str, Any]]:
    selector = "app.kubernetes.io/name=semantest,app.kubernetes.io/component=operator"
    return list(hub.get("pods", "-l", selector)["items"])


def test_helm_install_runs_the_operator_and_a_ready_hub(realnode: RealNode, hub: Hub) -> None:
    operators = operator_pods(hub)
    assert ready_pods(operators) == [p["metadata"]["name"] for p in operators] != []
    assert {c["image"] for p in operators for c in p["spec"]["containers"]} == {
        realnode.images["hub"]}

    hub.wait_ready()
    row = realnode.kubectl("get", "stc", hub.name, "-n", hub.namespace).stdout.split("\n")
    header, values = row[0].split(), row[1].split()
    assert dict(zip(header, values, strict=False))["READY"] == "True"

    status = hub.stc()["status"]
    for component, deployment in hub.deployments().items():
        # the status is the real Deployments', whose pods the kubelet made Ready
        assert status[component]["readyReplicas"] == deployment["status"]["readyReplicas"] >= 1
        pods = hub.pods(component)
        assert ready_pods(pods) and len(ready_pods(pods)) == deployment["status"]["readyReplicas"]
        for pod in pods:
            container = pod["spec"]["containers"][0]
            assert container["image"] == realnode.images["hub"]
            assert "readinessProbe" in container and "livenessProbe" in container
    assert set(hub.deployments()) == set(COMPONENTS)
    assert ready_pods(hub.pods("redis")), hub.describe()


def test_gateway_health_through_its_service(realnode: RealNode, hub: Hub) -> None:
    done = realnode.kubectl("get", "--raw",
                            f"/api/v1/namespaces/{hub.namespace}/services/"
                            f"{hub.name}-gateway:3000/proxy/health")
    health = json.loads(done.stdout)
    assert health["status"] == "healthy" and health["redis"] == "connected"


def test_official_client_runs_commands_sessions_and_channels(hub: Hub) -> None:
    seen = hub.tour()
    assert seen["transport"] == "websocket"  # polling first, then the upgrade, via kube-proxy
    assert seen["ack"]["accepted"] is True
    assert seen["progress"] == {"id": seen["ack"]["id"], "percent": 50}
    assert seen["result"]["id"] == seen["ack"]["id"] and seen["result"]["success"] is True
    assert seen["result"]["data"] == {"type": "NAVIGATE", "url": "https://example.com"}
    assert seen["result"]["metadata"]["extension"] == "pod-tour"
    assert seen["pong"]["timestamp"] == 42 and seen["pong"]["serverTime"] > 0
    session = seen["joined"]["sessionId"]
    assert seen["sessionResult"]["id"] == seen["sessionAck"]["id"]
    assert seen["sessionResult"]["sessionId"] == session
    assert seen["subscribed"] == {"channels": ["pod-news"]}
    assert seen["message"]["message"] == {"hello": "pods"}
    assert seen["message"]["offset"] == seen["published"]["offset"]


def test_seed_examples_with_jwt_login_through_the_service(realnode: RealNode, hub: Hub) -> None:
    """The seed's examples verbatim (tests/js/seed_examples.mjs, as the e2e tier runs them):
    a login user from a Secret named in spec.auth.usersSecret, JWT login through /auth/login."""
    hashed = subprocess.run([str(VENV_BIN / "semantest-server"), "hash-password"],
                            input=PASSWORD, capture_output=True, text=True, check=True)
    users = f"{hub.name}-users"
    realnode.kubectl("create", "secret", "generic", users, "-n", hub.namespace,
                     f"--from-literal=alice={hashed.stdout.strip()}")
    # the operator moves the auth pods' config (now holding the users) into a Secret
    patch_and_roll_out(realnode, hub, "auth", {"auth": {"usersSecret": {"name": users}}},
                       mentions(f"{hub.name}-auth-config"))
    hub.wait_ready()
    done = run_node(JS / "seed_examples.mjs", hub.gateway_url(), hub.api_key(), "alice",
                    PASSWORD, timeout=90)
    assert done.returncode == 0, done.stdout + done.stderr
    observed = json.loads(done.stdout.strip().splitlines()[-1])
    check(observed)


def test_kubectl_scale_stc_adds_a_serving_gateway(realnode: RealNode, hub: Hub) -> None:
    before = hub.deployments()["gateway"]["metadata"]["generation"]
    realnode.kubectl("scale", "stc", hub.name, "-n", hub.namespace, "--replicas=3")
    wait_for(lambda: hub.deployments()["gateway"]["metadata"]["generation"] > before, 60,
             "the operator to scale the gateway Deployment")
    realnode.kubectl("rollout", "status", f"deployment/{hub.name}-gateway", "-n",
                     hub.namespace, "--timeout=240s", timeout=260)
    hub.wait_ready()
    assert len(ready_pods(hub.pods("gateway"))) == 3
    assert hub.stc()["status"]["gateway"]["readyReplicas"] == 3
    # every gateway pod serves: the tour's sockets land where kube-proxy sends them, so run it
    # against each pod's own address as well
    for pod in hub.pods("gateway"):
        seen = hub.tour(url=f"http://{pod['status']['podIP']}:3000")
        assert seen["result"]["success"] is True, pod["metadata"]["name"]


def test_tls_self_signed_is_verified_against_the_secrets_ca(
    realnode: RealNode, hub: Hub, tmp_path: Any
) -> None:
    patch_and_roll_out(realnode, hub, "gateway", {"tls": {"enabled": True, "mode": "selfSigned"}},
                       mentions(f"{hub.name}-tls"))
    hub.wait_ready()
    ca = tmp_path / "ca.crt"
    ca.write_text(hub.secret(f"{hub.name}-tls", "ca.crt"))
    seen = hub.tour(url=hub.gateway_url("https"), ca=str(ca), serverName=hub.service_dns_name())
    assert seen["transport"] == "websocket" and seen["result"]["success"] is True
    other = tmp_path / "other-ca.crt"
    other.write_text(realnode.ca_file.read_text())  # a CA that did not sign the gateway's cert
    # the same URL and name, only the CA differs: the client refuses the gateway
    with pytest.raises(AssertionError, match="connect_error"):
        hub.tour(url=hub.gateway_url("https"), ca=str(other), serverName=hub.service_dns_name())


def test_helm_uninstall_leaves_only_what_the_docs_say(realnode: RealNode, hub: Hub) -> None:
    """docs/kubernetes.md: the CRDs, any other SemantestCluster and the kopf peering object
    stay; the operator, its RBAC and the chart's hub (with every child) go."""
    release = skaffold_release()
    helm(realnode, "uninstall", release["name"], "-n", hub.namespace, "--wait", "--timeout=3m")
    kinds = "deployments,statefulsets,services,configmaps,secrets,pods,poddisruptionbudgets"
    wait_gone(realnode, kinds, "-l", "app.kubernetes.io/name=semantest",
              namespace=hub.namespace, timeout=180)
    assert not hub.get("semantestclusters")["items"]
    names = {i["metadata"]["name"] for i in realnode.get_json(
        "clusterroles,clusterrolebindings")["items"]}
    assert not {n for n in names if n.startswith(f"{release['name']}-semantest")}
    realnode.get_json("crd", "semantestclusters.semantest.io")  # stays
    realnode.get_json("clusterkopfpeering", "semantest")  # stays, as documented
