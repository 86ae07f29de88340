"""Fixtures for the packaging tests: `helm`, the Helm 4 binary from the testenv folder (found
once per session by running tests/k8s/controlplane/testenv.sh, as `make testenv` left it)."""

from __future__ import annotations

import pytest

from tests.chart.chart import Helm
from tests.k8s.plane import PlaneError, find_bin_dir


@pytest.fixture(scope="session")
def helm() -> Helm:
    try:
        bin_dir = find_bin_dir()
    except PlaneError as e:
        pytest.fail(f"helm not available; run `make testenv` first.\n{e}")
    return Helm(bin_dir / "helm")
