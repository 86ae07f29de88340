"""Fixtures for the real-node tier (tests/realnode/): the hub as users run it, in pods.

`realnode` (session scope) builds or finds the images (images/build.sh, cached), starts the
control plane and one real node (node.py `RealNode`: containerd, kubelet, kube-scheduler,
kube-proxy, CoreDNS) and, at the end, stops everything and FAILS the session's teardown if
anything of the node is left on the machine (processes, mounts, network namespaces, links,
iptables chains, kubepods cgroups).

The tier needs root and writable cgroups; without them every test here is skipped and the
run's summary says why in one line. Missing packages or binaries fail instead, naming the make
target that provides them (`make realnode-deps`, `make realnode`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.conftest import mark_tier
from tests.k8s.plane import PlaneError, find_bin_dir

from .hub import LOAD_RUNS
from .node import (
    NodeError,
    RealNode,
    build_images,
    host_address,
    registry_aliases,
    why_not_here,
)

START_TIMEOUT = float(os.environ.get("SEMANTEST_REALNODE_START_TIMEOUT", "600"))  # s, + images
_SKIPPED: list[str] = []
_STARTED: list[RealNode] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "realnode: runs pods on the real node (make realnode)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip the tier where the host cannot run containers; give its first test the start."""
    mine = [i for i in items if i.path.is_relative_to(os.path.dirname(__file__))]
    if not mine:
        return
    reason = why_not_here(None)
    if reason and "make realnode" not in reason:  # not root, no cgroups: cannot run here
        _SKIPPED.append(reason)
        for item in mine:
            item.add_marker(pytest.mark.skip(reason=reason))
        return
    mark_tier(config, mine, pytest.mark.realnode, START_TIMEOUT)


@pytest.fixture(scope="session")
def realnode(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealNode]:
    """The started node, shared by the tier; see the module docstring."""
    try:
        bin_dir = find_bin_dir()
    except PlaneError as e:
        pytest.fail(f"Kubernetes binaries not available; run `make realnode` first.\n{e}")
    reason = why_not_here(bin_dir)
    if reason:
        pytest.fail(reason)
    try:
        images = build_images()
    except NodeError as e:
        pytest.fail(str(e))
    node = RealNode(bin_dir=bin_dir, workdir=tmp_path_factory.mktemp("realnode"),
                    start_timeout=START_TIMEOUT, address=host_address(), images=images,
                    aliases=registry_aliases(images))
    try:
        node.start()
        _STARTED.append(node)
        yield node
    finally:
        node.stop()
    left = node.leftovers()
    assert not left, "the real node left things behind:\n" + "\n".join(left)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for reason in _SKIPPED[:1]:
        terminalreporter.write_line(f"real-node tier skipped: {reason}")
    for node in _STARTED:
        terminalreporter.write_line(
            f"real node: {node.version}, started in {node.startup_seconds:.0f} s; "
            f"logs in {node.workdir}")
    for line in LOAD_RUNS:
        terminalreporter.write_line(f"load run, {line}")
