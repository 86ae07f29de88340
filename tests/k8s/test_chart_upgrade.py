"""Upgrading a running install from the previous release to this one, as docs/kubernetes.md says.

The previous release is the first one's chart and operator, taken from this repository's
history (`git archive PREVIOUS`), its operator run from that tree as its image would run it.
It installs on a control plane of its own (its older CRD must not reach the other tests), makes
a hub with self-signed TLS, and is then upgraded the documented way: the new CRDs applied
server-side, `helm upgrade --reset-then-reuse-values`, the new operator started from the
upgraded Deployment with the new chart's RBAC. What must hold:

- the CRD changes are applied, and the hub is reconciled for its generation by the new operator;
- nothing restarts that did not need to: the Redis StatefulSet's pod template is untouched (a
  Redis restart is never needed by an operator upgrade); the hub Deployments change once, as
  docs/operator.md "Upgrading to this version" says; a second start of the new operator writes
  nothing at all;
- the generated credentials are the same bytes (nobody is logged out), and the old finalizer on
  the certificate Secret is gone.
"""

from __future__ import annotations

import re
import subprocess
import tarfile
from collections.abc import Iterator
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from tests.chart.chart import CHART
from tests.k8s.conftest import started_plane
from tests.k8s.plane import ControlPlane, wait_for
from tests.k8s.test_chart_install import (
    HUB_DEPLOYMENTS,
    Operator,
    established,
    fresh_namespace,
    helm,
    run_pod,
    status_observed,
)

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS = "2c62a809b55ec9c2a25e21f8a9b8fb34186b55be"  # the first release (2026-11-25)
LEGACY_FINALIZER = "semantest.io/finalizer"
CLUSTER = "hub"
SECRETS = ("jwt", "admin-key", "redis", "tls", "ca")

pytestmark = [pytest.mark.k8s, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def previous(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The previous release's chart and operator package, extracted from git history."""
    found = subprocess.run(["git", "-C", str(ROOT), "cat-file", "-e", f"{PREVIOUS}^{{commit}}"],
                           capture_output=True, check=False)
    if found.returncode != 0:
        pytest.skip(f"the previous release ({PREVIOUS[:7]}) is not in this clone's history "
                    "(a shallow clone?): the upgrade from it cannot be tested")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", PREVIOUS, "charts/semantest",
                              "operator/semantest_operator"], capture_output=True, check=True)
    tree = tmp_path_factory.mktemp("previous-release")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(tree, filter="data")
    return tree


@pytest.fixture(scope="module")
def plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    with started_plane(tmp_path_factory.mktemp("k8s-upgrade-plane")) as started:
        yield started


def snapshot(plane: ControlPlane, namespace: str) -> dict[str, Any]:
    """What the upgrade may or may not change, read from the API server."""
    def get(kind: str, name: str) -> dict[str, Any]:
        return dict(plane.get_json(kind, f"{CLUSTER}-{name}", namespace=namespace))

    return {
        "secrets": {name: get("secret", name)["data"] for name in SECRETS},
        "redis": get("statefulset", "redis")["spec"]["template"],
        "deployments": {c: get("deployment", c)["spec"]["template"] for c in HUB_DEPLOYMENTS},
        "finalizers": get("secret", "tls")["metadata"].get("finalizers", []),
    }


def versions(plane: ControlPlane, namespace: str) -> dict[str, str]:
    """resourceVersion of every object in the namespace the operator may write."""
    kinds = ("semantestclusters,deployments,statefulsets,services,configmaps,secrets,"
             "poddisruptionbudgets")
    found = plane.get_json(kinds, namespace=namespace)
    return {f"{o['kind']}/{o['metadata']['name']}": o["metadata"]["resourceVersion"]
            for o in found["items"]}


def test_upgrading_from_the_previous_release_restarts_only_what_must(
    plane: ControlPlane, previous: Path, tmp_path: Path
) -> None:
    namespace = fresh_namespace(plane, "upgrade")
    operator = "semantest-operator"  # the release's name is the chart's: not repeated

    helm(plane, "install", "semantest", str(previous / "charts" / "semantest"), "-n", namespace,
         "--wait=false")
    wait_for(lambda: established(plane, "semantestclusters.semantest.io"), 30, "the old CRD")
    with run_pod(plane, namespace, operator, own(tmp_path / "old"), code=previous / "operator"):
        plane.apply({"apiVersion": "semantest.io/v1alpha1", "kind": "SemantestCluster",
                     "metadata": {"name": CLUSTER},
                     "spec": {"tls": {"enabled": True, "mode": "selfSigned"}}},
                    namespace=namespace)
        status_observed(plane, namespace, CLUSTER)
        wait_for(lambda: LEGACY_FINALIZER in snapshot(plane, namespace)["finalizers"], 60,
                 "the old release's finalizer on the certificate Secret")
        before = snapshot(plane, namespace)

    crds = plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"),
                         check=False)
    assert crds.returncode == 0, f"the documented CRD step failed:\n{crds.stderr}"
    helm(plane, "upgrade", "semantest", str(CHART), "-n", namespace, "--reset-then-reuse-values",
         "--wait=false")
    crd = plane.get_json("crd", "semantestclusters.semantest.io")
    fields = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    assert "drainTimeout" in fields["properties"], "the new CRD is not applied"
    assert "usersSecret" in fields["properties"]["auth"]["properties"]

    with run_pod(plane, namespace, operator, own(tmp_path / "new")) as new:
        wait_resumed(new, namespace)
        assert snapshot(plane, namespace)["finalizers"] == []
        assert new.forbidden() == [], new.forbidden()
        after = snapshot(plane, namespace)
        settled = quiet(plane, namespace)

    assert after["secrets"] == before["secrets"], "generated credentials changed"
    assert after["redis"] == before["redis"], "the Redis pod template changed: Redis restarts"
    changed = {c for c in HUB_DEPLOYMENTS if after["deployments"][c] != before["deployments"][c]}
    assert changed == HUB_DEPLOYMENTS  # the drain settings, as docs/operator.md says

    with run_pod(plane, namespace, operator, own(tmp_path / "again")) as again:
        wait_resumed(again, namespace)
        assert versions(plane, namespace) == settled, "a restart of the new operator wrote"


def quiet(plane: ControlPlane, namespace: str) -> dict[str, str]:
    """The versions once two reads 2 s apart agree: the controllers are done with the rolled
    Deployments' new ReplicaSets, the operator with its status."""
    seen: list[dict[str, str]] = []

    def unchanged() -> dict[str, str] | None:
        seen.append(versions(plane, namespace))
        return seen[-1] if len(seen) > 1 and seen[-1] == seen[-2] else None

    return wait_for(unchanged, 60, "the namespace to settle", interval=2)


def own(folder: Path) -> Path:
    """A folder for one operator process's files."""
    folder.mkdir()
    return folder


def wait_resumed(operator: Operator, namespace: str) -> None:
    """Until a freshly started operator has passed over the hub and each of its Deployments."""
    def done() -> bool:
        log = operator.text()
        # "Updating" when the previous release's last-handled spec lacks the new defaults
        return re.search(rf"\[{namespace}/{CLUSTER}\] (Resuming|Updating) is processed", log) \
            is not None and all(
            f"[{namespace}/{CLUSTER}-{c}] Handler 'restore_child' succeeded" in log
            for c in HUB_DEPLOYMENTS)

    wait_for(done, 90, "the new operator's pass over the hub", interval=1)
