"""`kill -9` of a router while commands flow: every accepted command still ends in exactly one
result, and no command reaches the extension twice. Real Redis, real processes.

A command the dead router had recorded as dispatched but not yet handed to the extension ends
with TIMEOUT (at most once, never twice): so results are successes or TIMEOUT."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import pytest

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect

COMMANDS = 300


@pytest.mark.timeout(120)
async def test_router_killed_mid_flow(hubs: Hubs, hub_config: dict[str, Any],
                                      redis_server: RedisServer, peers: list[Peer]) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"fo{uuid.uuid4().hex[:6]}:"}
    hubs.start("semantest-auth", env=env, config=hub_config)
    doomed = hubs.start("semantest-router", env=env, config=hub_config)
    hubs.start("semantest-router", env=env, config=hub_config)
    client_gateway = hubs.start("semantest-gateway", env=env, config=hub_config)
    extension_gateway = hubs.start("semantest-gateway", env=env, config=hub_config)

    executed: Counter[str] = Counter()
    holder: list[Peer] = []

    async def run(command: dict[str, Any]) -> None:
        executed[command["id"]] += 1
        await asyncio.sleep(0.01)  # the browser is busy for a moment
        await holder[0].emit("result", {"id": command["id"], "success": True})

    ext = await connect(extension_gateway.url, handlers={"command": run}, auth={
        "apiKey": KEY, "role": "extension", "extensionId": "failover-ext"})
    holder.append(ext)
    client = await connect(client_gateway.url, auth={"apiKey": KEY})
    peers.extend([ext, client])

    accepted = []
    for n in range(COMMANDS):
        ack = await client.call("command", {"type": "CLICK", "n": n, "timeout": 10000})
        assert ack["accepted"] is True
        accepted.append(ack["id"])
        if n == COMMANDS // 3:
            doomed.kill()

    results: Counter[str] = Counter()
    while sum(results.values()) < COMMANDS:
        result = await client.next("result", timeout=40)
        results[result["id"]] += 1
        assert result["success"] or result["error"]["code"] == "TIMEOUT", result
    await asyncio.sleep(0.5)  # anything extra would show up now
    while client.pending("result"):
        results[(await client.next("result"))["id"]] += 1

    assert set(results) == set(accepted)
    assert max(results.values()) == 1, "a command ended twice"
    assert max(executed.values()) == 1, "a command was executed twice"
