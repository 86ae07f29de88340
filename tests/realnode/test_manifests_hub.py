"""`kubectl apply -f manifests/` (no Helm) on the real node gives the same running hub: the
operator from install.yaml, the minimal example SemantestCluster with every default (two pods
per component, Redis on a PersistentVolume), Ready and serving the official client.
"""

from __future__ import annotations

from tests.chart.chart import MANIFESTS, load_all
from tests.k8s.plane import wait_for

from .hub import Hub, ready_pods, wait_gone
from .node import RealNode

INSTALL = MANIFESTS / "install.yaml"
EXAMPLE = MANIFESTS / "examples" / "semantestcluster.yaml"


def test_kubectl_apply_gives_the_same_running_hub(realnode: RealNode) -> None:
    objs = load_all(INSTALL.read_text())
    system = next(o["metadata"]["name"] for o in objs if o["kind"] == "Namespace")
    operator = next(o["metadata"]["name"] for o in objs if o["kind"] == "Deployment")
    namespace = "manifests-hub"
    realnode.kubectl("apply", "--server-side", "-f", str(INSTALL))
    try:
        realnode.kubectl("rollout", "status", f"deployment/{operator}", "-n", system,
                         "--timeout=180s", timeout=200)
        realnode.kubectl("create", "namespace", namespace)
        realnode.kubectl("apply", "-n", namespace, "-f", str(EXAMPLE))
        hub = Hub(realnode, namespace, load_all(EXAMPLE.read_text())[0]["metadata"]["name"])
        wait_for(lambda: set(hub.deployments()) == {"auth", "gateway", "router"}, 120,
                 "the operator's Deployments")
        for component, deployment in hub.deployments().items():
            assert deployment["spec"]["replicas"] == 2, component  # the CRD's default
            realnode.kubectl("rollout", "status", f"deployment/{hub.name}-{component}", "-n",
                             namespace, "--timeout=240s", timeout=260)
            assert len(ready_pods(hub.pods(component))) == 2, hub.describe()
        (claim,) = hub.get("pvc")["items"]
        assert claim["status"]["phase"] == "Bound"
        seen = hub.tour()
        assert seen["result"]["success"] is True and seen["message"]["message"] == {
            "hello": "pods"}
        hub.wait_ready(timeout=120)  # a Progressing cluster is looked at again every 10 s
    finally:
        realnode.kubectl("delete", "semantestcluster", "--all", "-n", namespace,
                         "--timeout=120s", check=False, timeout=150)
        realnode.kubectl("delete", "namespace", namespace, "--timeout=120s", check=False,
                         timeout=150)
        realnode.kubectl("delete", "-f", str(INSTALL), "--timeout=120s", check=False,
                         timeout=150)
    wait_gone(realnode, "pods", namespace=system)
