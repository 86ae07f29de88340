"""The JS/TS SDK (sdk/js, `@semantest/client`) against real hubs, through its own node:test files.

Each file in sdk/js/test/*.test.mjs runs with `node --test` against the all-in-one server and
against auth + router + two gateways over a real Redis (clients on one gateway, workers on the
other, so every command crosses Redis). The restart files (sdk/js/test/restart/) kill or drain
a gateway mid-command themselves (its pid is in their environment); this file starts it again
on the same port, as a supervisor would. The shipped type declarations are checked by
compiling a consumer file (tsc --noEmit). `make sdk-js` builds the SDK (`make test` does).
"""

from __future__ import annotations

import os
import subprocess
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.conftest import ROOT, HubProcess, Hubs, RedisServer
from tests.e2e.conftest import KEY, PASSWORD, hub_config, password_hash  # noqa: F401 - fixtures

SDK = ROOT / "sdk" / "js"
TESTS = sorted(path.name for path in (SDK / "test").glob("*.test.mjs"))
RESTARTS = sorted(path.name for path in (SDK / "test" / "restart").glob("*.test.mjs"))


def built() -> Path:
    entry = SDK / "dist" / "index.js"
    if not entry.exists() or not (SDK / "node_modules" / "typescript").exists():
        pytest.fail("sdk/js is not built: `make test` builds it (make sdk-js)")
    return entry


def node_test(file: Path, env: dict[str, str], timeout: float = 150) -> None:
    built()
    done = subprocess.run(["node", "--test", "--test-reporter=spec", str(file)], cwd=SDK,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, f"{file.name} failed:\n{done.stdout}\n{done.stderr}"


def services(hubs: Hubs, redis: RedisServer, config: dict[str, Any],
             gateways: int = 2) -> list[HubProcess]:
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"js{uuid.uuid4().hex[:8]}:"}
    hubs.start("semantest-auth", env=env, config=config)
    hubs.start("semantest-router", env=env, config=config)
    return [hubs.start("semantest-gateway", env=env, config=config) for _ in range(gateways)]


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def urls(request: pytest.FixtureRequest, module_hubs: Hubs,
         hub_config: dict[str, Any]) -> dict[str, str]:  # noqa: F811
    if request.param == "all-in-one":
        url = module_hubs.start("semantest-server", config=hub_config).url
        return {"HUB_URL": url, "WORKER_URL": url}
    clients, workers = services(module_hubs, request.getfixturevalue("redis_server"), hub_config)
    return {"HUB_URL": clients.url, "WORKER_URL": workers.url}


def credentials() -> dict[str, str]:
    return {"API_KEY": KEY, "USERNAME": "alice", "PASSWORD": PASSWORD}


@pytest.mark.timeout(180)
@pytest.mark.parametrize("file", TESTS)
def test_node_suite(file: str, urls: dict[str, str]) -> None:
    node_test(SDK / "test" / file, {**urls, **credentials()})


class Restarter:
    """Starts a gateway again on its port whenever it exits (once per test)."""

    def __init__(self, hubs: Hubs, gateway: HubProcess) -> None:
        self.hubs, self.gateway = hubs, gateway
        self.thread = threading.Thread(target=self._watch, daemon=True)
        self.stopping = threading.Event()
        self.thread.start()

    def _watch(self) -> None:
        while not self.stopping.is_set():
            if self.gateway.process.poll() is not None:
                config = Path(self.gateway.env["CONFIG_FILE"])
                env = {k: v for k, v in self.gateway.env.items() if k.startswith("REDIS_")}
                self.hubs.start("semantest-gateway", env=env, port=self.gateway.port,
                                config=orjson.loads(config.read_bytes()))
                return
            self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(30)


@pytest.fixture
def restartable(hubs: Hubs, redis_server: RedisServer,
                hub_config: dict[str, Any]) -> Iterator[dict[str, str]]:  # noqa: F811
    config = {**hub_config, "commands": {"extensionGrace": 15000},
              "server": {"drainTimeout": 15000}}
    clients, workers = services(hubs, redis_server, config)
    restarters = [Restarter(hubs, clients), Restarter(hubs, workers)]
    yield {"HUB_URL": clients.url, "WORKER_URL": workers.url,
           "HUB_GATEWAY_PID": str(clients.process.pid),
           "WORKER_GATEWAY_PID": str(workers.process.pid)}
    for restarter in restarters:
        restarter.stop()


@pytest.mark.timeout(180)
@pytest.mark.parametrize("file", RESTARTS)
def test_restart_suite(file: str, restartable: dict[str, str]) -> None:
    node_test(SDK / "test" / "restart" / file, {**restartable, **credentials()})


def test_shipped_types_compile_for_a_consumer() -> None:
    """test/consumer.ts uses the package by its name (so through package.json `exports` and
    dist/*.d.ts) and holds `@ts-expect-error` lines that must stay errors."""
    built()
    done = subprocess.run([str(SDK / "node_modules" / ".bin" / "tsc"), "-p",
                           "test/tsconfig.json"], cwd=SDK, capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
