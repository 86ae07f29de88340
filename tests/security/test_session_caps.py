"""Session caps and expiry: one client can no longer make thousands of sessions that never end.

Per principal (`sessions.maxPerPrincipal`) and per tenant (`sessions.maxPerTenant`), counted in
the store so every gateway shares the count, and freed when a session ends (its last socket
leaves a non-persistent one; a persistent one expires `sessions.persistentTtl` after its last
use). Runs on the all-in-one server (in-process bus) and on auth + router + two gateways over
Redis. Each test makes its own tenant, so tests share a cluster but not a count.

Expiry is observed without touching the session: `session:leave` from a connection that never
joined answers `FORBIDDEN` while the session exists and `SESSION_NOT_FOUND` once it is gone, and
(unlike a join or a command) it does not count as use.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

import pytest
import redis

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import Peer, connect
from tests.security.conftest import cluster, make_key, merged

PER_PRINCIPAL = 3
PER_TENANT = 5
TTL_MS = 3000
"""Short enough to watch a session expire, long enough that a use every second keeps it."""


def hub(request: pytest.FixtureRequest, hubs: Hubs, config: dict[str, Any]) -> list[str]:
    redis_server: RedisServer | None = (request.getfixturevalue("redis_server")
                                        if request.param == "services" else None)
    return cluster(hubs, config, redis_server, gateways=2)


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def capped(request: pytest.FixtureRequest, module_hubs: Hubs,
           hub_config: dict[str, Any]) -> list[str]:
    """Small caps, the default (week-long) TTL: nothing expires during a test."""
    return hub(request, module_hubs, merged(hub_config, sessions={
        "maxPerPrincipal": PER_PRINCIPAL, "maxPerTenant": PER_TENANT}))


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def expiring(request: pytest.FixtureRequest, module_hubs: Hubs,
             hub_config: dict[str, Any]) -> list[str]:
    """A three-second TTL and one session per principal, so an expiry visibly frees the cap."""
    return hub(request, module_hubs, merged(hub_config, sessions={
        "maxPerPrincipal": 1, "persistentTtl": TTL_MS}))


async def principals(gateways: list[str], peers: list[Peer], count: int,
                     tenant: str | None = None) -> list[Peer]:
    """`count` clients, each with its own new API key (so its own principal) in one new tenant,
    alternating between the gateways."""
    tenant = tenant or f"caps-{uuid.uuid4().hex[:8]}"
    made = []
    for n in range(count):
        key = (await make_key(gateways[0], ["client"], tenant=tenant))["key"]
        peer = await connect(gateways[n % len(gateways)], auth={"apiKey": key})
        peers.append(peer)
        made.append(peer)
    return made


async def create(peer: Peer, persistent: bool = True) -> str:
    answer = await peer.call("session:create", {"name": "work", "persistent": persistent})
    assert "sessionId" in answer, answer
    return answer["sessionId"]


async def refused_create(peer: Peer, key: str) -> str:
    answer = await peer.call("session:create", {"name": "one more", "persistent": True})
    error = answer["error"]
    assert error["code"] == "VALIDATION_FAILED", answer
    assert key in error["message"], answer
    return error["message"]


async def exists(probe: Peer, session_id: str) -> bool:
    """Whether the session exists, asked by a non-member without using the session."""
    code = (await probe.call("session:leave", {"sessionId": session_id}))["error"]["code"]
    assert code in ("FORBIDDEN", "SESSION_NOT_FOUND"), code
    return code == "FORBIDDEN"


async def gone_within(probe: Peer, session_id: str, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while await exists(probe, session_id):
        assert time.monotonic() < deadline, f"session still there after {seconds}s"
        await asyncio.sleep(0.2)


async def test_a_principal_hits_its_cap_and_a_neighbour_still_creates(
        capped: list[str], peers: list[Peer]) -> None:
    greedy, neighbour = await principals(capped, peers, 2)
    for _ in range(PER_PRINCIPAL - 1):
        await create(greedy)
    short_lived = await create(greedy, persistent=False)
    message = await refused_create(greedy, "sessions.maxPerPrincipal")
    assert f"at most {PER_PRINCIPAL} sessions per principal" in message
    assert await create(neighbour)  # same tenant, another principal: not affected

    # The count is the principal's, on every gateway, on every connection.
    twin = await connect(capped[1], auth={"apiKey": greedy.sio.connection_auth["apiKey"]})
    peers.append(twin)
    await refused_create(twin, "sessions.maxPerPrincipal")

    # A non-persistent session that ends gives its place back.
    await greedy.call("session:leave", {"sessionId": short_lived})
    assert await create(twin)
    await refused_create(greedy, "sessions.maxPerPrincipal")


async def test_a_session_ended_by_disconnect_gives_its_place_back(
        capped: list[str], peers: list[Peer]) -> None:
    (owner,) = await principals(capped, peers, 1)
    for _ in range(PER_PRINCIPAL):
        await create(owner, persistent=False)
    await refused_create(owner, "sessions.maxPerPrincipal")
    again = await connect(capped[1], auth={"apiKey": owner.sio.connection_auth["apiKey"]})
    peers.append(again)
    await owner.sio.disconnect()  # ends all three: they had no other member
    deadline = time.monotonic() + 10  # the gateway handles the disconnect on its own time
    while "error" in (answer := await again.call("session:create", {"name": "after"})):
        assert answer["error"]["code"] == "VALIDATION_FAILED", answer
        assert time.monotonic() < deadline, "the disconnect never gave the places back"
        await asyncio.sleep(0.1)
    for _ in range(PER_PRINCIPAL - 1):
        await create(again)
    await refused_create(again, "sessions.maxPerPrincipal")


async def test_the_tenant_cap_holds_across_its_principals(capped: list[str],
                                                          peers: list[Peer]) -> None:
    first, second, third = await principals(capped, peers, 3)
    for _ in range(PER_PRINCIPAL):
        await create(first)
    ending = await create(second, persistent=False)
    await create(second)
    # `second` holds 2 of its 3, but the tenant holds all 5 of its own.
    message = await refused_create(second, "sessions.maxPerTenant")
    assert f"limit of {PER_TENANT} sessions" in message
    await refused_create(third, "sessions.maxPerTenant")
    (outsider,) = await principals(capped, peers, 1)  # another tenant is not affected
    assert await create(outsider)
    await second.call("session:leave", {"sessionId": ending})
    assert await create(third)
    await refused_create(third, "sessions.maxPerTenant")


async def test_a_persistent_session_expires_after_its_ttl_and_frees_the_cap(
        expiring: list[str], peers: list[Peer], request: pytest.FixtureRequest) -> None:
    owner, member, probe = await principals(expiring, peers, 3)
    session_id = await create(owner)
    share = (await owner.call("session:share", {"sessionId": session_id,
                                                "permissions": ["read"]}))["shareToken"]
    await refused_create(owner, "sessions.maxPerPrincipal")  # one per principal here
    assert await exists(probe, session_id)
    await gone_within(probe, session_id, TTL_MS / 1000 + 10)
    answer = await member.call("session:join", {"sessionId": session_id, "shareToken": share})
    assert answer["error"]["code"] == "SESSION_NOT_FOUND", answer
    # The owner is still attached; its next use finds the session gone instead of reviving it.
    answer = await owner.call("command", {"type": "X", "sessionId": session_id, "timeout": 100})
    assert answer["error"]["code"] == "SESSION_NOT_FOUND", answer
    assert not await exists(probe, session_id)
    assert await create(owner)  # the expired session no longer counts

    if "services" in request.node.callspec.id:  # and nothing of it is left in Redis
        server: RedisServer = request.getfixturevalue("redis_server")
        client = redis.Redis.from_url(server.url)
        try:
            assert list(client.scan_iter(match=f"*{session_id}*")) == []
        finally:
            client.close()


async def test_join_and_commands_keep_a_session_alive(expiring: list[str],
                                                      peers: list[Peer]) -> None:
    owner, member, commanding, probe = await principals(expiring, peers, 4)
    joined_id = await create(owner)
    share = (await owner.call("session:share", {"sessionId": joined_id,
                                                "permissions": ["read", "write"]}))["shareToken"]
    await member.call("session:join", {"sessionId": joined_id, "shareToken": share})
    used_id = await create(commanding)
    started = time.monotonic()
    # Twice the TTL, using each session once a second: only the refresh keeps them.
    while time.monotonic() - started < 2 * TTL_MS / 1000:
        answer = await member.call("session:join", {"sessionId": joined_id})
        assert answer.get("sessionId") == joined_id, answer
        answer = await commanding.call("command", {"type": "X", "sessionId": used_id,
                                                   "timeout": 100})
        assert answer.get("accepted") is True, answer
        await asyncio.sleep(1)
    assert await exists(probe, joined_id) and await exists(probe, used_id)
    await gone_within(probe, joined_id, TTL_MS / 1000 + 10)  # left alone, both expire
    await gone_within(probe, used_id, TTL_MS / 1000 + 10)
