"""Helpers for the operator's unit tests: specs defaulted exactly as the API server would.

The defaults come from the one CRD file (charts/semantest/crds/), so the builders are tested
against the same spec shape the operator receives from the API server.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

CRD = (
    Path(__file__).resolve().parents[3]
    / "charts/semantest/crds/semantestclusters.semantest.io.yaml"
)
VERSION = "1.2.3"


@functools.cache
def spec_schema() -> dict[str, Any]:
    crd = yaml.safe_load(CRD.read_text())
    return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]


def defaulted(schema: Mapping[str, Any], value: Any) -> Any:
    """Apply the schema's defaults like the API server's structural defaulting."""
    if schema.get("type") == "object" and isinstance(value, dict):
        out = dict(value)
        for key, sub in schema.get("properties", {}).items():
            if key not in out and "default" in sub:
                out[key] = copy.deepcopy(sub["default"])
            if key in out:
                out[key] = defaulted(sub, out[key])
        return out
    if schema.get("type") == "array" and isinstance(value, list) and "items" in schema:
        return [defaulted(schema["items"], item) for item in value]
    return value


def by_kind(manifests: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def container(deployment: Mapping[str, Any]) -> dict[str, Any]:
    return dict(deployment["spec"]["template"]["spec"]["containers"][0])


def env(deployment: Mapping[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container(deployment)["env"]}
