"""One Socket.IO connection to the hub that comes back by itself, shared by `Hub` and `Worker`.

It reconnects after any loss it did not ask for, with jittered exponential back-off. (Not
python-socketio's own reconnection: that one gives up when the server closes the transport,
which is exactly how a draining gateway lets its clients go.) On top of the socket it does what
the hub's contract asks: a refused handshake becomes a typed error, `server:draining` holds new
work until the next connection, a refusal that retrying cannot change (a revoked or invalid
credential) stops the retrying and is reported once, and the owner's `resume` hook runs after
every reconnect, before new work is let through. It knows no command, session or channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import socketio

from semantest.client import errors

log = logging.getLogger("semantest.client")

SOCKET_ERRORS = (socketio.exceptions.SocketIOError, ConnectionError, OSError)
"""What a send may raise when the socket goes away under it."""
RECONNECT_FIRST_S = 0.2


class Connection:
    def __init__(self, url: str, auth: dict[str, Any], *, headers: dict[str, str] | None = None,
                 transports: list[str] | None = None, connect_timeout: float = 10.0,
                 ack_timeout: float = 10.0, reconnect_delay_max: float = 5.0) -> None:
        self.url, self.auth, self.headers = url, auth, headers or {}
        self.transports = transports or ["websocket"]
        self.connect_timeout, self.ack_timeout = connect_timeout, ack_timeout
        self.reconnect_delay_max = reconnect_delay_max
        self.sio = socketio.AsyncClient(reconnection=False)
        self.ready = asyncio.Event()
        """Set while connected, not draining, and done resuming: new work may go out."""
        self.ended = asyncio.Event()
        """Set once closed or refused for good: nothing will go out any more."""
        self.resume: Callable[[], Awaitable[None]] | None = None
        self.on_fatal: Callable[[errors.HubError], None] | None = None
        self.fatal: errors.HubError | None = None
        self.connections = 0
        self._refusal: errors.HubError | None = None
        self._closing = False
        self._tasks: set[asyncio.Future[Any]] = set()
        self._coming_back: asyncio.Future[Any] | None = None
        self.sio.on("connect", self._connected)
        self.sio.on("disconnect", self._disconnected)
        self.sio.on("connect_error", self._connect_error)
        self.sio.on("server:draining", self._draining)
        self.sio.on("error", self._error)

    def on(self, event: str, handler: Callable[..., Any]) -> None:
        self.sio.on(event, handler)

    async def open(self) -> None:
        """Connect once; a refusal raises its typed error, no answer raises `Unavailable`."""
        try:
            await self._connect()
        except socketio.exceptions.ConnectionError as exc:
            with contextlib.suppress(Exception):
                await self.sio.shutdown()
            raise self._refusal or errors.Unavailable(f"cannot connect to {self.url}: {exc}",
                                                      code="UNAVAILABLE") from None

    async def _connect(self) -> None:
        await self.sio.connect(self.url, auth=self.auth, headers=self.headers,
                               transports=self.transports, wait_timeout=self.connect_timeout)

    async def _come_back(self) -> None:
        delay = RECONNECT_FIRST_S
        while not self._closing and self.fatal is None:
            await asyncio.sleep(delay * random.uniform(0.7, 1.3))
            if self.sio.eio.state != "disconnected":
                continue  # the old transport is still being torn down
            try:
                await self._connect()
                return
            except (socketio.exceptions.ConnectionError, ValueError, *SOCKET_ERRORS) as exc:
                log.info("reconnecting to %s: %s", self.url, self._refusal or exc)
                delay = min(delay * 2, self.reconnect_delay_max)

    async def close(self) -> None:
        self._closing = True
        self.ready.clear()
        self.ended.set()
        for task in list(self._tasks):
            task.cancel()
        await self.sio.disconnect()

    async def call(self, event: str, data: Any, timeout: float | None = None) -> Any:
        """Send and wait for the ack; an ack carrying `error` raises it as a typed error."""
        answer = await self.sio.call(event, data, timeout=timeout or self.ack_timeout)
        if isinstance(answer, dict) and isinstance(answer.get("error"), dict):
            raise errors.from_wire(answer["error"])
        return answer

    async def wait_ready(self, timeout: float | None) -> None:
        """Return once new work may go out; raise why it never will, or `Unavailable`."""
        waits = [asyncio.ensure_future(event.wait()) for event in (self.ready, self.ended)]
        try:
            await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for wait in waits:
                wait.cancel()
        if self.fatal is not None:
            raise self.fatal
        if not self.ready.is_set():
            reason = "closed" if self.ended.is_set() else "reconnecting"
            raise errors.Unavailable(f"not connected to {self.url} ({reason})",
                                     code="UNAVAILABLE")

    def spawn(self, coroutine: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run in the background, kept referenced, cancelled by `close`; failures are logged."""
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Future[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task failed", exc_info=task.exception())

    async def _connected(self) -> None:
        self.connections += 1
        self._refusal = None
        if self.connections == 1 or self.resume is None:
            self.ready.set()
        else:
            self.spawn(self._resume())

    async def _resume(self) -> None:
        assert self.resume is not None
        log.info("reconnected to %s: resuming", self.url)
        await self.resume()
        if self.sio.namespaces:  # still connected (`sio.connected` is set only after this)
            self.ready.set()

    def _disconnected(self, *_: Any) -> None:
        self.ready.clear()
        if self._closing or self.fatal is not None:
            return
        if self._coming_back is None or self._coming_back.done():
            self._coming_back = self.spawn(self._come_back())

    def _draining(self, notice: Any = None) -> None:
        # New work waits for the next gateway; this one closes us once our commands end.
        log.info("%s is draining: holding new work until the reconnect", self.url)
        self.ready.clear()

    def _connect_error(self, data: Any = None) -> None:
        # A refused handshake comes as {message: code, data: {code, message, ...}}.
        body = data.get("data") if isinstance(data, dict) else None
        refusal = errors.from_wire(body) if isinstance(body, dict) else None
        self._refusal = refusal
        if refusal is not None and self.connections > 0 \
                and refusal.code in errors.FATAL_ON_CONNECT:
            self._give_up(refusal)

    def _error(self, body: Any = None) -> None:
        # A refused event has `event`; one without it is about the connection (a revocation).
        if isinstance(body, dict) and "event" not in body \
                and body.get("code") in errors.FATAL_ON_CONNECT:
            self._give_up(errors.from_wire(body))

    def _give_up(self, error: errors.HubError) -> None:
        if self.fatal is not None or self._closing:
            return
        log.error("the hub refused this connection for good: %s", error)
        self.fatal = error
        self.ready.clear()
        self.ended.set()
        self.spawn(self.sio.disconnect())
        if self.on_fatal is not None:
            self.on_fatal(error)
