"""The command life cycle and every refusal, against hubs run as real processes.

Each test runs twice: on the all-in-one server (in-process bus) and on auth + router + gateway
as separate processes over a real Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import aiohttp
import jwt
import pytest

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import (
    ADMIN_KEY,
    KEY,
    PASSWORD,
    SECRET,
    Peer,
    connect,
    extension,
    refused,
)


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def hub_url(request: pytest.FixtureRequest, module_hubs: Hubs, hub_config: dict[str, Any]) -> str:
    if request.param == "all-in-one":
        return module_hubs.start("semantest-server", config=hub_config).url
    redis: RedisServer = request.getfixturevalue("redis_server")
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"m{uuid.uuid4().hex[:8]}:"}
    module_hubs.start("semantest-auth", env=env, config=hub_config)
    module_hubs.start("semantest-router", env=env, config=hub_config)
    return module_hubs.start("semantest-gateway", env=env, config=hub_config).url


async def login(url: str, username: str, password: str = PASSWORD) -> str:
    async with aiohttp.ClientSession() as http, http.post(
        f"{url}/auth/login", json={"username": username, "password": password}
    ) as response:
        body = await response.json()
        assert response.status == 200, body
        return body["token"]


def ext_auth(extension_id: str, **extra: Any) -> dict[str, Any]:
    return {"apiKey": KEY, "role": "extension", "extensionId": extension_id,
            "capabilities": ["*"], **extra}


async def test_command_round_trip_with_progress_and_correlation(hub_url: str,
                                                                peers: list[Peer]) -> None:
    ext_id = f"ext-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub_url, peers, ext_auth(ext_id))
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "NAVIGATE", "url": "https://example.com",
                                        "correlationId": "c-1", "target": {"extensionId": ext_id}})
    assert ack["accepted"] is True
    delivered = await ext.next("command")
    assert delivered["id"] == ack["id"]
    assert delivered["url"] == "https://example.com"  # unknown fields pass through unchanged
    assert delivered["deadline"] > 0
    progress = await client.next("progress")
    assert progress == {"id": ack["id"], "percent": 50, "message": "half", "correlationId": "c-1"}
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["success"] is True
    assert result["correlationId"] == "c-1"
    assert result["metadata"]["extension"] == ext_id
    assert result["data"]["type"] == "NAVIGATE"


async def test_resent_id_is_not_executed_twice(hub_url: str, peers: list[Peer]) -> None:
    ext_id = f"ext-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub_url, peers, ext_auth(ext_id), progress=False)
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    command = {"id": f"cmd-{uuid.uuid4().hex}", "type": "CLICK",
               "target": {"extensionId": ext_id}}
    await client.call("command", command)
    first = await client.next("result")
    await client.call("command", command)
    again = await client.next("result")
    assert again == first
    await ext.next("command")
    assert ext.pending("command") == 0


async def test_least_loaded_capable_extension_is_chosen(hub_url: str, peers: list[Peer]) -> None:
    tag = uuid.uuid4().hex[:6]
    shots = await extension(hub_url, peers, ext_auth(f"shots-{tag}", capabilities=[f"SHOT{tag}"]))
    await extension(hub_url, peers, ext_auth(f"nav-{tag}", capabilities=[f"NAV{tag}"]))
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    await client.call("command", {"type": f"SHOT{tag}"})
    result = await client.next("result")
    assert result["metadata"]["extension"] == f"shots-{tag}"
    assert (await shots.next("command"))["type"] == f"SHOT{tag}"


async def test_no_capable_extension_until_deadline(hub_url: str, peers: list[Peer]) -> None:
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": f"NOBODY-{uuid.uuid4().hex}", "timeout": 300})
    result = await client.next("result")
    assert result["id"] == ack["id"]
    assert result["success"] is False and result["error"]["code"] == "NO_EXTENSION"


async def test_queued_command_runs_when_an_extension_connects(hub_url: str,
                                                             peers: list[Peer]) -> None:
    kind = f"LATE-{uuid.uuid4().hex[:6]}"
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": kind, "timeout": 10000})
    await extension(hub_url, peers, ext_auth(f"late-{kind}", capabilities=[kind]))
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["success"] is True


async def test_timeout_cancels_at_the_extension(hub_url: str, peers: list[Peer]) -> None:
    ext_id = f"slow-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub_url, peers, ext_auth(ext_id), answer=False)
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "WAIT", "timeout": 400,
                                        "target": {"extensionId": ext_id}})
    result = await client.next("result")
    assert result["error"]["code"] == "TIMEOUT"
    assert await ext.next("cancel") == {"id": ack["id"]}


async def test_cancel(hub_url: str, peers: list[Peer]) -> None:
    ext_id = f"cancel-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub_url, peers, ext_auth(ext_id), answer=False)
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "WAIT", "target": {"extensionId": ext_id}})
    await ext.next("command")
    await client.call("cancel", {"id": ack["id"]})
    result = await client.next("result")
    assert result["error"]["code"] == "CANCELLED"
    assert await ext.next("cancel") == {"id": ack["id"]}
    # A late result from the extension changes nothing: exactly one result.
    await ext.emit("result", {"id": ack["id"], "success": True})
    await client.call("cancel", {"id": ack["id"]})
    late = await client.next("error")
    assert late["code"] == "VALIDATION_FAILED" and late["event"] == "cancel"
    assert client.pending("result") == 0


async def test_extension_that_does_not_come_back(hub_url: str, peers: list[Peer]) -> None:
    ext_id = f"gone-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub_url, peers, ext_auth(ext_id), answer=False)
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    await client.call("command", {"type": "WAIT", "target": {"extensionId": ext_id}})
    await ext.next("command")
    await ext.sio.disconnect()
    result = await client.next("result")
    assert result["error"]["code"] == "EXTENSION_DISCONNECTED"


async def test_extension_that_comes_back_in_its_grace_period(hub_url: str,
                                                             peers: list[Peer]) -> None:
    ext_id = f"back-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub_url, peers, ext_auth(ext_id), answer=False)
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "WAIT", "target": {"extensionId": ext_id}})
    await ext.next("command")
    await ext.sio.disconnect()
    again = await extension(hub_url, peers, ext_auth(ext_id), answer=False)
    await again.emit("result", {"id": ack["id"], "success": True, "data": {"after": "reconnect"}})
    result = await client.next("result")
    assert result["success"] is True and result["data"] == {"after": "reconnect"}


async def test_status_and_ping(hub_url: str, peers: list[Peer]) -> None:
    ext_id = f"status-{uuid.uuid4().hex[:6]}"
    await extension(hub_url, peers, ext_auth(ext_id, name="Chrome", version="1.2"))
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    status = await client.call("status")
    assert status == await client.next("status")
    assert status["status"] == "healthy" and status["version"]
    mine = [e for e in status["extensions"] if e["extensionId"] == ext_id]
    assert mine == [{"extensionId": ext_id, "name": "Chrome", "version": "1.2",
                     "capabilities": ["*"], "inFlight": 0}]
    assert set(status["commands"]) == {"inFlight", "queued"}
    pong = await client.call("ping", {"timestamp": 1234})
    assert pong["timestamp"] == 1234 and pong["serverTime"] > 0
    assert await client.next("pong") == pong


async def test_tenants_are_isolated(hub_url: str, peers: list[Peer]) -> None:
    ext_id = f"acme-{uuid.uuid4().hex[:6]}"
    bob = await login(hub_url, "bob")
    await extension(hub_url, peers, {"token": bob, "role": "extension", "extensionId": ext_id})
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    await client.call("command", {"type": "NAVIGATE", "timeout": 500,
                                  "target": {"extensionId": ext_id}})
    result = await client.next("result")
    assert result["error"]["code"] == "NO_EXTENSION"
    status = await client.call("status")
    assert ext_id not in {e["extensionId"] for e in status["extensions"]}


async def test_login_token_and_bearer_header(hub_url: str, peers: list[Peer]) -> None:
    token = await login(hub_url, "alice")
    by_auth = await connect(hub_url, auth={"token": token})
    by_header = await connect(hub_url, headers={"Authorization": f"Bearer {token}"})
    by_key_header = await connect(hub_url, headers={"X-API-Key": KEY})
    peers.extend([by_auth, by_header, by_key_header])
    assert (await by_header.call("ping"))["serverTime"] > 0


async def test_login_refusals(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{hub_url}/auth/login",
                             json={"username": "alice", "password": "wrong"}) as response:
            assert response.status == 401
            assert (await response.json())["error"]["code"] == "AUTH_INVALID"
        async with http.post(f"{hub_url}/auth/login", data=b"{not json") as response:
            assert response.status == 400
            assert (await response.json())["error"]["code"] == "VALIDATION_FAILED"
        async with http.post(f"{hub_url}/auth/login", json={"username": 5}) as response:
            assert response.status == 400


async def test_logout_revokes_the_token(hub_url: str, peers: list[Peer]) -> None:
    token = await login(hub_url, "alice")
    async with aiohttp.ClientSession() as http, http.post(
        f"{hub_url}/auth/logout", headers={"Authorization": f"Bearer {token}"}
    ) as response:
        assert response.status == 200
    error = await refused(hub_url, auth={"token": token})
    assert error["message"] == "AUTH_INVALID"


@pytest.mark.parametrize(
    ("auth", "code"),
    [
        (None, "AUTH_REQUIRED"),
        ({"apiKey": "nope"}, "AUTH_INVALID"),
        ({"token": "not-a-jwt"}, "AUTH_INVALID"),
        ({"token": jwt.encode({"sub": "x", "jti": "j", "iat": 1, "nbf": 1, "exp": 2}, SECRET)},
         "AUTH_EXPIRED"),
        ({"token": jwt.encode({"sub": "x", "jti": "j", "iat": 1, "nbf": 1, "exp": 2**40},
                              "another-secret-of-enough-length-0123456789")}, "AUTH_INVALID"),
        ({"apiKey": KEY, "role": "admin"}, "VALIDATION_FAILED"),
    ],
)
async def test_connection_refusals(hub_url: str, auth: dict[str, Any] | None, code: str) -> None:
    error = await refused(hub_url, auth=auth)
    assert error["message"] == code
    assert error["data"]["code"] == code and error["data"]["message"]


async def test_client_only_user_may_not_be_an_extension(hub_url: str) -> None:
    token = await login(hub_url, "carol")
    error = await refused(hub_url, auth={"token": token, "role": "extension"})
    assert error["data"] == {"code": "FORBIDDEN",
                             "message": "this credential may not connect as extension"}


async def test_wrong_role_for_event(hub_url: str, peers: list[Peer]) -> None:
    client = await connect(hub_url, auth={"apiKey": KEY})
    ext = await extension(hub_url, peers, ext_auth(f"role-{uuid.uuid4().hex[:6]}"))
    peers.append(client)
    answer = await client.call("result", {"id": "x", "success": True})
    assert answer["error"]["code"] == "FORBIDDEN"
    answer = await ext.call("command", {"type": "NAVIGATE"})
    assert answer["error"]["code"] == "FORBIDDEN"


GARBAGE: list[tuple[str, Any]] = [
    ("command", None), ("command", 42), ("command", "NAVIGATE"), ("command", [1, 2]),
    ("command", {"type": ""}), ("command", {"type": 7}), ("command", {"type": "X", "timeout": -1}),
    ("command", {"type": "X", "target": "string"}), ("command", {"type": "X", "id": ""}),
    ("cancel", {}), ("cancel", {"id": 5}), ("status", [1]), ("no-such-event", {"a": 1}),
]


async def test_garbage_gets_errors_and_disturbs_no_one(hub_url: str, peers: list[Peer]) -> None:
    bystander = await connect(hub_url, auth={"apiKey": KEY})
    attacker = await connect(hub_url, auth={"apiKey": KEY})
    peers.extend([bystander, attacker])
    for event, data in GARBAGE:
        answer = await attacker.call(event, data)
        if event == "status":
            continue  # status ignores its payload
        code = answer["error"]["code"]
        assert code in {"VALIDATION_FAILED", "UNKNOWN_EVENT"}, (event, data, answer)
        assert (await attacker.next("error"))["code"] == code
    assert attacker.sio.connected and bystander.sio.connected
    assert (await bystander.call("ping"))["serverTime"] > 0


async def test_payload_over_max_payload_is_refused_and_the_sender_stays(
    hub_url: str, peers: list[Peer]
) -> None:
    client = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(client)
    answer = await client.call("command", {"type": "X", "blob": "x" * 2_000_000})
    assert answer["error"]["code"] == "PAYLOAD_TOO_LARGE"
    assert answer["error"]["event"] == "command"
    assert (await client.next("error"))["code"] == "PAYLOAD_TOO_LARGE"
    assert client.sio.connected
    assert (await client.call("ping"))["serverTime"] > 0


async def test_frame_far_beyond_the_limit_drops_only_the_sender(hub_url: str,
                                                                peers: list[Peer]) -> None:
    bystander = await connect(hub_url, auth={"apiKey": KEY})
    attacker = await connect(hub_url, auth={"apiKey": KEY})
    peers.extend([bystander, attacker])
    gone = asyncio.Event()
    attacker.sio.on("disconnect", lambda *_: gone.set())
    await attacker.emit("command", {"type": "X", "blob": "x" * 5_000_000})
    await asyncio.wait_for(gone.wait(), 10)
    assert (await bystander.call("ping"))["serverTime"] > 0
    again = await connect(hub_url, auth={"apiKey": KEY})
    peers.append(again)
    assert (await again.call("ping"))["serverTime"] > 0


async def test_health_and_metrics(hub_url: str) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{hub_url}/health") as response:
            health = await response.json()
        assert response.status == 200
        assert health["status"] == "healthy" and health["redis"] in {"embedded", "connected"}
        assert set(health["connections"]) == {"clients", "extensions"}
        for probe in ("/health/live", "/health/ready"):
            async with http.get(hub_url + probe) as response:
                assert response.status == 200
        async with http.get(f"{hub_url}/metrics") as response:
            text = await response.text()
    for name in ("websocket_connections_total", "websocket_connections_active",
                 "websocket_messages_total"):
        assert f"# TYPE {name}" in text
    assert ADMIN_KEY not in text and SECRET not in text
