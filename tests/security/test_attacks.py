"""The attack suite: each attack made as an attacker would make it, against real processes.

Credentials (none, forged, `alg: none`, HS/RS confusion, expired, not yet valid, revoked by logout,
revoked API key with its live connections dropped), API key management, and tenant isolation
(another tenant's extension, session, share token and channels; the system channels). Every
refusal must carry the right code and leak nothing. Runs on the all-in-one server and on
auth + router + two gateways over Redis (the revocation then crosses gateways).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
import warnings
from typing import Any

import aiohttp
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import ADMIN_KEY, KEY, PASSWORD, SECRET, Peer, connect, extension, refused
from tests.security.conftest import cluster, dropped, http, make_key, merged

ATTACKER_RSA = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ATTACKER_PUBLIC_PEM = ATTACKER_RSA.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def gateways(request: pytest.FixtureRequest, module_hubs: Hubs,
             hub_config: dict[str, Any]) -> list[str]:
    redis: RedisServer | None = (request.getfixturevalue("redis_server")
                                 if request.param == "services" else None)
    config = merged(hub_config, websocket={"maxSessions": 3, "maxSubscriptions": 5},
                    commands={"maxTimeout": 5000})
    return cluster(module_hubs, config, redis, gateways=2)


async def login(url: str, username: str) -> str:
    status, _, body = await http("POST", f"{url}/auth/login",
                                 json={"username": username, "password": PASSWORD})
    assert status == 200, body
    return body["token"]


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": "mallory", "tenant": "default", "scopes": ["client", "extension", "admin"],
            "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 600, **changes}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hs256_with_public_key() -> str:
    """The HS/RS confusion attack: HMAC over the token with the RSA *public* key as the secret,
    which a server that let the token pick its algorithm would accept. (pyjwt refuses to make
    such a token, so it is made by hand.)"""
    import hashlib
    import hmac

    signing = f"{b64(json.dumps({'alg': 'HS256', 'typ': 'JWT'}).encode())}." \
              f"{b64(json.dumps(claims()).encode())}"
    signature = hmac.new(ATTACKER_PUBLIC_PEM, signing.encode(), hashlib.sha256).digest()
    return f"{signing}.{b64(signature)}"


def hs512() -> str:
    with warnings.catch_warnings():  # pyjwt warns that the test secret is short for HS512
        warnings.simplefilter("ignore")
        return jwt.encode(claims(), SECRET, algorithm="HS512")


def forged_tokens() -> dict[str, tuple[str, str]]:
    """Made when a test runs, not at collection: a valid-looking token must not expire
    while a long suite runs (they are valid for 10 minutes)."""
    return {
        "another secret": (jwt.encode(claims(), "guessed-secret-guessed-secret-0123456789"),
                           "AUTH_INVALID"),
        "alg none": (jwt.encode(claims(), None, algorithm="none"), "AUTH_INVALID"),
        "alg none, signature kept": (
            jwt.encode(claims(), None, algorithm="none")
            + jwt.encode(claims(), SECRET).split(".")[2], "AUTH_INVALID"),
        "RS256 by the attacker": (jwt.encode(claims(), ATTACKER_RSA, algorithm="RS256"),
                                  "AUTH_INVALID"),
        "HS256 keyed with a public key": (hs256_with_public_key(), "AUTH_INVALID"),
        "HS512 with the right secret": (hs512(), "AUTH_INVALID"),
        "expired": (jwt.encode(claims(exp=int(time.time()) - 120), SECRET), "AUTH_EXPIRED"),
        "not yet valid": (jwt.encode(claims(nbf=int(time.time()) + 3600), SECRET),
                          "AUTH_INVALID"),
        "issued in the future": (jwt.encode(claims(iat=int(time.time()) + 3600), SECRET),
                                 "AUTH_INVALID"),
        "no expiry": (jwt.encode({k: v for k, v in claims().items() if k != "exp"}, SECRET),
                      "AUTH_INVALID"),
        "scopes not a list": (jwt.encode(claims(scopes="admin"), SECRET), "AUTH_INVALID"),
        "share-token audience": (jwt.encode(claims(aud="semantest:session-share"), SECRET),
                                 "AUTH_INVALID"),
        "not a JWT": ("definitely.not.a-jwt", "AUTH_INVALID"),
    }


async def test_connecting_without_a_credential(gateways: list[str]) -> None:
    error = await refused(gateways[0], auth={})
    assert error == {"message": "AUTH_REQUIRED", "data": {
        "code": "AUTH_REQUIRED", "message": "a token or an API key is required"}}
    for auth in ({"apiKey": ""}, {"token": ""}, {"role": "extension"}):
        assert (await refused(gateways[1], auth=auth))["message"] == "AUTH_REQUIRED"


@pytest.mark.parametrize("attack", sorted(forged_tokens()))
async def test_forged_and_stale_tokens_are_refused(gateways: list[str], attack: str) -> None:
    token, code = forged_tokens()[attack]
    for how in ({"auth": {"token": token}}, {"headers": {"Authorization": f"Bearer {token}"}}):
        error = await refused(gateways[0], **how)
        assert error["message"] == code and error["data"]["code"] == code, attack
        assert token not in json.dumps(error)
    status, _, body = await http("GET", f"{gateways[1]}/auth/api-keys",
                                 headers={"Authorization": f"Bearer {token}"})
    assert status == 401 and body["error"]["code"] == code


async def test_guessed_api_keys_are_refused(gateways: list[str]) -> None:
    made = await make_key(gateways[0], ["client"])
    near_misses = [made["key"][:-1] + ("A" if made["key"][-1] != "A" else "B"),
                   f"smk_{made['id']}_", f"smk_{made['id']}", "smk_" + "0" * 16 + "_x", KEY[:-1]]
    for guess in near_misses:
        error = await refused(gateways[1], auth={"apiKey": guess})
        assert error["data"] == {"code": "AUTH_INVALID", "message": "API key is invalid"}


async def test_logout_revokes_the_token_and_drops_its_connections(gateways: list[str],
                                                                  peers: list[Peer]) -> None:
    token = await login(gateways[0], "alice")
    live = await connect(gateways[1], auth={"token": token})
    other = await connect(gateways[1], auth={"token": await login(gateways[0], "alice")})
    peers.extend([live, other])
    status, _, body = await http("POST", f"{gateways[0]}/auth/logout",
                                 headers={"Authorization": f"Bearer {token}"})
    assert (status, body) == (200, {"revoked": True})
    error = await live.next("error")
    assert error["code"] == "AUTH_INVALID" and "revoked" in error["message"]
    await dropped(live)
    assert other.sio.connected and (await other.call("ping"))["serverTime"] > 0
    for url in gateways:
        assert (await refused(url, auth={"token": token}))["data"] == {
            "code": "AUTH_INVALID", "message": "token has been revoked"}
    status, _, body = await http("GET", f"{gateways[0]}/auth/api-keys",
                                 headers={"Authorization": f"Bearer {token}"})
    assert status == 401


async def test_revoking_an_api_key_drops_its_live_connections(gateways: list[str],
                                                              peers: list[Peer]) -> None:
    made = await make_key(gateways[0], ["client", "extension"])
    client = await connect(gateways[1], auth={"apiKey": made["key"]})
    ext = await extension(gateways[0], peers, {"apiKey": made["key"], "role": "extension",
                                               "extensionId": f"doomed-{made['id']}"})
    bystander = await connect(gateways[1], auth={"apiKey": KEY})
    peers.extend([client, bystander])
    status, _, body = await http("DELETE", f"{gateways[0]}/auth/api-keys/{made['id']}",
                                 headers={"X-API-Key": ADMIN_KEY})
    assert (status, body) == (200, {"id": made["id"], "revoked": True})
    for peer in (client, ext):
        assert (await peer.next("error"))["code"] == "AUTH_INVALID"
        await dropped(peer)
    assert bystander.sio.connected and (await bystander.call("ping"))["serverTime"] > 0
    error = await refused(gateways[1], auth={"apiKey": made["key"]})
    assert error["data"]["code"] == "AUTH_INVALID"
    status, _, body = await http("DELETE", f"{gateways[1]}/auth/api-keys/{made['id']}",
                                 headers={"X-API-Key": ADMIN_KEY})
    assert status == 404 and body["error"]["code"] == "VALIDATION_FAILED"


async def test_api_keys_are_shown_once_listed_without_secrets_and_admin_only(
        gateways: list[str], peers: list[Peer]) -> None:
    made = await make_key(gateways[0], ["client"])
    assert set(made) == {"id", "key", "name", "scopes", "tenant", "createdAt", "createdBy"}
    assert made["key"].startswith("smk_") and made["tenant"] == "default"
    client = await connect(gateways[1], auth={"apiKey": made["key"]})
    peers.append(client)
    assert (await client.call("status"))["status"] == "healthy"
    error = await refused(gateways[1], auth={"apiKey": made["key"], "role": "extension"})
    assert error["data"]["code"] == "FORBIDDEN"  # its scopes are client only
    status, _, listing = await http("GET", f"{gateways[1]}/auth/api-keys",
                                    headers={"X-API-Key": ADMIN_KEY})
    assert status == 200
    mine = [k for k in listing["keys"] if k["id"] == made["id"]]
    assert mine == [{k: v for k, v in made.items() if k != "key"}]
    text = json.dumps(listing)
    assert made["key"] not in text and "hash" not in text
    refusals = [
        ({}, 401, "AUTH_REQUIRED"), ({"X-API-Key": KEY}, 403, "FORBIDDEN"),
        ({"X-API-Key": made["key"]}, 403, "FORBIDDEN"), ({"X-API-Key": "nope"}, 401,
                                                         "AUTH_INVALID"),
        ({"Authorization": f"Bearer {await login(gateways[0], 'alice')}"}, 403, "FORBIDDEN"),
    ]
    for headers, status_wanted, code in refusals:
        for method, path in (("GET", ""), ("POST", ""), ("DELETE", f"/{made['id']}")):
            status, _, body = await http(method, f"{gateways[0]}/auth/api-keys{path}",
                                         headers=headers, json={"name": "x",
                                                                "scopes": ["admin"]})
            assert (status, body["error"]["code"]) == (status_wanted, code), (headers, method)
    for bad in ({"name": "x"}, {"name": "x", "scopes": ["root"]}, {"name": "", "scopes": [
            "client"]}, {"name": "x", "scopes": ["client"], "tenant": "a:b"}, [1, 2], None):
        status, _, body = await http("POST", f"{gateways[0]}/auth/api-keys", json=bad,
                                     headers={"X-API-Key": ADMIN_KEY})
        assert status == 400 and body["error"]["code"] == "VALIDATION_FAILED", bad


async def test_a_tenant_admin_manages_only_its_own_tenant(gateways: list[str]) -> None:
    tenant = f"t{uuid.uuid4().hex[:8]}"
    theirs = await make_key(gateways[0], ["admin"], tenant=tenant)
    ours = await make_key(gateways[0], ["client"])
    as_them = {"X-API-Key": theirs["key"]}
    status, _, body = await http("POST", f"{gateways[1]}/auth/api-keys", headers=as_them,
                                 json={"name": "escape", "scopes": ["admin"],
                                       "tenant": "default"})
    assert status == 403 and body["error"]["code"] == "FORBIDDEN"
    own = await make_key(gateways[1], ["client"], admin=theirs["key"])
    assert own["tenant"] == tenant
    status, _, listing = await http("GET", f"{gateways[1]}/auth/api-keys", headers=as_them)
    assert {k["tenant"] for k in listing["keys"]} == {tenant}
    assert {k["id"] for k in listing["keys"]} == {theirs["id"], own["id"]}
    status, _, body = await http("DELETE", f"{gateways[1]}/auth/api-keys/{ours['id']}",
                                 headers=as_them)
    assert status == 404  # another tenant's key does not exist for them


async def tenant_client(gateways: list[str], peers: list[Peer], url: str) -> tuple[Peer, str]:
    """A client (and its tenant) in a fresh tenant, through an operator-made key."""
    tenant = f"t{uuid.uuid4().hex[:8]}"
    made = await make_key(gateways[0], ["client", "extension"], tenant=tenant)
    peer = await connect(url, auth={"apiKey": made["key"]})
    peers.append(peer)
    return peer, made["key"]


async def test_another_tenants_extension_cannot_be_targeted(gateways: list[str],
                                                            peers: list[Peer]) -> None:
    ext_id = f"victim-{uuid.uuid4().hex[:6]}"
    victim = await extension(gateways[0], peers, {"apiKey": KEY, "role": "extension",
                                                  "extensionId": ext_id})
    attacker, attacker_key = await tenant_client(gateways, peers, gateways[1])
    ack = await attacker.call("command", {"type": "NAVIGATE", "target": {"extensionId": ext_id},
                                          "url": "https://evil.example", "timeout": 1500})
    assert ack["accepted"] is True
    result = await attacker.next("result")
    assert result["id"] == ack["id"] and result["error"]["code"] == "NO_EXTENSION"
    assert victim.pending("command") == 0  # never delivered, not even late
    assert ext_id not in json.dumps(await attacker.call("status"))
    # An extension of the attacker's tenant with the same id takes nothing of the victim's.
    decoy = await extension(gateways[1], peers, {"apiKey": attacker_key, "role": "extension",
                                                 "extensionId": ext_id})
    owner = await connect(gateways[1], auth={"apiKey": KEY})
    peers.append(owner)
    ack = await owner.call("command", {"type": "CLICK", "target": {"extensionId": ext_id}})
    assert (await victim.next("command"))["id"] == ack["id"]
    assert (await owner.next("result"))["metadata"]["extension"] == ext_id
    assert decoy.pending("command") == 0


async def test_an_extension_cannot_answer_another_tenants_command(gateways: list[str],
                                                                  peers: list[Peer]) -> None:
    ext_id = f"slow-{uuid.uuid4().hex[:6]}"
    real = await extension(gateways[0], peers, {"apiKey": KEY, "role": "extension",
                                                "extensionId": ext_id}, answer=False)
    owner = await connect(gateways[1], auth={"apiKey": KEY})
    peers.append(owner)
    _, attacker_key = await tenant_client(gateways, peers, gateways[1])
    forger = await extension(gateways[1], peers, {"apiKey": attacker_key, "role": "extension",
                                                  "extensionId": ext_id})
    ack = await owner.call("command", {"type": "READ", "target": {"extensionId": ext_id}})
    command = await real.next("command")
    await forger.emit("progress", {"id": ack["id"], "percent": 99, "message": "forged"})
    await forger.emit("result", {"id": ack["id"], "success": True, "data": {"forged": True}})
    assert (await forger.call("ping"))["serverTime"] > 0  # the forgeries were handled
    await real.emit("result", {"id": command["id"], "success": True, "data": {"real": True}})
    result = await owner.next("result")
    assert result["data"] == {"real": True}
    assert owner.pending("progress") == 0


async def test_another_tenants_session_and_share_token_do_not_exist(gateways: list[str],
                                                                     peers: list[Peer]) -> None:
    owner = await connect(gateways[0], auth={"apiKey": KEY})
    peers.append(owner)
    created = await owner.call("session:create", {"name": "private", "persistent": True})
    session_id = created["sessionId"]
    share = (await owner.call("session:share", {"sessionId": session_id,
                                                "permissions": ["read", "write"]}))["shareToken"]
    attacker, _ = await tenant_client(gateways, peers, gateways[1])
    attempts = [
        ("session:join", {"sessionId": session_id}),
        ("session:join", {"sessionId": session_id, "shareToken": share}),
        ("session:share", {"sessionId": session_id, "permissions": ["read"]}),
        ("session:leave", {"sessionId": session_id}),
        ("command", {"type": "CLICK", "sessionId": session_id}),
    ]
    for event, data in attempts:
        answer = await attacker.call(event, data)
        assert answer["error"]["code"] == "SESSION_NOT_FOUND", (event, answer)
        assert "private" not in json.dumps(answer)
    ack = await owner.call("command", {"type": "NOTHING-RUNS-THIS", "sessionId": session_id,
                                       "timeout": 300})
    assert (await owner.next("result"))["id"] == ack["id"]
    assert attacker.pending("result") == 0 and attacker.pending("progress") == 0
    error = await refused(gateways[1], auth={"token": share})  # nor is it a login token
    assert error["data"]["code"] == "AUTH_INVALID"


async def test_channels_are_per_tenant_and_system_channels_are_read_only(
        gateways: list[str], peers: list[Peer]) -> None:
    channel = f"news-{uuid.uuid4().hex[:6]}"
    reader = await connect(gateways[0], auth={"apiKey": KEY})
    peers.append(reader)
    attacker, _ = await tenant_client(gateways, peers, gateways[1])
    await attacker.call("subscribe", {"channels": [channel, "errors", "downloads"]})
    await reader.call("subscribe", {"channels": [channel]})
    for system in ("downloads", "errors"):
        for peer in (reader, attacker):
            answer = await peer.call("publish", {"channel": system, "message": {"fake": 1}})
            assert answer["error"]["code"] == "FORBIDDEN"
    await attacker.call("publish", {"channel": channel, "message": "from the other tenant"})
    first = await reader.call("publish", {"channel": channel, "message": "ours"})
    seen = await reader.next(f"channel:{channel}")
    assert seen["message"] == "ours" and seen["offset"] == first["offset"]
    failed = await reader.call("command", {"type": "NOBODY-RUNS-THIS", "timeout": 200})
    assert (await reader.next("result"))["id"] == failed["id"]
    assert (await attacker.next(f"channel:{channel}"))["message"] == "from the other tenant"
    assert attacker.pending(f"channel:{channel}") == 0
    assert attacker.pending("channel:errors") == 0  # our failure is not theirs to see
    replay = await attacker.call("subscribe", {"channels": [channel], "since": "0-0"})
    assert replay == {"channels": [channel]}
    assert (await attacker.next(f"channel:{channel}"))["message"] == "from the other tenant"


CRAFTED_FRAMES = {  # Socket.IO frames no client library sends, each with an ack id
    '421["disconnect"]': "UNKNOWN_EVENT",  # would otherwise run our disconnect handler
    '422["connect",{"apiKey":"x"}]': "UNKNOWN_EVENT",
    '423["*",1]': "UNKNOWN_EVENT",  # would otherwise reach the catch-all with shifted args
    '424["$payload-too-large","forged"]': "UNKNOWN_EVENT",
    '425["ping",NaN]': "VALIDATION_FAILED",  # what JSON.stringify never writes, Python's does
    '426["command",{"type":"X","timeout":Infinity}]': "VALIDATION_FAILED",
    '427[1,2]': "VALIDATION_FAILED",
    '428{"not":"a list"}': "VALIDATION_FAILED",
    '429': "VALIDATION_FAILED",
}


async def test_crafted_event_frames_are_refused_and_the_sender_stays(gateways: list[str]
                                                                     ) -> None:
    async with aiohttp.ClientSession() as session, session.ws_connect(
            f"{gateways[0]}/socket.io/?EIO=4&transport=websocket") as ws:
        assert (await ws.receive_str()).startswith("0")
        await ws.send_str("40" + json.dumps({"apiKey": KEY}))
        assert (await ws.receive_str()).startswith("40")
        for frame, code in CRAFTED_FRAMES.items():
            await ws.send_str(frame)
            ack_prefix = "43" + frame[2]
            while True:  # skip the `error` event; the ack carries the same body
                answer = await asyncio.wait_for(ws.receive_str(), 10)
                if answer.startswith(ack_prefix):
                    break
            assert json.loads(answer[3:])[0]["error"]["code"] == code, (frame, answer)
        await ws.send_str('4210["ping",{"timestamp":7}]')
        while not (answer := await asyncio.wait_for(ws.receive_str(), 10)).startswith("4310"):
            pass
        assert json.loads(answer[4:])[0]["timestamp"] == 7  # still connected, still served


async def test_per_connection_caps_on_sessions_subscriptions_and_timeout(
        gateways: list[str], peers: list[Peer]) -> None:
    peer = await connect(gateways[0], auth={"apiKey": KEY})
    peers.append(peer)
    for n in range(3):  # websocket.maxSessions
        assert "sessionId" in await peer.call("session:create", {"name": f"s{n}"})
    answer = await peer.call("session:create", {"name": "one too many"})
    assert answer["error"]["code"] == "VALIDATION_FAILED"
    assert "at most 3 sessions" in answer["error"]["message"]
    assert await peer.call("subscribe", {"channels": [f"c{n}" for n in range(5)]})
    answer = await peer.call("subscribe", {"channels": ["c5"]})  # websocket.maxSubscriptions
    assert answer["error"]["code"] == "VALIDATION_FAILED"
    ext_id = f"cap-{uuid.uuid4().hex[:6]}"
    ext = await extension(gateways[1], peers, {"apiKey": KEY, "role": "extension",
                                               "extensionId": ext_id}, answer=False)
    before = int(time.time() * 1000)
    await peer.call("command", {"type": "WAIT", "timeout": 10**12,
                                "target": {"extensionId": ext_id}})
    command = await ext.next("command")
    assert command["timeout"] == 5000  # commands.maxTimeout
    assert before < command["deadline"] <= int(time.time() * 1000) + 5000
    assert peer.sio.connected
