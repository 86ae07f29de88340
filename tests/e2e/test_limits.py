"""Limits and missing services: MAX_CONNECTIONS, and a gateway whose auth service is away."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import socketio

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect, refused


async def test_max_connections_refuses_the_next_one(hubs: Hubs, hub_config: dict[str, Any],
                                                   peers: list[Peer]) -> None:
    hub = hubs.start("semantest-server", env={"MAX_CONNECTIONS": "2"}, config=hub_config)
    peers.append(await connect(hub.url, auth={"apiKey": KEY}))
    peers.append(await connect(hub.url, auth={"apiKey": KEY}))
    error = await refused(hub.url, auth={"apiKey": KEY})  # the contract's connect_error
    assert error == {"message": "TOO_MANY_CONNECTIONS", "data": {
        "code": "TOO_MANY_CONNECTIONS", "message": "this gateway is at MAX_CONNECTIONS"}}
    await peers.pop().sio.disconnect()
    for _ in range(50):  # a freed slot is usable again, once the server has seen the close
        try:
            peers.append(await connect(hub.url, auth={"apiKey": KEY}))
            break
        except socketio.exceptions.ConnectionError:
            await asyncio.sleep(0.1)
    assert len(peers) == 2


async def test_open_sockets_without_connect_count_too(hubs: Hubs, hub_config: dict[str, Any]
                                                     ) -> None:
    """Handshakes that never CONNECT hold sockets: past maxConnections plus a small headroom
    (16 here) the next handshake is refused at once (gateway/engine.py)."""
    hub = hubs.start("semantest-server", env={"MAX_CONNECTIONS": "2"}, config=hub_config)
    async with aiohttp.ClientSession() as http:
        for _ in range(2 + 16):
            async with http.get(f"{hub.url}/socket.io/?EIO=4&transport=polling") as response:
                assert response.status == 200
        async with http.get(f"{hub.url}/socket.io/?EIO=4&transport=polling") as response:
            assert response.status == 503
            assert await response.json() == {"error": {
                "code": "TOO_MANY_CONNECTIONS", "message": "this gateway is at MAX_CONNECTIONS"}}


async def test_login_without_an_auth_service_is_unavailable(
    hubs: Hubs, hub_config: dict[str, Any], redis_server: RedisServer
) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"na{uuid.uuid4().hex[:6]}:"}
    gateway = hubs.start("semantest-gateway", env=env, config=hub_config)
    async with aiohttp.ClientSession() as http, http.post(
        f"{gateway.url}/auth/login", json={"username": "alice", "password": "x"}
    ) as response:
        assert response.status == 503
        body = await response.json()
    assert body["error"]["code"] == "UNAVAILABLE"


async def test_health_is_unhealthy_when_redis_is_gone(hubs: Hubs, hub_config: dict[str, Any],
                                                     tmp_path: Any) -> None:
    from tests.conftest import free_port

    env = {"REDIS_URL": f"redis://127.0.0.1:{free_port()}/0"}
    gateway = hubs.start("semantest-gateway", env=env, config=hub_config)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{gateway.url}/health") as response:
            assert response.status == 503
            assert (await response.json())["redis"] == "disconnected"
        async with http.get(f"{gateway.url}/health/ready") as response:
            assert response.status == 503
        async with http.get(f"{gateway.url}/health/live") as response:
            assert response.status == 200
