"""The hub on the real node, installed and reached the way its users do it.

`install_like_skaffold` runs skaffold.yaml's deploy step by hand (skaffold itself cannot be
installed here): the same chart, release, namespace and values, with the image
images/build.sh made from the same Dockerfile. `Hub` then reads the hub's state with kubectl
and reaches its gateway Service at its ClusterIP (kube-proxy routes it from the host too).
"""

from __future__ import annotations

import base64
import contextlib
import json
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.chart.chart import CHART, REPO, load_yaml
from tests.chart.test_skaffold import sets_from
from tests.conftest import run_node
from tests.k8s.plane import ControlPlane, wait_for

from .node import RealNode

TOUR = Path(__file__).resolve().parent / "js" / "tour.mjs"
LOAD_RUNS: list[str] = []
"""A line per load run of the failover tests, for the terminal summary (pass or fail)."""
READY_TIMEOUT = 300  # s: a cold node pulls nothing, but five pods start on two shared cores


def helm(plane: ControlPlane, *args: str, timeout: float = 400) -> str:
    """`helm ARGS` against the plane; its stdout. Fails the test with helm's stderr."""
    proc = subprocess.run([str(plane.bin_dir / "helm"), *args], env=plane.env,
                          capture_output=True, text=True, timeout=timeout, check=False)
    assert proc.returncode == 0, f"helm {' '.join(args)}:\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


@contextlib.contextmanager
def installed(realnode: RealNode, release: str, sets: dict[str, str],
              timeout_s: int = 300) -> Iterator[Hub]:
    """`helm install` of the chart as `release` in a namespace of that name, with a hub of that
    name on the node's image (no Redis volume), Ready; uninstalled afterwards."""
    repo, tag = realnode.images["hub"].rsplit(":", 1)
    sets = {"image.repository": repo, "image.tag": tag, "cluster.enabled": "true",
            "cluster.name": release, "operator.peering.name": release,
            "cluster.spec.redis.managed.storage.enabled": "false", **sets}
    helm(realnode, "install", release, str(CHART), "-n", release, "--create-namespace",
         *[a for k, v in sets.items() for a in ("--set", f"{k}={v}")], "--wait",
         f"--timeout={timeout_s}s", timeout=timeout_s + 100)
    hub = Hub(realnode, release, release)
    try:
        hub.wait_ready()
        yield hub
    finally:
        helm(realnode, "uninstall", release, "-n", release, "--wait", "--timeout=3m")
        realnode.kubectl("delete", "namespace", release, "--wait=false", check=False)


def skaffold_release() -> dict[str, Any]:
    """The one Helm release of skaffold.yaml's deploy step."""
    (release,) = load_yaml(REPO / "skaffold.yaml")["deploy"]["helm"]["releases"]
    return dict(release)


@dataclass
class Hub:
    """One SemantestCluster `name` in `namespace` on the node."""

    plane: ControlPlane
    namespace: str
    name: str

    def get(self, *what: str) -> Any:
        return self.plane.get_json(*what, namespace=self.namespace)

    def stc(self) -> dict[str, Any]:
        return dict(self.get("semantestcluster", self.name))

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """`kubectl wait stc/NAME --for=condition=Ready`, with the pods' story on failure."""
        done = self.plane.kubectl(
            "wait", "-n", self.namespace, f"semantestcluster/{self.name}",
            "--for=condition=Ready", f"--timeout={int(timeout)}s", check=False,
            timeout=timeout + 30)
        assert done.returncode == 0, f"{done.stderr}\n{self.describe()}"

    def describe(self) -> str:
        """What a user would look at when the hub is not Ready."""
        out = [self.plane.kubectl("get", "pods,stc,pvc", "-n", self.namespace, "-o", "wide",
                                  check=False).stdout]
        conditions = (self.stc().get("status") or {}).get("conditions", [])
        out.append(json.dumps(conditions, indent=1))
        out.append(self.plane.kubectl("get", "events", "-n", self.namespace,
                                      "--sort-by=.lastTimestamp", check=False).stdout[-4000:])
        return "\n".join(out)

    def selector(self) -> str:
        """The labels of the operator's children of this hub (a chart release's own objects
        share the instance label when the hub is named after the release)."""
        return (f"app.kubernetes.io/instance={self.name},"
                "app.kubernetes.io/managed-by=semantest-operator")

    def deployments(self) -> dict[str, dict[str, Any]]:
        """The hub's Deployments by component (auth, gateway, router)."""
        found = self.get("deployments", "-l", self.selector())
        return {d["metadata"]["labels"]["app.kubernetes.io/component"]: d
                for d in found["items"]}

    def pods(self, component: str | None = None) -> list[dict[str, Any]]:
        selector = self.selector()
        if component:
            selector += f",app.kubernetes.io/component={component}"
        return list(self.get("pods", "-l", selector)["items"])

    def secret(self, name: str, key: str) -> str:
        data = self.get("secret", name)["data"][key]
        return base64.b64decode(data).decode()

    def api_key(self) -> str:
        """The admin API key the operator generated into its Secret."""
        return self.secret(f"{self.name}-admin-key", "admin-api-key")

    def gateway_url(self, scheme: str = "http") -> str:
        """The gateway Service at its ClusterIP (reachable from the host through kube-proxy)."""
        service = self.get("service", f"{self.name}-gateway")["spec"]
        return f"{scheme}://{service['clusterIP']}:{service['ports'][0]['port']}"

    def service_dns_name(self) -> str:
        return f"{self.name}-gateway.{self.namespace}.svc"

    def tour(self, **options: str) -> dict[str, Any]:
        """Run js/tour.mjs (the official socket.io-client) against the gateway Service."""
        options.setdefault("url", self.gateway_url())
        options.setdefault("apiKey", self.api_key())
        done = run_node(TOUR, json.dumps(options), timeout=90)
        assert done.returncode == 0, done.stdout + done.stderr
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def ready_pods(pods: list[dict[str, Any]]) -> list[str]:
    """Names of the pods whose kubelet reports them Running and Ready."""
    return [p["metadata"]["name"] for p in pods
            if p["status"].get("phase") == "Running"
            and any(c["type"] == "Ready" and c["status"] == "True"
                    for c in p["status"].get("conditions", []))]


def install_like_skaffold(plane: ControlPlane, image: str) -> Hub:
    """skaffold.yaml's deploy step with `image`: `helm install` of its release, values and
    namespace, waiting (as skaffold's status check does) for the operator to be Ready."""
    release = skaffold_release()
    repo, tag = image.rsplit(":", 1)
    sets = [arg for s in sets_from(release, repo, tag) for arg in ("--set", s)]
    namespace = release["namespace"]
    helm(plane, "install", release["name"], str(REPO / release["chartPath"]), "-n", namespace,
         *(["--create-namespace"] if release.get("createNamespace") else []), *sets,
         "--wait", "--timeout=5m")
    cluster = dict(kv.split("=", 1) for kv in sets[1::2])["cluster.name"]
    return Hub(plane, namespace, cluster)


def wait_gone(plane: ControlPlane, *what: str, namespace: str, timeout: float = 120) -> None:
    """Until `kubectl get WHAT` finds nothing in `namespace`."""
    wait_for(lambda: not plane.get_json(*what, namespace=namespace)["items"], timeout,
             f"{' '.join(what)} in {namespace} to be gone", interval=1)
