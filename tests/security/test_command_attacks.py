"""Attacks on the command path by a principal with a valid credential (docs/security.md, the
command-path rows): ids that could split a key, taking over another principal's extension,
reading or cancelling someone else's command by its id, starving the queue, and filling memory
with finished commands. Each attack is made against the all-in-one server and against auth +
router + two gateways over Redis, and each test also checks that a bystander is unaffected.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any

import pytest
from redis import asyncio as aioredis

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect, extension, refused
from tests.security.conftest import cluster, make_key, merged

MAX_QUEUED = 20
CONTROL_IDS = ["a\x1fb", "a\x00b", "line\nbreak", "tab\there", "sp ace", "é", "x" * 129, ""]


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def gateways(request: pytest.FixtureRequest, module_hubs: Hubs,
             hub_config: dict[str, Any]) -> list[str]:
    redis: RedisServer | None = (request.getfixturevalue("redis_server")
                                 if request.param == "services" else None)
    config = merged(hub_config, commands={"maxQueuedPerPrincipal": MAX_QUEUED,
                                          "maxResultBytes": 65536})
    return cluster(module_hubs, config, redis, gateways=2)


async def other_principal(url: str, peers: list[Peer], role: str = "client",
                          **auth: Any) -> tuple[Peer, str]:
    """A second principal of the same tenant: its own API key."""
    made = await make_key(url, ["client", "extension"])
    peer = await connect(url, auth={"apiKey": made["key"], "role": role, **auth})
    peers.append(peer)
    return peer, made["key"]


async def test_ids_outside_the_character_set_are_refused(gateways: list[str],
                                                         peers: list[Peer]) -> None:
    client = await connect(gateways[0], auth={"apiKey": KEY})
    peers.append(client)
    for bad in CONTROL_IDS:
        for field in ("id", "correlationId", "sessionId"):
            ack = await client.call("command", {"type": "CLICK", field: bad})
            assert ack["accepted"] is False, (field, bad)
            assert ack["error"]["code"] == "VALIDATION_FAILED"
        ack = await client.call("cancel", {"id": bad})
        assert ack["error"]["code"] == "VALIDATION_FAILED"
        error = await refused(gateways[1], auth={"apiKey": KEY, "role": "extension",
                                                 "extensionId": bad})
        assert error["message"] == "VALIDATION_FAILED"
    # Deadlines still run for everyone: a command nobody can take ends on time.
    ack = await client.call("command", {"type": f"NOBODY-{uuid.uuid4().hex}", "timeout": 300})
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["error"]["code"] == "NO_EXTENSION"


async def test_a_live_extension_id_cannot_be_taken_over(gateways: list[str],
                                                        peers: list[Peer]) -> None:
    ext_id = f"victim-{uuid.uuid4().hex[:6]}"
    auth = {"apiKey": KEY, "role": "extension", "extensionId": ext_id}
    victim = await extension(gateways[0], peers, auth, answer=False)
    made = await make_key(gateways[0], ["client", "extension"])
    takeover = {"apiKey": made["key"], "role": "extension", "extensionId": ext_id}
    error = await refused(gateways[1], auth=takeover)
    assert error["data"]["code"] == "FORBIDDEN"
    client = await connect(gateways[1], auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "READ", "target": {"extensionId": ext_id}})
    command = await victim.next("command")
    # Another extension of the same tenant forges a result for the victim's command: ignored.
    forger, _ = await other_principal(gateways[1], peers, role="extension",
                                      extensionId=f"forger-{uuid.uuid4().hex[:6]}")
    await forger.emit("result", {"id": ack["id"], "success": True, "data": {"forged": True}})
    await forger.emit("progress", {"id": ack["id"], "percent": 99})
    assert (await forger.call("ping"))["serverTime"] > 0
    await victim.emit("result", {"id": command["id"], "success": True, "data": {"real": True}})
    assert (await client.next("result"))["data"] == {"real": True}
    assert client.pending("progress") == 0
    # Gone, the id stays its owner's for the grace period; its owner may come back at once.
    await victim.sio.disconnect()
    assert (await refused(gateways[0], auth=takeover))["data"]["code"] == "FORBIDDEN"
    await extension(gateways[1], peers, auth)


async def test_a_command_id_belongs_to_its_sender(gateways: list[str],
                                                  peers: list[Peer]) -> None:
    ext_id = f"runner-{uuid.uuid4().hex[:6]}"
    runner = await extension(gateways[0], peers, {"apiKey": KEY, "role": "extension",
                                                  "extensionId": ext_id}, answer=False)
    owner = await connect(gateways[0], auth={"apiKey": KEY})
    peers.append(owner)
    secret_id = f"secret-{uuid.uuid4().hex}"
    await owner.call("command", {"id": secret_id, "type": "READ_COOKIE",
                                 "target": {"extensionId": ext_id}})
    command = await runner.next("command")
    spy, _ = await other_principal(gateways[1], peers)
    unknown = f"never-{uuid.uuid4().hex}"
    refusal = await spy.call("cancel", {"id": unknown})
    running = await spy.call("cancel", {"id": secret_id})  # while it runs
    assert running["error"]["message"] == refusal["error"]["message"]
    resend = await spy.call("command", {"id": secret_id, "type": "READ_COOKIE"})
    assert resend["accepted"] is False and resend["error"]["code"] == "VALIDATION_FAILED"
    await runner.emit("result", {"id": command["id"], "success": True,
                                 "data": {"cookie": "s3cr3t"}})
    assert (await owner.next("result"))["data"] == {"cookie": "s3cr3t"}
    resend = await spy.call("command", {"id": secret_id, "type": "READ_COOKIE"})  # ended
    assert resend["accepted"] is False
    assert (await spy.call("ping"))["serverTime"] > 0
    assert spy.pending("result") == 0
    # The sender itself, from a new connection, gets the result again.
    again = await connect(gateways[1], auth={"apiKey": KEY})
    peers.append(again)
    assert (await again.call("command", {"id": secret_id, "type": "READ_COOKIE"}))["accepted"]
    assert (await again.next("result"))["data"] == {"cookie": "s3cr3t"}


async def test_an_unrunnable_backlog_does_not_starve_others(gateways: list[str],
                                                            peers: list[Peer]) -> None:
    flooder, _ = await other_principal(gateways[0], peers)
    nobody = {"type": "NAVIGATE", "target": {"extensionId": f"nobody-{uuid.uuid4().hex}"},
              "timeout": 60000}  # waits whatever else is connected
    for _ in range(MAX_QUEUED):
        assert (await flooder.call("command", nobody))["accepted"]
    refusal = await flooder.call("command", nobody)
    assert refusal["error"]["code"] == "RATE_LIMITED"
    assert "maxQueuedPerPrincipal" in refusal["error"]["message"]
    bystander = await connect(gateways[1], auth={"apiKey": KEY})
    peers.append(bystander)
    kind = f"WORK-{uuid.uuid4().hex[:6]}"
    ack = await bystander.call("command", {"type": kind, "timeout": 20000})
    assert ack["accepted"] is True
    await extension(gateways[1], peers, {"apiKey": KEY, "role": "extension",
                                         "extensionId": f"late-{kind}", "capabilities": [kind]})
    result = await bystander.next("result")
    assert result["id"] == ack["id"] and result["success"] is True


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


@pytest.mark.timeout(180)
async def test_finished_commands_do_not_keep_their_payload(
        hubs: Hubs, hub_config: dict[str, Any], redis_server: RedisServer,
        peers: list[Peer]) -> None:
    """150 commands of ~900 KB that end at once: neither the hub nor Redis keeps their bulk."""
    prefix = f"mem{uuid.uuid4().hex[:6]}:"
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": prefix}
    config = merged(hub_config, commands={"maxResultBytes": 65536})
    hubs.start("semantest-auth", env=env, config=config)
    hubs.start("semantest-router", env=env, config=config)
    gateway = hubs.start("semantest-gateway", env=env, config=config)
    await extension(gateway.url, peers, {"apiKey": KEY, "role": "extension",
                                         "extensionId": f"mem-{prefix}"}, progress=False)
    client = await connect(gateway.url, auth={"apiKey": KEY})
    peers.append(client)
    redis = aioredis.Redis.from_url(redis_server.url)
    bulk = os.urandom(450_000).hex()
    before_redis = (await redis.info("memory"))["used_memory"]
    before_rss = rss_kib(gateway.process.pid)
    for _ in range(150):
        await client.call("command", {"type": "UPLOAD", "blob": bulk})
    for _ in range(150):
        assert (await client.next("result", timeout=30))["success"] is True
    grown_redis = ((await redis.info("memory"))["used_memory"] - before_redis) // 1024
    grown_rss = rss_kib(gateway.process.pid) - before_rss
    await redis.aclose()
    # Kept, the payloads would be 150 x 900 KB ≈ 132 MB, twice (the test extension echoes
    # the command in its result). Ended commands keep results of at most maxResultBytes, and
    # inbox entries are deleted once delivered.
    assert grown_redis < 20_000, f"Redis grew {grown_redis} KiB"
    assert grown_rss < 60_000, f"the gateway grew {grown_rss} KiB"
