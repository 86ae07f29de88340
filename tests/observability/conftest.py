"""A real trace store for the observability tests: Jaeger v2 all-in-one (in-memory storage),
built from its Go module by tests/observability/jaeger/jaeger.sh (`make jaeger-bin`), run on
free loopback ports: OTLP over gRPC and HTTP in, its HTTP query API out."""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.conftest import free_port, stop_process, wait_for_port
from tests.e2e.conftest import peers  # noqa: F401  (the fixture, for the tests here)

HERE = Path(__file__).resolve().parent
JAEGER_DIR = HERE / "jaeger"


@dataclass
class Jaeger:
    otlp_grpc: int
    otlp_http: int
    query: int
    process: subprocess.Popen[bytes]
    log: Path

    def otlp_endpoint(self, protocol: str) -> str:
        """OTEL_EXPORTER_OTLP_ENDPOINT for `protocol` (`grpc` or `http/protobuf`)."""
        return f"http://127.0.0.1:{self.otlp_grpc if protocol == 'grpc' else self.otlp_http}"

    async def trace(self, trace_id: str, until: Any, timeout: float = 20) -> dict[str, Any]:
        """The trace as Jaeger's query API returns it (`/api/traces/<id>`), polled until
        `until(trace)` holds (spans arrive in batches, from several processes)."""
        url = f"http://127.0.0.1:{self.query}/api/traces/{trace_id}"
        deadline = time.monotonic() + timeout
        trace: dict[str, Any] = {}
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                async with http.get(url) as response:
                    if response.status == 200:
                        trace = (await response.json())["data"][0]
                        if until(trace):
                            return trace
                await asyncio.sleep(0.2)
        raise AssertionError(f"trace {trace_id} never got what was expected; last seen: "
                             f"{summary(trace) if trace else 'nothing'}")


def summary(trace: dict[str, Any]) -> list[tuple[str, str]]:
    """(service, operation) of each span, in start order."""
    services = {pid: p["serviceName"] for pid, p in trace.get("processes", {}).items()}
    return [(services[s["processID"]], s["operationName"])
            for s in sorted(trace.get("spans", []), key=lambda s: s["startTime"])]


def jaeger_binary() -> str:
    """The binary `make jaeger-bin` built (never built here: that takes minutes)."""
    run = subprocess.run(["bash", str(JAEGER_DIR / "jaeger.sh")], capture_output=True,
                         text=True, env={**os.environ, "SEMANTEST_JAEGER_NO_BUILD": "1"},
                         check=False)
    if run.returncode != 0:
        pytest.fail(f"Jaeger is not built: run `make jaeger-bin` (make test does).\n"
                    f"{run.stderr.strip()}")
    return run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def jaeger(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Jaeger]:
    binary = jaeger_binary()
    ports = {name: free_port() for name in ("JAEGER_OTLP_GRPC_PORT", "JAEGER_OTLP_HTTP_PORT",
                                            "JAEGER_QUERY_PORT", "JAEGER_QUERY_GRPC_PORT")}
    log = tmp_path_factory.mktemp("jaeger") / "jaeger.log"
    env = {**os.environ, **{k: str(v) for k, v in ports.items()}, "JAEGER_HOST": "127.0.0.1"}
    with log.open("wb") as sink:
        process = subprocess.Popen([binary, "--config", str(JAEGER_DIR / "config.yaml")],
                                   env=env, stdout=sink, stderr=subprocess.STDOUT)
    try:
        for port in ports.values():
            wait_for_port(port, process, timeout=60)
    except (RuntimeError, TimeoutError) as exc:
        process.kill()
        pytest.fail(f"Jaeger did not start: {exc}\n{log.read_text(errors='replace')}")
    yield Jaeger(ports["JAEGER_OTLP_GRPC_PORT"], ports["JAEGER_OTLP_HTTP_PORT"],
                 ports["JAEGER_QUERY_PORT"], process, log)
    stop_process(process)
