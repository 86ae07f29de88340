"""A small Chrome DevTools Protocol client over aiohttp's WebSocket: commands, events, and
flat sessions for attaching to a target (a page or the extension's service worker)."""

from __future__ import annotations

import asyncio
import itertools
from collections import defaultdict
from typing import Any

import aiohttp


class CdpError(Exception):
    pass


class Cdp:
    def __init__(self, http: aiohttp.ClientSession, socket: aiohttp.ClientWebSocketResponse):
        self._http = http
        self._socket = socket
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self.events: dict[str, asyncio.Queue[dict[str, Any]]] = defaultdict(asyncio.Queue)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str) -> Cdp:
        http = aiohttp.ClientSession()
        socket = await http.ws_connect(url, max_msg_size=0)
        return cls(http, socket)

    async def _read(self) -> None:
        async for message in self._socket:
            data = message.json()
            if "id" in data:
                future = self._waiting.pop(data["id"], None)
                if future is not None and not future.done():
                    if "error" in data:
                        future.set_exception(CdpError(data["error"].get("message")))
                    else:
                        future.set_result(data.get("result", {}))
            else:
                self.events[data["method"]].put_nowait(data.get("params", {}))
        for future in self._waiting.values():
            if not future.done():  # one that timed out is done already
                future.set_exception(CdpError("DevTools connection closed"))

    async def send(self, method: str, params: dict[str, Any] | None = None,
                   session: str | None = None, timeout: float = 20) -> Any:
        message_id = next(self._ids)
        message: dict[str, Any] = {"id": message_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = future
        await self._socket.send_json(message)
        return await asyncio.wait_for(future, timeout)

    async def next_event(self, method: str, timeout: float = 20) -> dict[str, Any]:
        return await asyncio.wait_for(self.events[method].get(), timeout)

    async def evaluate(self, session: str, expression: str, timeout: float = 20) -> Any:
        """Run `expression` (awaited) in an attached target; answers its JSON value."""
        answer = await self.send("Runtime.evaluate", {
            "expression": expression, "awaitPromise": True, "returnByValue": True,
        }, session=session, timeout=timeout)
        if "exceptionDetails" in answer:
            raise CdpError(str(answer["exceptionDetails"]))
        return answer["result"].get("value")

    async def close(self) -> None:
        await self._socket.close()
        await self._http.close()
        await self._reader
