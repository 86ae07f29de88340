"""Helpers shared by the packaging tests: paths, `helm template` and lint runs, the values file,
its schema and the SemantestCluster CRD, loaded as plain data. No assertions live here."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "charts" / "semantest"
CRD_FILE = CHART / "crds" / "semantestclusters.semantest.io.yaml"
MANIFESTS = REPO / "manifests"
KUBE_VERSION = "1.37.0"  # what tests/k8s runs (v1.37.2); kubernetes-validate has 1.37 schemas


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def load_all(text: str) -> list[dict[str, Any]]:
    """Every non-empty YAML document of a multi-document text."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


def values() -> dict[str, Any]:
    return dict(load_yaml(CHART / "values.yaml"))


def values_schema() -> dict[str, Any]:
    return dict(json.loads((CHART / "values.schema.json").read_text()))


def crd() -> dict[str, Any]:
    return dict(load_yaml(CRD_FILE))


def crd_spec_schema() -> dict[str, Any]:
    """The openAPIV3Schema of SemantestCluster.spec."""
    version = crd()["spec"]["versions"][0]
    return dict(version["schema"]["openAPIV3Schema"]["properties"]["spec"])


def leaf_paths(data: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the leaves of a values tree; a map with no keys is a leaf too."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            yield from leaf_paths(value, f"{path}.")
        else:
            yield path


@dataclass(frozen=True)
class Helm:
    """The helm binary from the testenv folder, run against charts/semantest."""

    binary: Path

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [str(self.binary), *args], capture_output=True, text=True, check=False, timeout=120
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed:\n{proc.stderr}")
        return proc

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        sets: Sequence[str] = (),
        release: str = "semantest",
        namespace: str = "semantest",
        extra: Sequence[str] = (),
        check: bool = True,
    ) -> subprocess.CompletedProcess[str]:
        args = ["template", release, str(CHART), "--namespace", namespace,
                "--kube-version", KUBE_VERSION, *extra]
        if values is not None:
            args += ["--values", "-"]
        for item in sets:
            args += ["--set", item]
        proc = subprocess.run(
            [str(self.binary), *args],
            input=json.dumps(values) if values is not None else None,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"helm template failed:\n{proc.stderr}")
        return proc

    def objects(self, values: Mapping[str, Any] | None = None, **kw: Any) -> list[dict[str, Any]]:
        """The rendered objects (CRDs included when `extra` asks for them)."""
        return load_all(self.template(values, **kw).stdout)


def find(objs: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> list[Any]:
    """The objects of `kind` (and `name`, when given)."""
    return [
        o for o in objs if o["kind"] == kind and name in (None, o["metadata"]["name"])
    ]


def one(objs: Sequence[Mapping[str, Any]], kind: str, name: str | None = None) -> Any:
    found = find(objs, kind, name)
    assert len(found) == 1, f"expected one {kind} {name or ''}, got {len(found)}"
    return found[0]
