"""The transport under bad input and anonymous state (gateway/engine.py, gateway/codec.py).

Raw websocket frames and HTTP requests, made with aiohttp as an attacker would make them,
against real hub processes: the all-in-one server, and a gateway of the separate services over
Redis. A protocol violation closes the offender's connection with one warning line and no
traceback; a bad *event* is answered and the sender stays; a bystander on the same gateway
keeps working through all of it. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from itertools import count
from typing import Any

import aiohttp
import pytest
import socketio

from tests.conftest import JS, HubProcess, Hubs, RedisServer, run_node
from tests.e2e.conftest import KEY, Peer, connect, extension, refused
from tests.security.conftest import merged

WS = "/socket.io/?EIO=4&transport=websocket"
POLLING = "/socket.io/?EIO=4&transport=polling"
CONNECT = "40" + json.dumps({"apiKey": KEY})
CONNECT_TIMEOUT_MS = 1500
PER_IP = 3
_ips = count(1)


def new_ip() -> dict[str, str]:
    """A client address of its own (the hubs trust one proxy hop), so per-IP caps of one test
    never touch another."""
    n = next(_ips)
    return {"X-Forwarded-For": f"198.51.{n // 250}.{n % 250 + 1}"}


@dataclass
class Gateway:
    url: str
    process: HubProcess

    def warnings(self) -> list[str]:
        return [line for line in self.process.output().splitlines()
                if "WARNING semantest.gateway: closing connection" in line]


@pytest.fixture(scope="module", params=["all-in-one", "services"])
def gateway(request: pytest.FixtureRequest, module_hubs: Hubs,
            hub_config: dict[str, Any]) -> Iterator[Gateway]:
    config = merged(hub_config, server={"connectTimeout": CONNECT_TIMEOUT_MS,
                                        "maxHandshakesPerIp": PER_IP},
                    rateLimiting={"trustProxy": 1})
    if request.param == "all-in-one":
        hub = module_hubs.start("semantest-server", config=config)
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        env = {"REDIS_URL": redis.url, "REDIS_KEY_PREFIX": f"tr{uuid.uuid4().hex[:8]}:"}
        module_hubs.start("semantest-auth", env=env, config=config)
        module_hubs.start("semantest-router", env=env, config=config)
        hub = module_hubs.start("semantest-gateway", env=env, config=config)
    yield Gateway(hub.url, hub)
    assert "Traceback" not in hub.output(), hub.output()[-3000:]


@pytest.fixture
async def bystander(gateway: Gateway) -> AsyncIterator[Peer]:
    """A client on the same gateway that must not notice anything."""
    peer = await connect(gateway.url, auth={"apiKey": KEY})
    yield peer
    assert peer.sio.connected, "the bystander was disconnected"
    assert (await peer.call("ping", {"timestamp": 1}))["timestamp"] == 1
    assert peer.pending("error") == 0
    await peer.sio.disconnect()


async def until_closed(ws: aiohttp.ClientWebSocketResponse, timeout: float = 10) -> list[Any]:
    """Everything the server sends until it closes the websocket; fails after `timeout`."""
    seen: list[Any] = []

    async def read() -> None:
        while True:
            message = await ws.receive()
            if message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSING,
                                aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                return
            seen.append(message.data)

    await asyncio.wait_for(read(), timeout)
    return seen


async def until(ws: aiohttp.ClientWebSocketResponse, prefix: str, timeout: float = 10) -> str:
    """The next text frame starting with `prefix` (others are skipped)."""
    async def read() -> str:
        while True:
            frame = await ws.receive_str()
            if frame.startswith(prefix):
                return frame

    return await asyncio.wait_for(read(), timeout)


BIND = '451-["ping",{"_placeholder":true,"num":0}]'  # a binary event announcing one attachment
VIOLATIONS: dict[str, tuple[bool, list[str | bytes]]] = {  # (CONNECT first?, frames)
    "random binary": (True, [b"\x00\xff\xfe\x07 not engine.io"]),
    "text that is no Engine.IO packet": (True, ["hello"]),
    "an empty frame": (True, [""]),
    "an unknown Engine.IO type": (True, ["9hello"]),
    "bad base64": (True, ["ba"]),
    "empty base64": (True, ["b!!!"]),
    "an empty message": (True, ["4"]),
    "an Engine.IO message that is no Socket.IO packet": (True, ["4hello"]),
    "an unknown Socket.IO type": (True, ['49["ping"]']),
    "CONNECT_ERROR from a client": (True, ['44{"message":"x"}']),
    "a 100-digit ack id": (True, ["42" + "1" * 101 + '["ping"]']),
    "attachments that never arrive": (True, [BIND, '42["ping"]']),
    "a binary event without attachments": (True, ['45["ping"]']),
    "an event before CONNECT": (False, ['42["ping"]']),
    "an ack before CONNECT": (False, ["431[{}]"]),
    "a binary event before CONNECT": (False, [BIND, b"x"]),
}


@pytest.mark.parametrize("case", sorted(VIOLATIONS))
async def test_protocol_violations_close_the_connection(gateway: Gateway, bystander: Peer,
                                                       case: str) -> None:
    connect_first, frames = VIOLATIONS[case]
    before = len(gateway.warnings())
    async with aiohttp.ClientSession(headers=new_ip()) as http, http.ws_connect(
            gateway.url + WS) as ws:
        assert (await until(ws, "0")).startswith('0{"sid"')
        if connect_first:
            await ws.send_str(CONNECT)
            assert (await until(ws, "40")).startswith('40{"sid"')
        for frame in frames:
            await (ws.send_bytes(frame) if isinstance(frame, bytes) else ws.send_str(frame))
        seen = await until_closed(ws)
    assert "1" in seen or not seen  # the Engine.IO CLOSE packet, then the websocket close
    assert (await bystander.call("ping", {"timestamp": 2}))["timestamp"] == 2
    for _ in range(50):  # the hub logs after closing; bounded wait for the line
        if len(gateway.warnings()) > before:
            break
        await asyncio.sleep(0.1)
    assert len(gateway.warnings()) == before + 1, gateway.warnings()[before:]


async def test_an_event_after_a_refused_connect_closes_the_connection(
        gateway: Gateway, bystander: Peer) -> None:
    async with aiohttp.ClientSession(headers=new_ip()) as http, http.ws_connect(
            gateway.url + WS) as ws:
        await until(ws, "0")
        await ws.send_str("40" + json.dumps({"apiKey": "wrong"}))
        refusal = json.loads((await until(ws, "44"))[2:])
        assert refusal["message"] == "AUTH_INVALID"
        await ws.send_str('421["ping"]')
        await until_closed(ws)


async def polling_socket(http: aiohttp.ClientSession, url: str, connect: bool = True) -> str:
    """An Engine.IO polling session (and its Socket.IO connection): its poll URL."""
    async with http.get(url + POLLING) as response:
        assert response.status == 200
        sid = json.loads((await response.text())[1:])["sid"]
    poll = f"{url}{POLLING}&sid={sid}"
    if connect:
        async with http.post(poll, data=CONNECT) as response:
            assert response.status == 200
        async with http.get(poll) as response:
            assert (await response.text()).startswith("40")
    return poll


async def gone(http: aiohttp.ClientSession, poll: str) -> None:
    """The polling session is closed: a poll gets its CLOSE packet or 400 (unknown session)."""
    async with http.get(poll, timeout=aiohttp.ClientTimeout(total=10)) as response:
        assert response.status == 400 or (await response.text()) == "1"


@pytest.mark.parametrize(("body", "connect_first"), [
    (b"\xff\xfe not UTF-8", True), (b"hello", True), (b"9hello", True), (b"0", True),
    (b"4hello", True), (b'42["ping"]', False)], ids=[
    "not UTF-8", "no Engine.IO packet", "unknown Engine.IO type", "OPEN from a client",
    "no Socket.IO packet", "an event before CONNECT"])
async def test_polling_violations_close_the_session(gateway: Gateway, bystander: Peer,
                                                   body: bytes, connect_first: bool) -> None:
    async with aiohttp.ClientSession(headers=new_ip()) as http:
        poll = await polling_socket(http, gateway.url, connect=connect_first)
        async with http.post(poll, data=body) as response:
            assert response.status in (200, 400)  # 400 when the body is refused as a whole
            if response.status == 400:
                assert (await response.json())["error"]["code"] == "VALIDATION_FAILED"
        await gone(http, poll)
    assert (await bystander.call("ping", {"timestamp": 3}))["timestamp"] == 3


async def test_an_oversized_polling_post_gets_413(gateway: Gateway, bystander: Peer) -> None:
    async with aiohttp.ClientSession(headers=new_ip()) as http:
        poll = await polling_socket(http, gateway.url)
        limit = 1_048_576 * 4  # websocket.maxPayload x TRANSPORT_LIMIT_FACTOR
        async with http.post(poll, data=b"4" + b"x" * limit,
                             timeout=aiohttp.ClientTimeout(total=30)) as response:
            assert response.status == 413
            error = (await response.json())["error"]
        assert error["code"] == "PAYLOAD_TOO_LARGE" and str(limit) in error["message"]
        await gone(http, poll)

        poll = await polling_socket(http, gateway.url)

        async def chunks() -> AsyncIterator[bytes]:
            yield b'42["ping"]'

        async with http.post(poll, data=chunks()) as response:  # chunked: no Content-Length
            assert response.status == 411
            assert (await response.json())["error"]["code"] == "VALIDATION_FAILED"
        await gone(http, poll)
    assert (await bystander.call("ping", {"timestamp": 4}))["timestamp"] == 4


async def test_binary_events_are_refused_and_the_sender_stays(gateway: Gateway,
                                                             bystander: Peer) -> None:
    async with aiohttp.ClientSession(headers=new_ip()) as http, http.ws_connect(
            gateway.url + WS) as ws:
        await until(ws, "0")
        await ws.send_str(CONNECT)
        await until(ws, "40")
        await ws.send_str('451-7["ping",{"_placeholder":true,"num":0}]')
        await ws.send_bytes(b"\x00\x01 some bytes")
        ack = json.loads((await until(ws, "437"))[3:])[0]
        assert ack["error"]["code"] == "VALIDATION_FAILED"
        assert "binary" in ack["error"]["message"] and ack["error"]["event"] == "ping"
        await ws.send_str('428["ping",{"timestamp":8}]')
        assert json.loads((await until(ws, "438"))[3:])[0]["timestamp"] == 8
    peer = await connect(gateway.url, auth={"apiKey": KEY})  # python-socketio sends bytes
    try:
        answer = await peer.call("ping", {"blob": b"\x00\x01"})
        assert answer["error"]["code"] == "VALIDATION_FAILED"
        assert (await peer.call("ping", {"timestamp": 9}))["timestamp"] == 9
    finally:
        await peer.sio.disconnect()


async def test_a_connection_without_connect_is_closed_after_connect_timeout(
        gateway: Gateway, bystander: Peer) -> None:
    async with aiohttp.ClientSession(headers=new_ip()) as http:
        async with http.ws_connect(gateway.url + WS) as ws:
            await until(ws, "0")
            await until_closed(ws, timeout=CONNECT_TIMEOUT_MS / 1000 + 10)
        poll = await polling_socket(http, gateway.url, connect=False)
        async with http.get(poll, timeout=aiohttp.ClientTimeout(total=30)) as response:
            assert (await response.text()) == "1"  # the pending poll gets the CLOSE packet
        async with http.get(poll) as response:
            assert response.status == 400
        # A connection that does CONNECT is not closed by the timer.
        async with http.ws_connect(gateway.url + WS) as ws:
            await until(ws, "0")
            await ws.send_str(CONNECT)
            await until(ws, "40")
            await asyncio.sleep(CONNECT_TIMEOUT_MS / 1000 + 0.5)
            await ws.send_str('421["ping",{"timestamp":5}]')
            assert json.loads((await until(ws, "431"))[3:])[0]["timestamp"] == 5


async def test_connections_waiting_for_connect_are_capped_per_ip(gateway: Gateway,
                                                                bystander: Peer) -> None:
    me, someone_else = new_ip(), new_ip()
    async with aiohttp.ClientSession(headers=me) as http:
        waiting = [await http.ws_connect(gateway.url + WS) for _ in range(PER_IP)]
        try:
            for ws in waiting:
                await until(ws, "0")
            async with http.get(gateway.url + POLLING) as response:
                assert response.status == 429
                error = (await response.json())["error"]
            assert error["code"] == "TOO_MANY_CONNECTIONS" and "maxHandshakesPerIp" in \
                error["message"]
            with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
                await http.ws_connect(gateway.url + WS)
            assert refused.value.status == 429
            async with http.get(gateway.url + POLLING, headers=someone_else) as response:
                assert response.status == 200  # another address is not affected
            # Once one of them has connected, it is no longer anonymous: room for another.
            await waiting[0].send_str(CONNECT)
            await until(waiting[0], "40")
            async with http.get(gateway.url + POLLING) as response:
                assert response.status == 200
            # And a closed one frees its place.
            await waiting[1].close()
            for _ in range(50):
                async with http.get(gateway.url + POLLING) as response:
                    if response.status == 200:
                        break
                await asyncio.sleep(0.1)
            assert response.status == 200
        finally:
            for ws in waiting:
                await ws.close()


async def test_nesting_is_limited_at_parse_time(gateway: Gateway, bystander: Peer,
                                               peers: list[Peer]) -> None:
    def nested(depth: int) -> Any:
        value: Any = "bottom"
        for level in range(depth):
            value = [value] if level % 2 else {"n": value}
        return value

    ext_id = f"deep-{uuid.uuid4().hex[:6]}"
    ext = await extension(gateway.url, peers, {"apiKey": KEY, "role": "extension",
                                               "extensionId": ext_id, "capabilities": ["DEEP"]},
                          answer=False)
    client = await connect(gateway.url, auth={"apiKey": KEY})
    peers.append(client)
    deepest = {"type": "DEEP", "data": nested(31)}  # 32 levels: websocket.maxDepth
    ack = await client.call("command", deepest)
    assert ack["accepted"] is True  # and the bus carries it to the extension
    command = await ext.next("command")
    assert command["data"] == deepest["data"]
    await ext.emit("result", {"id": command["id"], "success": True, "data": {"depth": 32}})
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["success"] is True
    for payload in ({"type": "DEEP", "data": nested(32)}, nested(200)):
        answer = await client.call("command", payload)
        assert answer["error"]["code"] == "VALIDATION_FAILED", answer
        assert "websocket.maxDepth (32 levels)" in answer["error"]["message"]
        assert (await client.next("error")) == answer["error"]
    async with aiohttp.ClientSession(headers=new_ip()) as http, http.ws_connect(
            gateway.url + WS) as ws:  # deeper than orjson itself parses (1024)
        await until(ws, "0")
        await ws.send_str(CONNECT)
        await until(ws, "40")
        await ws.send_str('421["command",' + "[" * 5000 + "]" * 5000 + "]")
        answer = json.loads((await until(ws, "431"))[3:])[0]
        assert answer["error"]["code"] == "VALIDATION_FAILED"
        assert "maxDepth" in answer["error"]["message"]
    assert client.sio.connected and ext.sio.connected


async def test_every_engineio_socket_counts_against_max_connections(
        hubs: Hubs, hub_config: dict[str, Any]) -> None:
    hub = hubs.start("semantest-server", env={"MAX_CONNECTIONS": "3"},
                     config=merged(hub_config, server={"maxHandshakesPerIp": 10}))
    client = await connect(hub.url, auth={"apiKey": KEY})
    async with aiohttp.ClientSession() as http:
        anonymous = [await http.ws_connect(hub.url + WS) for _ in range(2)]
        try:
            for ws in anonymous:
                await until(ws, "0")
            # 1 connected + 2 that never connect = 3: the next CONNECT gets the contract's
            # connect_error (tests/e2e/test_limits.py: the handshake itself is refused past
            # maxConnections plus the headroom)
            error = await refused(hub.url, auth={"apiKey": KEY})
            assert error["message"] == "TOO_MANY_CONNECTIONS"
            await anonymous.pop().close()
            for _ in range(50):  # the freed place is usable again
                try:
                    second = await connect(hub.url, auth={"apiKey": KEY})
                    break
                except socketio.exceptions.ConnectionError:
                    await asyncio.sleep(0.1)
            assert (await second.call("ping", {"timestamp": 6}))["timestamp"] == 6
            assert (await client.call("ping", {"timestamp": 7}))["timestamp"] == 7
            await second.sio.disconnect()
        finally:
            for ws in anonymous:
                await ws.close()
            await client.sio.disconnect()


def test_the_official_js_client_on_both_transports(gateway: Gateway) -> None:
    """socket.io-client long-polling only (20 round trips), then the default (polling, then
    the websocket upgrade): nothing it sends is taken for a violation."""
    done = run_node(JS / "polling_client.mjs", gateway.url, KEY)
    assert done.returncode == 0 and "polling ok" in done.stdout, done.stdout + done.stderr
    done = run_node(JS / "upgrade_client.mjs", gateway.url, KEY)
    assert done.returncode == 0 and "websocket 11" in done.stdout, done.stdout + done.stderr
