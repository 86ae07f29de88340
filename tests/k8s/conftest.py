"""Fixtures for tests against a real Kubernetes control plane (tests/k8s/).

`k8s_plane` (session scope) starts etcd, kube-apiserver and kube-controller-manager as local
processes on free loopback ports, with a CA and certificates generated for the session, writes an
admin kubeconfig (user in group system:masters), waits for /readyz and for the controller-manager
to reconcile, and stops everything at the end of the session, also when tests fail. It starts
only when a test asks for it. The binaries come from `make testenv`
(tests/k8s/controlplane/testenv.sh, cached in ~/.cache/semantest/k8s-<version>/bin, or
SEMANTEST_K8S_ASSETS); if they are not built the fixture fails and says to run `make testenv`
(set SEMANTEST_K8S_BUILD=1 to let the fixture build them itself, ~20 min cold).

The object it returns (tests/k8s/plane.py `ControlPlane`) has:

- `kubeconfig`: Path of the admin kubeconfig.
- `server`: the API server URL, `https://127.0.0.1:<port>`.
- `ca_file`: Path of the CA certificate that signed the serving and client certificates.
- `bin_dir`: Path of the folder with etcd, kube-apiserver, kube-controller-manager, kubectl, helm.
- `env`: a copy of os.environ with KUBECONFIG set and bin_dir first on PATH, for
  `subprocess.run(["kubectl", ...], env=k8s_plane.env)` or `["helm", ...]`.
- `version`: the server's gitVersion (e.g. "v1.37.2").
- `workdir`: certificates, kubeconfigs and each component's log (`logs` maps name -> Path).
- `kubectl(*args, input=None, check=True, kubeconfig=None)`: run kubectl, CompletedProcess[str].
- `get_json(*args, namespace=None)`: `kubectl get ... -o json`, parsed.
- `apply(manifest, namespace=None)`: server-side apply of YAML/JSON text or a dict.
- `token_for(namespace, service_account, duration="1h")`: a token from the TokenRequest API.
- `token_kubeconfig(token, path=None)`: write a kubeconfig that uses that token, return its Path.

`k8s_namespace` (function scope) creates a fresh namespace per test, waits until its `default`
ServiceAccount exists, and returns its name; it deletes the namespace afterwards without waiting.

There is no kubelet and no scheduler: Pods are created by the controllers but stay Pending, so a
test that needs Deployment readiness patches the status subresource itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import mark_tier

from .plane import ControlPlane, PlaneError, find_bin_dir, wait_for

_STARTED: list[ControlPlane] = []  # for the terminal summary line

START_TIMEOUT = float(os.environ.get("SEMANTEST_K8S_START_TIMEOUT", "240"))  # s


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark tests that use the plane `k8s`; whichever runs first also pays for the plane's
    start, so their pytest-timeout (when not set by a marker) gets START_TIMEOUT on top."""
    mine = [i for i in items if "k8s_plane" in getattr(i, "fixturenames", ())]
    mark_tier(config, mine, pytest.mark.k8s, START_TIMEOUT)


@contextlib.contextmanager
def started_plane(workdir: Path) -> Iterator[ControlPlane]:
    """A control plane started in `workdir`, stopped on exit (also when the start fails)."""
    try:
        bin_dir = find_bin_dir(build=bool(os.environ.get("SEMANTEST_K8S_BUILD")))
    except PlaneError as e:
        pytest.fail(f"Kubernetes binaries not available; run `make testenv` first.\n{e}")
    plane = ControlPlane(bin_dir=bin_dir, workdir=workdir, start_timeout=START_TIMEOUT)
    try:
        plane.start()
        _STARTED.append(plane)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def k8s_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A started control plane shared by the session; see the module docstring."""
    with started_plane(tmp_path_factory.mktemp("k8s-plane")) as plane:
        yield plane


@pytest.fixture
def k8s_namespace(k8s_plane: ControlPlane, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for this test (name returned); deleted afterwards without waiting."""
    base = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"{base or 'test'}-{uuid.uuid4().hex[:6]}"
    k8s_plane.kubectl("create", "namespace", name)
    wait_for(
        lambda: (
            k8s_plane.kubectl(
                "get", "serviceaccount", "default", "-n", name, check=False
            ).returncode
            == 0
        ),
        60,
        f"the default ServiceAccount in namespace {name}",
    )
    try:
        yield name
    finally:
        k8s_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line with the plane's version and start time, when a test started it."""
    for plane in _STARTED:
        terminalreporter.write_line(
            f"k8s plane: {plane.version} (etcd, kube-apiserver, kube-controller-manager) "
            f"started in {plane.startup_seconds:.1f} s; logs in {plane.workdir}"
        )
