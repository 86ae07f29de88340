"""The Python SDK (semantest.client) against real hubs: the all-in-one server, and auth + router +
gateways as separate processes over a real Redis. Commands are served by the SDK's own `Worker`
(the browser extension's tests drive real Chromium; here the point is the SDK and the wire)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from semantest import client
from semantest.client import Context, Hub, Worker
from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, hub_config, password_hash  # noqa: F401 - fixtures
from tests.e2e.test_commands import login


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def hub_url(request: pytest.FixtureRequest, module_hubs: Hubs, hub_config: dict[str, Any]) -> str:  # noqa: F811
    if request.param == "all-in-one":
        return module_hubs.start("semantest-server", config=hub_config).url
    redis: RedisServer = request.getfixturevalue("redis_server")
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"sdk{uuid.uuid4().hex[:8]}:"}
    module_hubs.start("semantest-auth", env=env, config=hub_config)
    module_hubs.start("semantest-router", env=env, config=hub_config)
    return module_hubs.start("semantest-gateway", env=env, config=hub_config).url


def browser_like(url: str, extension_id: str) -> Worker:
    """A worker with the result shapes the browser extension documents, plus slow commands."""
    worker = Worker(url, api_key=KEY, extension_id=extension_id)

    @worker.handler("NAVIGATE")
    async def navigate(ctx: Context, url: str) -> dict[str, Any]:
        await ctx.progress(50, "loading")
        return {"url": url, "title": f"title of {url}"}

    @worker.handler("WAIT")
    async def wait(ctx: Context, seconds: float = 60) -> dict[str, Any]:
        await asyncio.sleep(seconds)
        return {"waited": seconds}

    @worker.handler("FAIL")
    async def fail(ctx: Context, how: str) -> None:
        if how == "own-code":
            raise client.CommandError("ELEMENT_NOT_FOUND", "no #missing", {"selector": "#missing"})
        raise RuntimeError("boom")

    return worker


@pytest.fixture
async def worker(hub_url: str) -> AsyncIterator[Worker]:
    serving = browser_like(hub_url, f"py-{uuid.uuid4().hex[:8]}")
    async with serving:
        yield serving


@pytest.fixture
async def hub(hub_url: str) -> AsyncIterator[Hub]:
    async with Hub(hub_url, api_key=KEY) as connected:
        yield connected


async def test_run_returns_a_typed_result_with_progress(hub: Hub, worker: Worker) -> None:
    seen: list[client.Progress] = []
    result = await hub.run("NAVIGATE", url="http://page.test/", target=worker.extension_id,
                           correlation_id="corr-1", on_progress=seen.append, timeout=10)
    assert result.success and result.data == {"url": "http://page.test/",
                                              "title": "title of http://page.test/"}
    assert result.extension == worker.extension_id and result.correlation_id == "corr-1"
    assert result.duration_ms is not None and result.duration_ms >= 0
    assert [(p.id, p.percent, p.message, p.correlation_id) for p in seen] == [
        (result.id, 50, "loading", "corr-1")]
