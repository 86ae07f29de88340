"""Fixtures for the operator's unit tests (helpers live in specs.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from semantest_operator import resources

from .specs import VERSION, defaulted, spec_schema

Make = Callable[..., resources.Cluster]


@pytest.fixture
def make() -> Make:
    """`make(spec)` -> a Cluster named `hub` in namespace `team` with the CRD's defaults."""
    schema = spec_schema()

    def build(spec: dict[str, Any] | None = None, name: str = "hub") -> resources.Cluster:
        body = {"metadata": {"name": name, "namespace": "team"}, "spec": spec or {}}
        body["spec"] = defaulted(schema, body["spec"])
        return resources.Cluster.of(body, VERSION)

    return build


