"""What survives `kill -9`: persistent sessions and their rights survive every hub process dying;
a dead gateway's extensions follow the reconnect grace rule, and its clients carry on elsewhere.
Real Redis stays up; every hub process is a real OS process."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect, extension
from tests.e2e.test_commands import login


def services(hubs: Hubs, env: dict[str, str], config: dict[str, Any],
             gateways: int = 2) -> list[str]:
    hubs.start("semantest-auth", env=env, config=config)
    hubs.start("semantest-router", env=env, config=config)
    return [hubs.start("semantest-gateway", env=env, config=config).url
            for _ in range(gateways)]


@pytest.mark.timeout(120)
async def test_persistent_session_survives_every_process(hubs: Hubs, hub_config: dict[str, Any],
                                                         redis_server: RedisServer,
                                                         peers: list[Peer]) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"rs{uuid.uuid4().hex[:6]}:"}
    first = services(hubs, env, hub_config)
    owner = await connect(first[0], auth={"apiKey": KEY})
    alice = await connect(first[1], auth={"token": await login(first[1], "alice")})
    peers.extend([owner, alice])
    created = await owner.call("session:create", {"name": "nightly", "persistent": True})
    session_id = created["sessionId"]
    token = (await owner.call("session:share", {"sessionId": session_id,
                                                "permissions": ["read"]}))["shareToken"]
    await alice.call("session:join", {"sessionId": session_id, "shareToken": token})

    for hub in hubs.started:
        hub.kill()
    second = services(hubs, env, hub_config)

    ext_id = f"persist-{uuid.uuid4().hex[:6]}"
    await extension(second[1], peers, {"apiKey": KEY, "role": "extension",
                                       "extensionId": ext_id})
    owner_again = await connect(second[0], auth={"apiKey": KEY})
    alice_again = await connect(second[1], auth={"token": await login(second[1], "alice")})
    peers.extend([owner_again, alice_again])
    rejoined = await owner_again.call("session:join", {"sessionId": session_id})
    assert rejoined["permissions"] == ["read", "write"] and rejoined["name"] == "nightly"
    member = await alice_again.call("session:join", {"sessionId": session_id})
    assert member["permissions"] == ["read"]  # her right came from the store, no token needed
    ack = await owner_again.call("command", {"type": "NAVIGATE", "sessionId": session_id})
    assert (await alice_again.next("result"))["id"] == ack["id"]
    refused = await alice_again.call("command", {"type": "NAVIGATE", "sessionId": session_id})
    assert refused["error"]["code"] == "FORBIDDEN"


@pytest.mark.timeout(120)
async def test_dead_gateway(hubs: Hubs, hub_config: dict[str, Any], redis_server: RedisServer,
                            peers: list[Peer]) -> None:
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"dg{uuid.uuid4().hex[:6]}:"}
    urls = services(hubs, env, hub_config, gateways=3)
    client_gateway, extension_gateway = hubs.started[-3], hubs.started[-1]
    ext_id = f"doomed-{uuid.uuid4().hex[:6]}"
    await extension(urls[2], peers, {"apiKey": KEY, "role": "extension",
                                     "extensionId": ext_id}, answer=False)
    client = await connect(urls[1], auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "WAIT", "target": {"extensionId": ext_id}})

    # The client's own gateway dies too: it reconnects elsewhere and asks again by id.
    lost = await connect(client_gateway.url, auth={"apiKey": KEY})
    peers.append(lost)
    pending = await lost.call("command", {"type": "WAIT", "timeout": 60000,
                                          "target": {"extensionId": ext_id}})
    extension_gateway.kill()
    client_gateway.kill()
    result = await client.next("result", timeout=60)
    assert result["id"] == ack["id"]
    assert result["error"]["code"] == "EXTENSION_DISCONNECTED"

    carried_on = await connect(urls[1], auth={"apiKey": KEY})
    peers.append(carried_on)
    await carried_on.call("command", {"id": pending["id"], "type": "WAIT"})
    again = await carried_on.next("result", timeout=30)
    assert again["id"] == pending["id"]
    assert again["error"]["code"] == "EXTENSION_DISCONNECTED"
