"""The JS/TS SDK (sdk/js, `@semantest/client`) against real hubs, through its own node:test files.

Each file in sdk/js/test/*.test.mjs runs with `node --test` against the all-in-one server and
against auth + router + two gateways over a real Redis (clients on one gateway, workers on the
other, so every command crosses Redis). The restart files (sdk/js/test/restart/) kill or drain
a gateway mid-command themselves (its pid is in their environment); this file starts it again
on the same port, as a supervisor would. The shipped type declarations are checked by
compiling a consumer file (tsc --noEmit), and the package runs inside a page of real
Chromium (an import map, no bundler) against the reference extension in that browser.
`make sdk-js` builds the SDK (`make test` does).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import threading
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from tests.browser import conftest as browser_tier
from tests.browser.conftest import browser, browser_hubs, devtools, hub_url, pages  # noqa: F401
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


# --- the SDK inside a browser page --------------------------------------------------------------
# The same package, loaded by real Chromium through an import map (no bundler), drives the
# reference extension in that browser and serves a command itself as a Worker. The browser and
# its hubs (all-in-one, services) are the browser tier's (tests/browser/conftest.py).


@pytest.fixture
async def sdk_site() -> AsyncIterator[str]:
    """A page whose import map resolves `@semantest/client` to sdk/js/dist and
    `socket.io-client` to the package's own browser ESM build."""
    built()
    imports = {"@semantest/client": "/dist/index.js", "socket.io-client": "/vendor/socket.io.js"}
    page = ("<!doctype html><title>sdk</title><script type=importmap>"
            + json.dumps({"imports": imports}) + "</script>")
    vendor = SDK / "node_modules" / "socket.io-client" / "dist" / "socket.io.esm.min.js"

    async def index(_: web.Request) -> web.Response:
        return web.Response(text=page, content_type="text/html")

    async def socket_io(_: web.Request) -> web.FileResponse:
        return web.FileResponse(vendor)

    app = web.Application()
    app.router.add_get("/", index)
    app.router.add_get("/vendor/socket.io.js", socket_io)
    app.router.add_static("/dist/", SDK / "dist")
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/"
    await runner.cleanup()


IN_PAGE = """(async () => {
  const { Hub, Worker, CommandFailedError } = await import('@semantest/client');
  const [url, apiKey, extension, page] = %s;
  const hub = await Hub.connect(url, { apiKey });
  const worker = new Worker(url, { apiKey, extensionId: 'page-worker-' + Date.now() });
  worker.handle('ECHO', (ctx, params) => {
    ctx.progress(50, 'half');
    return { echo: params, where: typeof document };
  });
  await worker.start();
  try {
    const progress = [];
    const echoed = await hub.run('ECHO', { x: 1 }, { target: worker.extensionId,
      onProgress: (p) => progress.push(p.percent) });
    const opened = await hub.run('NAVIGATE', { url: page, newTab: true }, { target: extension });
    let failure = null;
    try {
      await hub.run('CLICK', { selector: '#nothing' }, { target: extension });
    } catch (error) {
      failure = { typed: error instanceof CommandFailedError, code: error.code };
    }
    const news = hub.subscribe('page-news');
    await news.ready;
    await hub.publish('page-news', { hello: 'browser' });
    const heard = (await news.next()).value.message;
    return { echoed: echoed.data, worker: worker.extensionId, progress, opened: opened.data,
      failure, heard };
  } finally {
    await worker.close();
    await hub.close();
  }
})()"""


async def test_the_sdk_runs_in_a_browser_page(
        hub_url: str, browser: browser_tier.Browser,  # noqa: F811 - the fixture
        devtools: browser_tier.Devtools, pages: str, sdk_site: str) -> None:  # noqa: F811
    created = await devtools.cdp.send("Target.createTarget", {"url": sdk_site})
    attached = await devtools.cdp.send("Target.attachToTarget",
                                       {"targetId": created["targetId"], "flatten": True})
    session = attached["sessionId"]
    try:
        await browser_tier.eventually(lambda: devtools.cdp.evaluate(
            session, "document.readyState === 'complete' && document.title === 'sdk'"))
        args = [hub_url, browser_tier.KEY, browser.extension_id, f"{pages}/form.html"]
        seen = await asyncio.wait_for(
            devtools.cdp.evaluate(session, IN_PAGE % json.dumps(args)), 60)
    finally:
        await devtools.cdp.send("Target.closeTarget", {"targetId": created["targetId"]})
    assert seen["echoed"] == {"echo": {"x": 1, "extensionId": seen["worker"]}, "where": "object"}
    assert seen["progress"] == [50]
    assert seen["opened"]["url"] == f"{pages}/form.html" and seen["opened"]["title"] == "Form"
    assert seen["failure"] == {"typed": True, "code": "NOT_FOUND"}
    assert seen["heard"] == {"hello": "browser"}
