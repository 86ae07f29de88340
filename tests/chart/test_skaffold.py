"""skaffold.yaml is valid for its apiVersion and deploys what it says: the chart, with the image
it builds, and a port-forward to the gateway Service the operator will create.

No skaffold binary or image builder exists here, so the file is checked statically against
skaffold's own JSON schema (tests/chart/data/skaffold-v4beta13.json) and by rendering the chart
with the values skaffold would pass.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from semantest_operator import resources
from tests.chart.chart import REPO, Helm, load_yaml, one

SCHEMA = Path(__file__).parent / "data" / "skaffold-v4beta13.json"


@pytest.fixture(scope="module")
def skaffold() -> dict[str, Any]:
    return dict(load_yaml(REPO / "skaffold.yaml"))


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_skaffold_yaml_is_valid_for_its_schema_version(
    skaffold: dict[str, Any], validator: jsonschema.Draft7Validator
) -> None:
    assert skaffold["apiVersion"] == "skaffold/" + SCHEMA.stem.split("-", 1)[1]
    errors = [f"{list(e.path)}: {e.message}" for e in validator.iter_errors(skaffold)]
    assert errors == []


@pytest.mark.parametrize(
    "breakage",
    [
        ("build", "artifacts", 0, "dockr"),          # a misspelt builder
        ("deploy", "helm", "releases", 0, "chart"),  # chartPath under a wrong name
        ("portForward", 0, "localport"),             # a key of the wrong case
    ],
)
def test_schema_catches_misspelt_keys(
    skaffold: dict[str, Any], validator: jsonschema.Draft7Validator, breakage: tuple[Any, ...]
) -> None:
    broken = copy.deepcopy(skaffold)
    node: Any = broken
    for key in breakage[:-1]:
        node = node[key]
    node[breakage[-1]] = "x"
    assert not validator.is_valid(broken)


def test_skaffold_builds_the_dockerfile_and_deploys_the_chart(skaffold: dict[str, Any]) -> None:
    (artifact,) = skaffold["build"]["artifacts"]
    assert (REPO / artifact.get("context", ".") / artifact["docker"]["dockerfile"]).is_file()
    (release,) = skaffold["deploy"]["helm"]["releases"]
    assert (REPO / release["chartPath"] / "Chart.yaml").is_file()
    key = artifact["image"].replace("-", "_")  # skaffold's template variables sanitise the name
    assert release["setValueTemplates"]["image.repository"] == f"{{{{.IMAGE_REPO_{key}}}}}"
    assert release["setValueTemplates"]["image.tag"] == f"{{{{.IMAGE_TAG_{key}}}}}"
    local = {p["name"] for p in skaffold["profiles"] if p.get("build", {}).get("local")}
    assert {"kind", "minikube", "docker-desktop"} <= local


def sets_from(release: dict[str, Any], repo: str, tag: str) -> list[str]:
    """The --set arguments skaffold derives from setValueTemplates, with a built image."""
    out = []
    for key, value in release["setValueTemplates"].items():
        text = str(value).lower() if isinstance(value, bool) else str(value)
        text = text.replace("{{.IMAGE_REPO_semantest_hub}}", repo)
        out.append(f"{key}={text.replace('{{.IMAGE_TAG_semantest_hub}}', tag)}")
    return out


def test_port_forward_targets_the_gateway_of_the_deployed_hub(
    helm: Helm, skaffold: dict[str, Any]
) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    repo, tag = "localhost/semantest-hub", "0123abcd"
    objs = helm.objects(sets=sets_from(release, repo, tag), release=release["name"],
                        namespace=release["namespace"])
    deployment = one(objs, "Deployment")
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"] == f"{repo}:{tag}"
    hub = resources.Cluster.of(one(objs, "SemantestCluster"), "1.0.0")
    assert hub.image == f"{repo}:{tag}", "the hub runs the image skaffold built"
    service = resources.service(hub, "gateway")
    (forward,) = skaffold["portForward"]
    assert forward["resourceType"].lower() == "service"
    assert forward["resourceName"] == service["metadata"]["name"]
    assert forward["namespace"] == hub.namespace
    assert forward["port"] == service["spec"]["ports"][0]["port"]
    assert forward["localPort"] == 3000


def test_ha_profile_renders(helm: Helm, skaffold: dict[str, Any]) -> None:
    (release,) = skaffold["deploy"]["helm"]["releases"]
    (profile,) = [p for p in skaffold["profiles"] if p["name"] == "ha"]
    patched = copy.deepcopy(release)
    for patch in profile["patches"]:
        assert patch["op"] == "add"
        patched["setValueTemplates"][patch["path"].rsplit("/", 1)[1]] = patch["value"]
    objs = helm.objects(sets=sets_from(patched, "r", "t"))
    assert one(objs, "Deployment")["spec"]["replicas"] == 2
    assert one(objs, "SemantestCluster")["spec"]["gateway"]["autoscaling"]["enabled"] is True
