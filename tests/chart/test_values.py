"""values.yaml and values.schema.json agree with each other, with their docs and with the CRD,
and the schema turns bad values into clear errors at `helm template`/`install` time.

- the schema names exactly the keys values.yaml has (no undocumented or unchecked key);
- every key carries a `## @param` line and every `## @param` names a key (what Bitnami's
  readme-generator checks);
- `cluster.spec` is the SemantestCluster spec: same fields, types, enums and limits as the CRD,
  and the same defaults, so the chart never renders a hub the API server would refuse;
- wrong types, unknown keys, bad enums, out-of-range numbers and malformed names fail with a
  message that names the key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

import jsonschema
import pytest

from tests.chart.chart import CHART, Helm, crd_spec_schema, leaf_paths, values, values_schema

# Keys Helm adds to the values it validates, though values.yaml does not declare them.
HELM_KEYS: set[str] = set()
# Keywords the values schema copies from the CRD for each field of cluster.spec.
CHECKED = ("type", "enum", "minimum", "maximum", "minLength", "maxLength", "pattern", "maxItems")


def schema_leaf_paths(schema: Mapping[str, Any], prefix: str = "") -> Iterator[str]:
    """Dotted paths of the schema's leaves: an object with `properties` is walked, else a leaf."""
    for key, sub in schema.get("properties", {}).items():
        path = f"{prefix}{key}"
        if sub.get("type") == "object" and "properties" in sub:
            yield from schema_leaf_paths(sub, f"{path}.")
        else:
            yield path


def value_paths(
    data: Mapping[str, Any], schema: Mapping[str, Any], prefix: str = ""
) -> Iterator[str]:
    """Dotted paths of values.yaml's keys, walked as deep as the schema has `properties` (a
    resources map or a label map is one key); a key the schema lacks is yielded as it is."""
    for key, value in data.items():
        path = f"{prefix}{key}"
        sub = schema.get("properties", {}).get(key)
        if sub is not None and "properties" in sub and isinstance(value, Mapping):
            yield from value_paths(value, sub, f"{path}.")
        else:
            yield path


def at(schema: Mapping[str, Any], path: str) -> Mapping[str, Any]:
    for key in path.split("."):
        schema = schema["properties"][key]
    return schema


def prefixes(path: str) -> Iterator[str]:
    parts = path.split(".")
    for i in range(1, len(parts) + 1):
        yield ".".join(parts[:i])


def crd_view(field: Mapping[str, Any]) -> dict[str, Any]:
    """The CRD's constraints on a field, as the values schema must restate them."""
    return {k: field[k] for k in CHECKED if k in field}


def values_view(field: Mapping[str, Any]) -> dict[str, Any]:
    """The values schema's constraints, looking through `anyOf: [{const: ""}, {...}]` (a field
    the chart leaves out when empty) and the empty value added to an enum."""
    merged = dict(field)
    for alternative in field.get("anyOf", []):
        if alternative != {"const": ""}:
            merged.update(alternative)
    view = {k: merged[k] for k in CHECKED if k in merged}
    if "enum" in view:
        view["enum"] = [v for v in view["enum"] if v != ""]
    return view


def test_schema_and_values_name_the_same_keys() -> None:
    in_values = set(value_paths(values(), values_schema()))
    in_schema = set(schema_leaf_paths(values_schema())) - HELM_KEYS
    assert in_values - in_schema == set(), "keys in values.yaml that the schema does not check"
    assert in_schema - in_values == set(), "keys in the schema that values.yaml does not have"


def test_schema_is_closed_at_every_level() -> None:
    def closed(schema: Mapping[str, Any], path: str) -> Iterator[str]:
        if "properties" in schema:
            if schema.get("additionalProperties") is not False:
                yield path or "(top)"
            for key, sub in schema["properties"].items():
                yield from closed(sub, f"{path}.{key}".lstrip("."))

    assert list(closed(values_schema(), "")) == []


def test_every_value_is_documented_with_a_param_line() -> None:
    text = (CHART / "values.yaml").read_text()
    documented = re.findall(r"^\s*## @param (\S+) \S", text, flags=re.MULTILINE)
    assert len(documented) == len(set(documented)), "a key documented twice"
    keys = set(value_paths(values(), values_schema()))
    undocumented = {k for k in keys if not any(k == d or k.startswith(f"{d}.") for d in documented)}
    assert undocumented == set(), "keys without a ## @param line"
    every_node = {p for k in leaf_paths(values()) for p in prefixes(k)}
    assert set(documented) - every_node == set(), "## @param lines naming no key"


def test_values_validate_against_their_own_schema() -> None:
    jsonschema.validate(values(), values_schema())


def test_cluster_spec_fields_match_the_crd() -> None:
    crd = crd_spec_schema()
    schema = at(values_schema(), "cluster.spec")
    crd_paths = set(schema_leaf_paths(crd))
    assert set(schema_leaf_paths(schema)) == crd_paths
    for path in sorted(crd_paths):
        assert values_view(at(schema, path)) == crd_view(at(crd, path)), path


def test_cluster_spec_defaults_are_the_crd_defaults() -> None:
    checked: list[str] = []

    def check(value: Any, field: Mapping[str, Any], path: str, optional: bool = False) -> None:
        default = field.get("default")
        if default not in (None, {}):
            # inside an optional object (cors, redis.external) empty means "leave it out"
            assert value == default or (optional and value in ("", [])), path
            checked.append(path)
        elif "properties" in field:  # an object defaulted to {} (or optional): recurse
            for key, sub in field["properties"].items():
                check(value[key], sub, f"{path}.{key}".lstrip("."), optional or default is None)
        else:  # no CRD default: the chart leaves it unset unless a value is given
            assert value in ("", [], {}), f"{path} has a default the CRD does not"

    spec = dict(values()["cluster"]["spec"])
    image = spec.pop("image")  # "" = the chart's own image settings (see test_render)
    assert all(v in ("", []) for v in image.values())
    crd = dict(crd_spec_schema())
    crd["properties"] = {k: v for k, v in crd["properties"].items() if k != "image"}
    check(spec, crd, "")
    assert len(checked) > 40


BAD_VALUES = [
    (["operator.replicaCount=two"], "/operator/replicaCount", "got string, want integer"),
    (["operator.replicaCount=0"], "/operator/replicaCount", "minimum"),
    (["operator.typo=1"], "/operator", "additional properties 'typo' not allowed"),
    (["image.pullPolicy=Sometimes"], "/image/pullPolicy", "'Always', 'IfNotPresent', 'Never'"),
    (["image.digest=latest"], "/image/digest", "does not match pattern"),
    (["operator.logFormat=xml"], "/operator/logFormat", "value must be one of"),
    (["operator.watchNamespaces[0]=Not_A_Namespace"], "/operator/watchNamespaces/0", "pattern"),
    (["cluster.name=" + "x" * 41], "/cluster/name", "pattern"),
    (["cluster.spec.gateway.replicas=101"], "/cluster/spec/gateway/replicas", "maximum"),
    (["cluster.spec.tls.mode=acme"], "/cluster/spec/tls/mode", "value must be one of"),
    (["cluster.spec.redis.external.url=http://x"], "/cluster/spec/redis/external/url", ""),
    (["cluster.spec.gateway.service.port=70000"], "/cluster/spec/gateway/service/port", "maximum"),
    (["cluster.spec.auth.jwt.expiresIn=1 day"], "/cluster/spec/auth/jwt/expiresIn", "pattern"),
    (["cluster.spec.gateway.resources.requests.cpu=lots"],
     "/cluster/spec/gateway/resources/requests/cpu", ""),
]


@pytest.mark.parametrize(("sets", "where", "why"), BAD_VALUES, ids=[b[1] for b in BAD_VALUES])
def test_helm_refuses_bad_values_naming_the_key(
    helm: Helm, sets: list[str], where: str, why: str
) -> None:
    proc = helm.template(sets=sets, check=False)
    assert proc.returncode != 0, f"{sets} was accepted"
    assert "values don't meet the specifications of the schema" in proc.stderr
    assert f"at '{where}'" in proc.stderr, proc.stderr
    assert why in proc.stderr, proc.stderr
