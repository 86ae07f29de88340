"""Rate limits shared by two gateways over one Redis, login throttling, and the per-principal cap.

Every test is a different client IP (`X-Forwarded-For`, trusted one hop with
`rateLimiting.trustProxy: 1`) and a fresh API key, so tests share the cluster but not a window.
The windows are long: a window opens with its first request, so nothing here races a clock.
"""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import PASSWORD, Peer, connect, refused
from tests.security.conftest import cluster, http, make_key, merged

LIMIT = 8
MESSAGE = "Slow down, friend"
WINDOW_MS = 600_000
_ips = itertools.count(1)


def new_ip() -> str:
    n = next(_ips)
    return f"198.51.{n // 250}.{n % 250 + 1}"


def via(ip: str) -> dict[str, str]:
    return {"X-Forwarded-For": ip}


@pytest.fixture(scope="module")
def gateways(module_hubs: Hubs, hub_config: dict[str, Any], redis_server: RedisServer
             ) -> list[str]:
    config = merged(hub_config,
                    rateLimiting={"enabled": True, "windowMs": WINDOW_MS, "maxRequests": LIMIT,
                                  "message": MESSAGE, "trustProxy": 1},
                    server={"maxConnectionsPerPrincipal": 2},
                    auth={"loginAttempts": {"perUsername": 3, "perIp": 5}})
    return cluster(module_hubs, config, redis_server, gateways=2)


async def key_for(gateways: list[str], **options: Any) -> str:
    return (await make_key(gateways[0], ["client", "extension"], **options,
                           headers=via(new_ip())))["key"]


async def test_socket_events_share_one_limit_across_gateways(gateways: list[str],
                                                             peers: list[Peer]) -> None:
    key = await key_for(gateways)
    ip = new_ip()
    one = await connect(gateways[0], auth={"apiKey": key}, headers=via(ip))
    two = await connect(gateways[1], auth={"apiKey": key}, headers=via(ip))
    bystander = await connect(gateways[1], auth={"apiKey": await key_for(gateways)},
                              headers=via(new_ip()))
    peers.extend([one, two, bystander])
    for n in range(LIMIT):
        answer = await (one if n % 2 else two).call("ping", {"timestamp": n})
        assert answer["timestamp"] == n
    for peer in (one, two):
        refusal = await peer.call("ping", {"timestamp": "late"})
        assert refusal["accepted"] is False
        error = await peer.next("error")
        assert error == refusal["error"]
        assert error["code"] == "RATE_LIMITED" and error["message"] == MESSAGE
        assert error["event"] == "ping"
        assert 0 < error["retryAfter"] <= WINDOW_MS
    refusal = await one.call("command", {"type": "CLICK", "id": "over-the-limit"})
    assert refusal["error"]["code"] == "RATE_LIMITED" and refusal["error"]["id"] == "over-the-limit"
    assert (await one.call("no-such-event"))["error"]["code"] == "RATE_LIMITED"
    assert one.sio.connected and two.sio.connected  # limited, never disconnected
    assert (await bystander.call("ping", {"timestamp": 1}))["timestamp"] == 1


async def test_http_requests_share_one_limit_per_ip_across_gateways(gateways: list[str]) -> None:
    ip = new_ip()
    for n in range(LIMIT):
        status, _, _ = await http("GET", f"{gateways[n % 2]}/health", headers=via(ip))
        assert status == 200
    for url in gateways:
        status, headers, body = await http("GET", f"{url}/health", headers=via(ip))
        assert status == 429
        assert 1 <= int(headers["Retry-After"]) <= WINDOW_MS // 1000
        assert body["error"]["code"] == "RATE_LIMITED"
        assert body["error"]["message"] == MESSAGE
        status, _, body = await http("POST", f"{url}/auth/login", headers=via(ip),
                                     json={"username": "alice", "password": PASSWORD})
        assert status == 429 and body["error"]["message"] == MESSAGE
        status, _, _ = await http("GET", f"{url}/health/ready", headers=via(ip))
        assert status == 200  # probes are never limited
    status, _, _ = await http("GET", f"{gateways[0]}/health", headers=via(new_ip()))
    assert status == 200  # another client is not affected


async def test_connection_attempts_are_limited_per_ip_before_auth(gateways: list[str],
                                                                 peers: list[Peer]) -> None:
    ip = new_ip()
    for n in range(LIMIT):
        error = await refused(gateways[n % 2], auth={"apiKey": f"guess-{n}"}, headers=via(ip))
        assert error["message"] == "AUTH_INVALID"
    key = await key_for(gateways)
    error = await refused(gateways[0], auth={"apiKey": key}, headers=via(ip))
    assert error["message"] == "RATE_LIMITED"
    assert error["data"]["code"] == "RATE_LIMITED" and error["data"]["message"] == MESSAGE
    assert error["data"]["retryAfter"] > 0
    peers.append(await connect(gateways[1], auth={"apiKey": key}, headers=via(new_ip())))


async def login(url: str, username: str, password: str, ip: str) -> tuple[int, dict[str, str],
                                                                         Any]:
    return await http("POST", f"{url}/auth/login", headers=via(ip),
                      json={"username": username, "password": password})


async def test_login_brute_force_is_throttled_per_username(gateways: list[str]) -> None:
    for n in range(3):  # auth.loginAttempts.perUsername, over both gateways and many IPs
        status, _, body = await login(gateways[n % 2], "carol", f"guess-{n}", new_ip())
        assert status == 401 and body["error"]["code"] == "AUTH_INVALID"
    for password in ("guess-3", PASSWORD):  # now even the right password waits
        status, headers, body = await login(gateways[1], "carol", password, new_ip())
        assert status == 429, body
        assert body["error"]["code"] == "RATE_LIMITED" and "token" not in body
        assert int(headers["Retry-After"]) >= 1
    status, _, body = await login(gateways[0], "alice", PASSWORD, new_ip())
    assert status == 200 and body["token"]  # other accounts are untouched


async def test_login_attempts_are_throttled_per_ip(gateways: list[str]) -> None:
    ip = new_ip()
    for n in range(5):  # auth.loginAttempts.perIp, spread over usernames
        status, _, _ = await login(gateways[n % 2], f"nobody-{n}", "guess", ip)
        assert status == 401
    status, headers, body = await login(gateways[0], "alice", PASSWORD, ip)
    assert status == 429 and body["error"]["code"] == "RATE_LIMITED"
    assert "Retry-After" in headers


async def test_a_successful_login_clears_the_username_count(gateways: list[str]) -> None:
    for _ in range(2):
        assert (await login(gateways[0], "bob", "wrong", new_ip()))[0] == 401
    assert (await login(gateways[1], "bob", PASSWORD, new_ip()))[0] == 200
    for _ in range(3):
        assert (await login(gateways[0], "bob", "wrong", new_ip()))[0] == 401


async def test_connections_per_principal_are_capped_per_gateway(gateways: list[str],
                                                                peers: list[Peer]) -> None:
    key = await key_for(gateways)
    for _ in range(2):  # server.maxConnectionsPerPrincipal
        peers.append(await connect(gateways[0], auth={"apiKey": key}, headers=via(new_ip())))
    error = await refused(gateways[0], auth={"apiKey": key}, headers=via(new_ip()))
    assert error["data"]["code"] == "TOO_MANY_CONNECTIONS"
    assert key not in str(error)
    peers.append(await connect(gateways[1], auth={"apiKey": key}, headers=via(new_ip())))
    await peers[0].sio.disconnect()
    peers.append(await connect(gateways[0], auth={"apiKey": key}, headers=via(new_ip())))
