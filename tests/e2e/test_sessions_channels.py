"""Sessions and channels with owner, member, extension and subscribers on different gateways.

Each test runs on the all-in-one server (one process, in-process bus) and on three gateways, two
routers and auth as separate processes over one Redis.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import jwt
import pytest

from tests.conftest import Hubs, RedisServer
from tests.e2e.conftest import KEY, SECRET, Peer, connect, extension
from tests.e2e.test_commands import login


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def gateways(request: pytest.FixtureRequest, module_hubs: Hubs,
             hub_config: dict[str, Any]) -> list[str]:
    if request.param == "all-in-one":
        return [module_hubs.start("semantest-server", config=hub_config).url] * 3
    redis: RedisServer = request.getfixturevalue("redis_server")
    env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"sc{uuid.uuid4().hex[:8]}:"}
    module_hubs.start("semantest-auth", env=env, config=hub_config)
    for _ in range(2):
        module_hubs.start("semantest-router", env=env, config=hub_config)
    return [module_hubs.start("semantest-gateway", env=env, config=hub_config).url
            for _ in range(3)]


async def client(url: str, peers: list[Peer], **auth: Any) -> Peer:
    peer = await connect(url, auth=auth or {"apiKey": KEY})
    peers.append(peer)
    return peer


async def test_member_on_another_gateway_sees_session_results(gateways: list[str],
                                                              peers: list[Peer]) -> None:
    owner = await client(gateways[0], peers)
    member = await client(gateways[1], peers, token=await login(gateways[1], "alice"))
    ext_id = f"sess-{uuid.uuid4().hex[:6]}"
    ext = await extension(gateways[2], peers, {"apiKey": KEY, "role": "extension",
                                               "extensionId": ext_id})
    created = await owner.call("session:create", {"name": "checkout-flow"})
    assert created == await owner.next("session:created")
    assert created["permissions"] == ["read", "write"] and created["persistent"] is False
    session_id = created["sessionId"]

    shared = await owner.call("session:share", {"sessionId": session_id,
                                                "permissions": ["read"]})
    assert shared["permissions"] == ["read"]
    joined = await member.call("session:join", {"sessionId": session_id,
                                                "shareToken": shared["shareToken"]})
    assert joined == {"sessionId": session_id, "name": "checkout-flow", "permissions": ["read"]}

    ack = await owner.call("command", {"type": "NAVIGATE", "sessionId": session_id})
    assert ack["accepted"] is True
    seen_progress = await member.next("progress")
    seen_result = await member.next("result")
    assert seen_progress["id"] == ack["id"] and seen_progress["sessionId"] == session_id
    assert seen_result["id"] == ack["id"] and seen_result["success"] is True
    assert (await owner.next("result"))["id"] == ack["id"]
    assert (await ext.next("command"))["sessionId"] == session_id

    refused = await member.call("command", {"type": "CLICK", "sessionId": session_id})
    assert refused["error"]["code"] == "FORBIDDEN"
    assert (await member.next("error"))["code"] == "FORBIDDEN"


async def test_session_commands_stick_to_one_extension(gateways: list[str],
                                                       peers: list[Peer]) -> None:
    kind = f"STICKY{uuid.uuid4().hex[:6]}"
    for n in range(2):
        await extension(gateways[n + 1], peers, {"apiKey": KEY, "role": "extension",
                                                 "extensionId": f"{kind}-{n}",
                                                 "capabilities": [kind]})
    owner = await client(gateways[0], peers)
    session_id = (await owner.call("session:create", {"name": "sticky"}))["sessionId"]
    used = set()
    for _ in range(6):
        await owner.call("command", {"type": kind, "sessionId": session_id})
        used.add((await owner.next("result"))["metadata"]["extension"])
    assert len(used) == 1


async def test_share_tokens_that_must_not_work(gateways: list[str], peers: list[Peer]) -> None:
    owner = await client(gateways[0], peers)
    stranger = await client(gateways[1], peers, token=await login(gateways[1], "alice"))
    session_id = (await owner.call("session:create", {"name": "private"}))["sessionId"]
    other_id = (await owner.call("session:create", {"name": "other"}))["sessionId"]
    expired = (await owner.call("session:share", {"sessionId": session_id,
                                                  "permissions": ["read"], "expiresIn": 1}))
    await asyncio.sleep(2.1)
    forged = jwt.encode({"aud": "semantest:session-share", "sid": session_id,
                         "tenant": "default", "perms": ["read", "write"]},
                        "not-the-hub-secret-0123456789-0123456789", algorithm="HS256")
    for_other = (await owner.call("session:share", {"sessionId": other_id,
                                                    "permissions": ["read"]}))["shareToken"]
    cases = [
        ({"sessionId": session_id}, "FORBIDDEN", "a share token is needed"),
        ({"sessionId": session_id, "shareToken": expired["shareToken"]}, "FORBIDDEN",
         "expired"),
        ({"sessionId": session_id, "shareToken": forged}, "FORBIDDEN", "invalid"),
        ({"sessionId": session_id, "shareToken": for_other}, "FORBIDDEN", "another session"),
        ({"sessionId": "no-such-session", "shareToken": for_other}, "SESSION_NOT_FOUND", ""),
        ({"session": "x"}, "VALIDATION_FAILED", "sessionId"),
    ]
    for request, code, words in cases:
        answer = await stranger.call("session:join", request)
        assert answer["error"]["code"] == code, (request, answer)
        assert words in answer["error"]["message"]
        assert (await stranger.next("error"))["event"] == "session:join"


async def test_login_token_cannot_pose_as_a_share_token(gateways: list[str],
                                                         peers: list[Peer]) -> None:
    owner = await client(gateways[0], peers)
    session_id = (await owner.call("session:create", {"name": "x"}))["sessionId"]
    token = await login(gateways[0], "alice")
    answer = await owner.call("session:join", {"sessionId": session_id, "shareToken": token})
    assert answer["error"]["code"] == "FORBIDDEN"
    share = (await owner.call("session:share", {"sessionId": session_id,
                                                "permissions": ["read"]}))["shareToken"]
    assert jwt.decode(share, SECRET, algorithms=["HS256"],
                      audience="semantest:session-share")["sid"] == session_id
    with pytest.raises(Exception):  # noqa: B017 - any refusal is fine, the point is no entry
        await connect(gateways[0], auth={"token": share})


async def test_session_refusals(gateways: list[str], peers: list[Peer]) -> None:
    owner = await client(gateways[0], peers)
    other = await client(gateways[1], peers, token=await login(gateways[1], "alice"))
    session_id = (await owner.call("session:create", {"name": "s"}))["sessionId"]
    cases = [
        (other, "command", {"type": "X", "sessionId": "missing"}, "SESSION_NOT_FOUND"),
        (other, "command", {"type": "X", "sessionId": session_id}, "FORBIDDEN"),
        (other, "session:share", {"sessionId": session_id, "permissions": ["read"]},
         "FORBIDDEN"),
        (owner, "session:share", {"sessionId": session_id, "permissions": ["admin"]},
         "VALIDATION_FAILED"),
        (owner, "session:share", {"sessionId": session_id, "permissions": []},
         "VALIDATION_FAILED"),
        (other, "session:leave", {"sessionId": session_id}, "FORBIDDEN"),
        (owner, "session:create", {"name": ""}, "VALIDATION_FAILED"),
        (owner, "session:create", "name", "VALIDATION_FAILED"),
    ]
    for peer, event, data, code in cases:
        answer = await peer.call(event, data)
        assert answer["error"]["code"] == code, (event, data, answer)


async def test_non_persistent_session_ends_with_its_last_member(gateways: list[str],
                                                                peers: list[Peer]) -> None:
    owner = await client(gateways[0], peers)
    other = await client(gateways[1], peers, token=await login(gateways[1], "alice"))
    session_id = (await owner.call("session:create", {"name": "short"}))["sessionId"]
    token = (await owner.call("session:share", {"sessionId": session_id,
                                                "permissions": ["read"]}))["shareToken"]
    left = await owner.call("session:leave", {"sessionId": session_id})
    assert left == {"sessionId": session_id} == await owner.next("session:left")
    answer = await other.call("session:join", {"sessionId": session_id, "shareToken": token})
    assert answer["error"]["code"] == "SESSION_NOT_FOUND"


async def test_publish_reaches_every_gateway_once(gateways: list[str], peers: list[Peer]) -> None:
    channel = f"builds.{uuid.uuid4().hex[:6]}"
    publisher = await client(gateways[0], peers)
    subscribers = [await client(url, peers) for url in gateways[1:]]
    for subscriber in subscribers:
        assert await subscriber.call("subscribe", {"channels": [channel]}) == {
            "channels": [channel]}
        assert await subscriber.next("subscribed") == {"channels": [channel]}
    ack = await publisher.call("publish", {"channel": channel, "message": {"n": 1}})
    for subscriber in subscribers:
        event = await subscriber.next(f"channel:{channel}")
        assert event["message"] == {"n": 1} and event["channel"] == channel
        assert event["offset"] == ack["offset"] and event["timestamp"] > 0
        assert event["publisher"] == f"key:{event['publisher'][4:]}"
    await asyncio.sleep(0.3)
    assert [s.pending(f"channel:{channel}") for s in subscribers] == [0, 0]
    assert publisher.pending(f"channel:{channel}") == 0  # not subscribed, gets nothing

    await subscribers[0].call("unsubscribe", {"channels": [channel]})
    await publisher.call("publish", {"channel": channel, "message": {"n": 2}})
    assert (await subscribers[1].next(f"channel:{channel}"))["message"] == {"n": 2}
    await asyncio.sleep(0.3)
    assert subscribers[0].pending(f"channel:{channel}") == 0


async def test_since_replays_exactly_the_missed_messages(gateways: list[str],
                                                         peers: list[Peer]) -> None:
    channel = f"log.{uuid.uuid4().hex[:6]}"
    publisher = await client(gateways[0], peers)
    reader = await client(gateways[1], peers)
    await reader.call("subscribe", {"channels": [channel]})
    first = await publisher.call("publish", {"channel": channel, "message": 1})
    assert (await reader.next(f"channel:{channel}"))["offset"] == first["offset"]
    await reader.sio.disconnect()
    for n in (2, 3, 4):
        await publisher.call("publish", {"channel": channel, "message": n})
    back = await client(gateways[2], peers)
    await back.call("subscribe", {"channels": [channel], "since": first["offset"]})
    replayed = [(await back.next(f"channel:{channel}"))["message"] for _ in range(3)]
    assert replayed == [2, 3, 4]
    await publisher.call("publish", {"channel": channel, "message": 5})
    assert (await back.next(f"channel:{channel}"))["message"] == 5
    await asyncio.sleep(0.3)
    assert back.pending(f"channel:{channel}") == 0


async def test_system_channels(gateways: list[str], peers: list[Peer]) -> None:
    watcher = await client(gateways[1], peers)
    await watcher.call("subscribe", {"channels": ["downloads", "errors"]})
    for channel in ("downloads", "errors"):
        answer = await watcher.call("publish", {"channel": channel, "message": "fake"})
        assert answer["error"]["code"] == "FORBIDDEN"
    kind = f"DL{uuid.uuid4().hex[:6]}"
    await extension(gateways[2], peers, {"apiKey": KEY, "role": "extension",
                                         "extensionId": kind, "capabilities": ["DOWNLOAD_IMAGE"]})
    sender = await client(gateways[0], peers)
    ok = await sender.call("command", {"type": "DOWNLOAD_IMAGE", "target": {"extensionId": kind}})
    download = await watcher.next("channel:downloads")
    assert download["message"]["id"] == ok["id"] and download["publisher"] == "semantest"
    failed = await sender.call("command", {"type": f"NONE{kind}", "timeout": 200})
    error = await watcher.next("channel:errors")
    assert error["message"]["id"] == failed["id"]
    assert error["message"]["error"]["code"] == "NO_EXTENSION"


async def test_channel_refusals_and_the_subscription_cap(gateways: list[str],
                                                         peers: list[Peer]) -> None:
    peer = await client(gateways[0], peers)
    bystander = await client(gateways[1], peers)
    cases = [
        ("subscribe", {"channels": "news"}), ("subscribe", {"channels": []}),
        ("subscribe", {"channels": ["bad name!"]}), ("subscribe", {"channels": ["x" * 129]}),
        ("subscribe", {"channels": ["ok"], "since": "yesterday"}),
        ("unsubscribe", {"channels": 5}), ("publish", {"channel": "a/b", "message": 1}),
        ("publish", {"message": 1}), ("subscribe", None),
    ]
    for event, data in cases:
        answer = await peer.call(event, data)
        assert answer["error"]["code"] == "VALIDATION_FAILED", (event, data, answer)
    many = [f"c{n}" for n in range(10_000)]
    answer = await peer.call("subscribe", {"channels": many})
    assert answer["error"]["code"] == "VALIDATION_FAILED"
    assert "subscriptions per connection" in answer["error"]["message"]
    assert peer.sio.connected
    assert (await bystander.call("ping"))["serverTime"] > 0
