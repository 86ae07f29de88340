"""Headless Debian Chromium with the unpacked extension (extension/dist, `make extension`),
connected to a hub run as real processes: all-in-one, and auth + router + gateway over Redis.

The hub and the browser are started once per hub mode for this package; each test gets its own
pages server (aiohttp on a loopback port), a DevTools connection, and a `semantest.client.Hub`
to drive it.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import socketio
from aiohttp import web

from semantest.client import Hub
from tests.browser import chromium, site
from tests.browser.cdp import Cdp, CdpError
from tests.conftest import ROOT, Hubs, RedisServer
from tests.e2e.test_restarts import services

KEY = "browser-key-0123456789"
DIST = ROOT / "extension" / "dist"

HUB_MAX_PAYLOAD = 600_000
HUB_CONFIG: dict[str, Any] = {
    "auth": {"enabled": True, "jwt": {"secret": "browser-test-secret-0123456789-0123456789"},
             "apiKeys": {"enabled": True, "keys": [KEY]}},
    # The default grace: what a real deployment gives a restarting service worker.
    "commands": {"extensionGrace": 10000},
    # Below the extension's own maxResultBytes (1 MiB), so both limits can be met.
    "websocket": {"maxPayload": HUB_MAX_PAYLOAD},
}


@pytest.fixture(scope="package")
def browser_hubs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hubs]:
    """Hub processes shared by the browser test modules (a browser takes seconds to start)."""
    started = Hubs(tmp_path_factory.mktemp("browser-hubs"))
    yield started
    started.stop_all()


@pytest.fixture(scope="package", params=["all-in-one", "services"])
def hub_url(request: pytest.FixtureRequest, browser_hubs: Hubs) -> str:
    if request.param == "all-in-one":
        return browser_hubs.start("semantest-server", config=HUB_CONFIG).url
    redis: RedisServer = request.getfixturevalue("redis_server")
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"b{uuid.uuid4().hex[:8]}:"}
    return services(browser_hubs, env, HUB_CONFIG, gateways=1)[0]


@dataclass
class Browser:
    process: chromium.Chromium
    extension_id: str
    """The id the extension registers with at the hub (from its config.json)."""


def start_browser(workdir: Path, config: dict[str, Any]) -> chromium.Chromium:
    """Chromium with a copy of extension/dist whose config.json is `config`; skips the test
    (one line saying why) when Chromium is missing or cannot start here."""
    if not chromium.BINARY.exists():
        pytest.skip(f"{chromium.BINARY} is missing: `make test` installs it (make browser-deps)")
    if not (DIST / "manifest.json").exists():
        pytest.fail("extension/dist is missing: `make test` builds it (make extension)")
    unpacked = workdir / "extension"
    shutil.copytree(DIST, unpacked)
    (unpacked / "config.json").write_text(json.dumps(config))
    try:
        return chromium.launch(unpacked, workdir)
    except RuntimeError as error:
        pytest.skip(f"chromium cannot start here: {error}")


@pytest.fixture(scope="package")
def browser(hub_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Browser]:
    extension_id = f"chromium-test-{uuid.uuid4().hex[:8]}"
    process = start_browser(tmp_path_factory.mktemp("chromium"), {
        "hubUrl": hub_url, "apiKey": KEY, "extensionId": extension_id, "capabilities": ["*"],
    })
    yield Browser(process, extension_id)
    process.stop()


async def eventually(check: Callable[[], Awaitable[Any]], timeout: float = 10) -> Any:
    """Ask `check` again until it answers something true: for state the browser or the hub
    announces no event for (a worker target, storage, the hub's extension list)."""
    async with asyncio.timeout(timeout):
        while True:
            answer = await check()
            if answer:
                return answer
            await asyncio.sleep(0.05)


async def registered(url: str, extension_id: str, timeout: float = 30) -> None:
    """Wait until the hub lists `extension_id` as connected."""
    sio = socketio.AsyncClient(reconnection=False)
    await sio.connect(url, auth={"apiKey": KEY}, transports=["websocket"], wait_timeout=10)

    async def listed() -> bool:
        status = await sio.call("status", timeout=10)
        return extension_id in {e["extensionId"] for e in status.get("extensions", [])}

    try:
        await eventually(listed, timeout)
    finally:
        await sio.disconnect()


@dataclass
class Devtools:
    """The DevTools connection to the browser, and the extension's service worker in it."""

    cdp: Cdp
    targets: dict[str, dict[str, Any]]

    async def _discover(self) -> None:
        while not self.cdp.events["Target.targetCreated"].empty():
            info = self.cdp.events["Target.targetCreated"].get_nowait()["targetInfo"]
            self.targets[info["targetId"]] = info
        while not self.cdp.events["Target.targetDestroyed"].empty():
            self.targets.pop(self.cdp.events["Target.targetDestroyed"].get_nowait()["targetId"],
                             None)

    async def worker(self, other_than: str | None = None, timeout: float = 20) -> str:
        """The target id of the extension's service worker (a new one, if `other_than`)."""
        async def found() -> str | None:
            await self._discover()
            return next((target_id for target_id, info in self.targets.items()
                         if info["type"] == "service_worker" and target_id != other_than
                         and info["url"].endswith("/background.js")), None)

        return str(await eventually(found, timeout))

    @asynccontextmanager
    async def options(self) -> AsyncIterator[str]:
        """The extension's options page, open in a tab; yields its DevTools session once the
        page has filled its fields (it shows the status after that)."""
        host = self.targets[await self.worker()]["url"].split("/")[2]
        created = await self.cdp.send("Target.createTarget", {
            "url": f"chrome-extension://{host}/options.html"})
        attached = await self.cdp.send("Target.attachToTarget",
                                       {"targetId": created["targetId"], "flatten": True})
        session = attached["sessionId"]
        filled = ("location.protocol === 'chrome-extension:'"
                  " && ![undefined, '…'].includes(document.getElementById('status')?.textContent)")
        try:
            await eventually(lambda: self._settled(session, filled))
            yield session
        finally:
            await self.cdp.send("Target.closeTarget", {"targetId": created["targetId"]})

    async def options_page(self, changes: dict[str, Any]) -> None:
        """Change fields of the options page as a user would, and press Save."""
        async with self.options() as session:
            await self.cdp.evaluate(session, f"""(async () => {{
                for (const [key, value] of Object.entries({json.dumps(changes)})) {{
                    const field = document.getElementById(key);
                    if (field.type === 'checkbox') field.checked = value; else field.value = value;
                }}
                document.querySelector('button[type=submit]').click();
                while (document.getElementById('saved').textContent !== 'saved') {{
                    await new Promise((r) => setTimeout(r, 50));
                }}
            }})()""")

    async def _settled(self, session: str, expression: str) -> bool:
        """`expression` in a page that may still be loading (its old document goes away)."""
        try:
            return bool(await self.cdp.evaluate(session, expression))
        except CdpError:
            return False

    async def in_worker(self, expression: str) -> Any:
        """Evaluate (awaited) in the running service worker, to look at its storage."""
        attached = await self.cdp.send("Target.attachToTarget",
                                       {"targetId": await self.worker(), "flatten": True})
        try:
            return await self.cdp.evaluate(attached["sessionId"],
                                           f"(async () => ({expression}))()")
        finally:
            await self.cdp.send("Target.detachFromTarget", {"sessionId": attached["sessionId"]})


@asynccontextmanager
async def attached(process: chromium.Chromium) -> AsyncIterator[Devtools]:
    cdp = await Cdp.connect(process.devtools_url)
    await cdp.send("Target.setDiscoverTargets", {"discover": True})
    try:
        yield Devtools(cdp, {})
    finally:
        await cdp.close()


@pytest.fixture
async def devtools(browser: Browser, hub_url: str) -> AsyncIterator[Devtools]:
    await registered(hub_url, browser.extension_id)
    async with attached(browser.process) as tools:
        yield tools


@pytest.fixture
async def hub(hub_url: str, devtools: Devtools) -> AsyncIterator[Hub]:
    async with Hub(hub_url, api_key=KEY, timeout=20) as client:
        yield client


@pytest.fixture
async def pages() -> AsyncIterator[str]:
    """The base URL of the test's own pages (tests/browser/site.py)."""
    runner = web.AppRunner(site.app())
    await runner.setup()
    server = web.TCPSite(runner, "127.0.0.1", 0)
    await server.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}"
    await runner.cleanup()
