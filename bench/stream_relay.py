"""Peer 4 of the benchmark: a raw Redis-stream relay without Socket.IO (the infrastructure limit).

Same topology and hops as the hub in separate-services mode, with everything the hub adds on top
of transport and bus taken away: clients and extensions speak plain JSON over a raw aiohttp
WebSocket (no Engine.IO/Socket.IO framing, no auth, no validation beyond `type`), the gateway
batches XADDs once per loop tick, and the router forwards opaque payloads.

    client --ws--> gateway --XADD cmds--> router --XADD gw:<id>--> gateway --ws--> extension
    extension --ws--> gateway --XADD events--> router --XADD gw:<id>--> gateway --ws--> client

Frames (text, JSON): client -> {"t":"command","c":{...}}; gateway -> client {"t":"ack","id",
"accepted":true}, {"t":"result","r":{...}}, {"t":"progress","p":{...}}; gateway -> extension
{"t":"command","c":{...}}; extension -> {"t":"result","r":{...}} or {"t":"progress","p":{...}}.

usage: python stream_relay.py router|gateway --redis-port P [--port HTTP_PORT]
Prints READY on stdout once it serves. Based on ../shared/research/perf.md appendix A.1.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import time
import uuid

import orjson
import redis.asyncio as redis
import uvloop
from aiohttp import WSMsgType, web

MAXLEN = 100_000
GROUP = "router"


class Batcher:
    """Collects XADDs during one loop tick and sends them in one pipeline."""

    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn
        self.queue: list[tuple[str, dict]] = []
        self.wake = asyncio.Event()

    def add(self, stream: str, fields: dict) -> None:
        self.queue.append((stream, fields))
        self.wake.set()

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            batch, self.queue = self.queue, []
            pipe = self.conn.pipeline(transaction=False)
            for stream, fields in batch:
                pipe.xadd(stream, fields, maxlen=MAXLEN, approximate=True)
            await pipe.execute()


async def router(redis_port: int) -> None:
    reader = redis.Redis(port=redis_port)
    writer = redis.Redis(port=redis_port)
    for stream in ("cmds", "events"):
        try:
            await reader.xgroup_create(stream, GROUP, id="$", mkstream=True)
        except redis.ResponseError:
            pass
    extensions: dict[bytes, list] = {}  # extension id -> [gateway, in flight]
    origins: dict[bytes, tuple[bytes, bytes, bytes]] = {}  # command id -> (gw, conn, ext)
    print("READY", flush=True)
    while True:
        resp = await reader.xreadgroup(
            GROUP, "r1", {"cmds": ">", "events": ">"}, count=256, block=1000
        )
        if not resp:
            continue
        pipe = writer.pipeline(transaction=False)
        for stream, entries in resp:
            for _eid, f in entries:
                kind = f[b"k"]
                if kind == b"cmd":
                    if not extensions:
                        continue
                    ext = min(extensions, key=lambda e: extensions[e][1])
                    extensions[ext][1] += 1
                    origins[f[b"id"]] = (f[b"gw"], f[b"conn"], ext)
                    entry = {b"k": b"cmd", b"to": ext, b"d": f[b"d"]}
                    pipe.xadd(b"gw:" + extensions[ext][0], entry, maxlen=MAXLEN, approximate=True)
                elif kind == b"up":
                    extensions[f[b"ext"]] = [f[b"gw"], 0]
                elif kind == b"down":
                    extensions.pop(f[b"ext"], None)
                else:  # progress or result from an extension
                    origin = origins.get(f[b"id"])
                    if origin is None:
                        continue
                    if kind == b"res":
                        del origins[f[b"id"]]
                        if origin[2] in extensions:
                            extensions[origin[2]][1] -= 1
                    pipe.xadd(
                        b"gw:" + origin[0],
                        {b"k": kind, b"to": origin[1], b"d": f[b"d"]},
                        maxlen=MAXLEN,
                        approximate=True,
                    )
            pipe.xack(stream, GROUP, *(eid for eid, _ in entries))
        await pipe.execute()


class Gateway:
    """Terminates raw WebSockets and moves frames to and from the streams."""

    def __init__(self, redis_port: int) -> None:
        self.gw_id = uuid.uuid4().hex[:8].encode()
        self.inbox = b"gw:" + self.gw_id
        self.reader = redis.Redis(port=redis_port)
        self.batcher = Batcher(redis.Redis(port=redis_port))
        self.sockets: dict[bytes, web.WebSocketResponse] = {}
        self.ids = itertools.count()

    async def deliver(self) -> None:
        last = b"$"
        while True:
            resp = await self.reader.xread({self.inbox: last}, count=512, block=1000)
            for _stream, entries in resp or ():
                for eid, f in entries:
                    last = eid
                    ws = self.sockets.get(f[b"to"])
                    if ws is None or ws.closed:
                        continue
                    kind = f[b"k"]
                    if kind == b"cmd":
                        frame = b'{"t":"command","c":' + f[b"d"] + b"}"
                    elif kind == b"res":
                        frame = b'{"t":"result","r":' + f[b"d"] + b"}"
                    else:
                        frame = b'{"t":"progress","p":' + f[b"d"] + b"}"
                    await ws.send_str(frame.decode())

    async def health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "healthy", "connections": len(self.sockets)})

    async def websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(compress=False)
        await ws.prepare(request)
        role = request.query.get("role", "client")
        if role == "extension":
            key = request.query.get("extensionId", "ext").encode()
            self.batcher.add("cmds", {b"k": b"up", b"ext": key, b"gw": self.gw_id})
        else:
            key = b"c%d" % next(self.ids)
        self.sockets[key] = ws
        try:
            async for msg in ws:
                if msg.type != WSMsgType.TEXT:
                    continue
                frame = orjson.loads(msg.data)
                if role == "extension":
                    body = frame.get("r") or frame.get("p") or {}
                    kind = b"res" if frame["t"] == "result" else b"prog"
                    self.batcher.add(
                        "events",
                        {b"k": kind, b"id": str(body.get("id")).encode(), b"d": orjson.dumps(body)},
                    )
                    continue
                cmd = frame.get("c") or {}
                if not isinstance(cmd.get("type"), str) or not cmd["type"]:
                    await ws.send_str('{"t":"ack","accepted":false}')
                    continue
                cmd["id"] = cmd_id = str(uuid.uuid4())
                cmd["deadline"] = int(time.time() * 1000) + int(cmd.get("timeout", 30000))
                await ws.send_str(f'{{"t":"ack","id":"{cmd_id}","accepted":true}}')
                self.batcher.add(
                    "cmds",
                    {
                        b"k": b"cmd",
                        b"id": cmd_id.encode(),
                        b"gw": self.gw_id,
                        b"conn": key,
                        b"d": orjson.dumps(cmd),
                    },
                )
        finally:
            self.sockets.pop(key, None)
            if role == "extension":
                self.batcher.add("cmds", {b"k": b"down", b"ext": key})
        return ws

    async def serve(self, port: int) -> None:
        app = web.Application()
        app.router.add_get("/health", self.health)
        app.router.add_get("/ws", self.websocket)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        print("READY", flush=True)
        await asyncio.gather(self.deliver(), self.batcher.run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", choices=["router", "gateway"])
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.role == "router":
        uvloop.run(router(args.redis_port))
    else:
        uvloop.run(Gateway(args.redis_port).serve(args.port))


if __name__ == "__main__":
    main()
