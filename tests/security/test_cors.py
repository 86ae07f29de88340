"""CORS (`cors`, or `server.cors`): the HTTP routes through aiohttp-cors, the Socket.IO handshake
through python-socketio, both from the same configured origins."""

from __future__ import annotations

from typing import Any

import pytest
import socketio
from aiohttp.test_utils import TestServer

from semantest.bus import open_bus
from semantest.config import Settings
from semantest.server import ALL_ROLES, compose
from tests.conftest import HubProcess, Hubs
from tests.e2e.conftest import KEY, SECRET
from tests.security.conftest import http, merged

APP = "https://app.semantest.com"
EVIL = "https://evil.example"
OLD = "https://old.example"
HANDSHAKE = "/socket.io/?EIO=4&transport=polling"


@pytest.fixture(scope="module")
def hub(module_hubs: Hubs, hub_config: dict[str, Any]) -> HubProcess:
    """The seed's CORS example at top level; `server.cors` is shadowed by it."""
    return module_hubs.start(config=merged(
        hub_config, server={"cors": {"origin": OLD}},
        cors={"origin": [APP], "credentials": True, "methods": ["GET", "POST"],
              "allowedHeaders": ["Authorization", "X-API-Key"]}))


async def test_http_routes_answer_allowed_origins_only(hub: HubProcess) -> None:
    status, headers, _ = await http("GET", f"{hub.url}/health", headers={"Origin": APP})
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Credentials"] == "true"
    assert "Retry-After" in headers["Access-Control-Expose-Headers"]
    for origin in (EVIL, OLD):
        status, headers, _ = await http("GET", f"{hub.url}/health", headers={"Origin": origin})
        assert status == 200  # served, but the browser may not read it
        assert "Access-Control-Allow-Origin" not in headers


async def test_preflight_allows_the_configured_methods_and_headers(hub: HubProcess) -> None:
    def preflight(origin: str, method: str, headers: str = "") -> dict[str, str]:
        asked = {"Origin": origin, "Access-Control-Request-Method": method}
        if headers:
            asked["Access-Control-Request-Headers"] = headers
        return asked

    status, headers, _ = await http("OPTIONS", f"{hub.url}/auth/login",
                                    headers=preflight(APP, "POST", "X-API-Key"))
    assert status == 200
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Methods"] == "POST"
    assert headers["Access-Control-Allow-Headers"].lower() == "x-api-key"
    refusals = [preflight(EVIL, "POST"), preflight(APP, "DELETE"),
                preflight(APP, "POST", "X-Something-Else")]
    for asked in refusals:
        status, headers, _ = await http("OPTIONS", f"{hub.url}/auth/api-keys", headers=asked)
        assert status == 403, asked
        assert "Access-Control-Allow-Origin" not in headers


async def test_socket_io_handshake_follows_the_same_origins(hub: HubProcess) -> None:
    status, headers, body = await http("GET", hub.url + HANDSHAKE, headers={"Origin": APP})
    assert status == 200 and b'"sid"' in body
    assert headers["Access-Control-Allow-Origin"] == APP
    assert headers["Access-Control-Allow-Credentials"] == "true"
    status, headers, _ = await http("GET", hub.url + HANDSHAKE, headers={"Origin": EVIL})
    assert status == 400
    assert "Access-Control-Allow-Origin" not in headers

    client = socketio.AsyncClient(reconnection=False)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await client.connect(hub.url, auth={"apiKey": KEY}, headers={"Origin": EVIL},
                             transports=["websocket"], wait_timeout=10)
    await client.connect(hub.url, auth={"apiKey": KEY}, headers={"Origin": APP},
                         transports=["websocket"], wait_timeout=10)
    assert client.connected
    await client.disconnect()


async def test_without_cors_config_any_origin_may_read_but_without_credentials() -> None:
    """No `cors` anywhere: every origin, no credentials (the hub uses no cookies)."""
    settings = Settings.model_validate({"auth": {"jwt": {"secret": SECRET}}})
    server = TestServer(compose(ALL_ROLES, settings, open_bus("memory://")), host="127.0.0.1")
    await server.start_server()
    try:
        url = str(server.make_url(""))
        status, headers, _ = await http("GET", f"{url}/health", headers={"Origin": EVIL})
        assert status == 200 and headers["Access-Control-Allow-Origin"] in ("*", EVIL)
        assert "Access-Control-Allow-Credentials" not in headers
        status, headers, _ = await http("GET", url + HANDSHAKE, headers={"Origin": EVIL})
        assert status == 200 and headers["Access-Control-Allow-Origin"] in ("*", EVIL)
        assert "Access-Control-Allow-Credentials" not in headers
    finally:
        await server.close()
