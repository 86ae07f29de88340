"""Secrets never leave: not in logs (at debug level), `/health`, `/metrics`, `status`, error
events, refusals, nor at rest in Redis (streams keep their entries; keys are stored as hashes).

One run of every flow that handles a secret, on auth + router + gateway over Redis, then a search
for each secret everywhere the hub writes.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import jwt
from redis import asyncio as aioredis

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import ADMIN_KEY, KEY, PASSWORD, SECRET, Peer, connect, refused
from tests.security.conftest import http, make_key


async def redis_contents(url: str, prefix: str) -> str:
    """Everything under `prefix`: values, stream entries, set and schedule members."""
    client = aioredis.Redis.from_url(url)
    seen: list[str] = []
    try:
        async for key in client.scan_iter(match=f"{prefix}*"):
            kind = (await client.type(key)).decode()
            if kind == "string":
                seen.append(repr(await client.get(key)))
            elif kind == "stream":
                seen.extend(repr(entry) for entry in await client.xrange(key))
            elif kind == "set":
                seen.append(repr(await client.smembers(key)))
            elif kind == "zset":
                seen.append(repr(await client.zrange(key, 0, -1)))
            elif kind == "hash":
                seen.append(repr(await client.hgetall(key)))
            seen.append(key.decode())
    finally:
        await client.aclose()
    return "\n".join(seen)


async def test_no_secret_in_logs_answers_or_redis(hubs: Hubs, hub_config: dict[str, Any],
                                                  redis_server: RedisServer,
                                                  peers: list[Peer]) -> None:
    prefix = f"secret{uuid.uuid4().hex[:6]}:"
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": prefix, "LOG_LEVEL": "debug",
           "LOG_FORMAT": "json"}
    auth = hubs.start("semantest-auth", env=env, config=hub_config)
    router = hubs.start("semantest-router", env=env, config=hub_config)
    gateway = hubs.start("semantest-gateway", env=env, config=hub_config)
    url = gateway.url
    seen: list[Any] = []  # every answer the hub gave

    _, _, body = await http("POST", f"{url}/auth/login",
                                 json={"username": "alice", "password": PASSWORD})
    token = body["token"]
    seen.append(await http("POST", f"{url}/auth/login",
                           json={"username": "alice", "password": PASSWORD + "x"}))
    made = await make_key(url, ["client", "extension"])
    client = await connect(url, auth={"token": token})
    keyed = await connect(url, auth={"apiKey": made["key"]})
    ext = await connect(url, auth={"apiKey": KEY, "role": "extension", "extensionId": "leaky"})
    peers.extend([client, keyed, ext])
    seen.append(await client.call("status"))
    seen.append(await keyed.call("command", {"type": "X", "timeout": "bad"}))
    session = await client.call("session:create", {"name": "s"})
    share = (await client.call("session:share", {"sessionId": session["sessionId"],
                                                 "permissions": ["read"]}))["shareToken"]
    seen.append(await keyed.call("session:join", {"sessionId": session["sessionId"],
                                                  "shareToken": share + "x"}))
    now = int(time.time())
    expired = jwt.encode({"sub": "a", "jti": "j", "iat": now - 99, "nbf": now - 99,
                          "exp": now - 60}, SECRET)
    for auth_data in ({"token": expired}, {"token": token + "x"}, {"apiKey": made["key"] + "x"},
                      {"apiKey": ADMIN_KEY + "x"}, {"token": share}):
        seen.append(await refused(url, auth=auth_data))
    seen.append(await http("GET", f"{url}/auth/api-keys", headers={"X-API-Key": ADMIN_KEY}))
    seen.append(await http("GET", f"{url}/auth/api-keys", headers={"X-API-Key": KEY}))
    seen.append(await http("GET", f"{url}/health"))
    seen.append(await http("GET", f"{url}/metrics"))
    seen.append(await http("DELETE", f"{url}/auth/api-keys/{made['id']}",
                           headers={"X-API-Key": ADMIN_KEY}))
    seen.append(await http("POST", f"{url}/auth/logout",
                           headers={"Authorization": f"Bearer {token}"}))
    seen.append(await http("POST", f"{url}/auth/logout",
                           headers={"Authorization": f"Bearer {token}"}))
    for peer in (client, keyed, ext):
        while peer.pending("error"):
            seen.append(await peer.next("error"))
    at_rest = await redis_contents(redis_server.url, prefix)
    for hub in (gateway, router, auth):
        hub.stop()
    logs = "\n".join(hub.output() for hub in (auth, router, gateway))
    assert "auth" in logs and "gateway" in logs  # the logs are there, at debug level

    answers = json.dumps(seen, default=repr)
    secrets = {"JWT secret": SECRET, "static key": KEY, "admin key": ADMIN_KEY,
               "password": PASSWORD, "made key": made["key"], "token": token,
               "share token": share, "key secret part": made["key"].split("_", 2)[2]}
    for name, secret in secrets.items():
        assert secret not in logs, f"the {name} is in a log"
        assert secret not in answers, f"the {name} is in an answer"
        assert secret not in at_rest, f"the {name} is at rest in Redis"
    assert f"apikey:{made['id']}" not in at_rest  # revoked: gone
