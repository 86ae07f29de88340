"""SIGTERM drains: the service stops taking connections, says so, finishes or hands over what is
in flight, and exits within server.drainTimeout. Real Redis, real processes."""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from typing import Any

import aiohttp
import pytest

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect, refused


@pytest.mark.timeout(90)
async def test_sigterm_drains_a_gateway(hubs: Hubs, hub_config: dict[str, Any],
                                        redis_server: RedisServer, peers: list[Peer]) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"dr{uuid.uuid4().hex[:6]}:"}
    config = {**hub_config, "server": {"drainTimeout": 20000},
              "commands": {"extensionGrace": 10000}}
    hubs.start("semantest-auth", env=env, config=config)
    hubs.start("semantest-router", env=env, config=config)
    draining = hubs.start("semantest-gateway", env=env, config=config)
    staying = hubs.start("semantest-gateway", env=env, config=config)

    release, started = asyncio.Event(), asyncio.Event()
    executed: list[str] = []
    ext = Peer()

    async def run(command: dict[str, Any]) -> None:
        executed.append(command["id"])
        started.set()
        await release.wait()  # the browser is busy until the test says so
        await ext.emit("result", {"id": command["id"], "success": True})

    ext.handlers = {"command": run}
    auth = {"apiKey": KEY, "role": "extension", "extensionId": "drain-ext"}
    await connect(draining.url, auth=auth, peer=ext)
    client = await connect(draining.url, auth={"apiKey": KEY})
    peers.extend([ext, client])
    ack = await client.call("command", {"type": "CLICK", "timeout": 30000})
    await asyncio.wait_for(started.wait(), 10)

    draining.process.send_signal(15)
    await client.next("server:draining")
    await ext.next("server:draining")
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{draining.url}/health/ready") as response:
            assert response.status == 503
    refusal = await refused(draining.url, {"apiKey": KEY})  # no new connections here
    assert refusal["message"] == "UNAVAILABLE"
    # The extension is let go at once: it comes back on the other gateway with its work.
    await ext.next("disconnect")
    await connect(staying.url, auth=auth, peer=ext)
    assert client.sio.connected  # still waiting for its result, here
    release.set()
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["success"] is True
    await exited(draining.process, 15)  # then it leaves, well inside the drain timeout
    assert not client.sio.connected
    assert executed == [ack["id"]]


async def exited(process: subprocess.Popen[bytes], timeout: float) -> int:
    """Wait without blocking the loop (the peers must answer the server's close)."""
    for _ in range(int(timeout / 0.05)):
        if process.poll() is not None:
            return process.returncode
        await asyncio.sleep(0.05)
    pytest.fail("the process did not exit after SIGTERM")


@pytest.mark.timeout(60)
async def test_sigterm_stops_a_router_between_sweeps(hubs: Hubs, hub_config: dict[str, Any],
                                                     redis_server: RedisServer) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"dr{uuid.uuid4().hex[:6]}:"}
    router = hubs.start("semantest-router", env=env, config=hub_config)
    router.process.send_signal(15)
    assert await exited(router.process, 10) == 0
