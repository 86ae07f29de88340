"""Socket.IO peers for end-to-end tests: python-socketio clients that record every event.

`Peer.next(event)` waits for the next event of that name; nothing is ever asserted by sleeping.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import socketio

from semantest.auth.passwords import hash_password

KEY = "client-key-0123456789"
ADMIN_KEY = "admin-key-0123456789"
SECRET = "test-jwt-secret-with-enough-length-0123456789"
PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="session")
def password_hash() -> str:
    return hash_password(PASSWORD)


@pytest.fixture(scope="session")
def hub_config(password_hash: str) -> dict[str, Any]:
    """Auth on; two tenants; a client-only user; short grace so disconnect tests are quick."""
    return {
        "auth": {
            "enabled": True,
            "jwt": {"secret": SECRET, "expiresIn": "1h"},
            "apiKeys": {"enabled": True, "keys": [KEY]},
            "adminKeys": [ADMIN_KEY],
            "users": [
                {"username": "alice", "passwordHash": password_hash,
                 "scopes": ["client", "extension"]},
                {"username": "bob", "passwordHash": password_hash, "tenant": "acme",
                 "scopes": ["client", "extension"]},
                {"username": "carol", "passwordHash": password_hash, "scopes": ["client"]},
            ],
        },
        "commands": {"extensionGrace": 1500},
    }


class Peer:
    def __init__(self, handlers: dict[str, Callable[[Any], Any]] | None = None) -> None:
        self.sio = socketio.AsyncClient(reconnection=False)
        self.queues: dict[str, asyncio.Queue[Any]] = defaultdict(asyncio.Queue)
        self.handlers = handlers or {}
        self.sio.on("*", self._record)
        self.sio.on("disconnect", lambda *reason: self.queues["disconnect"].put_nowait(reason))

    async def _record(self, event: str, data: Any = None) -> None:
        self.queues[event].put_nowait(data)
        handler = self.handlers.get(event)
        if handler is not None:
            outcome = handler(data)
            if asyncio.iscoroutine(outcome):
                await outcome

    async def next(self, event: str, timeout: float = 10) -> Any:
        return await asyncio.wait_for(self.queues[event].get(), timeout)

    def pending(self, event: str) -> int:
        return self.queues[event].qsize()

    async def call(self, event: str, data: Any = None, timeout: float = 10) -> Any:
        return await self.sio.call(event, data, timeout=timeout)

    async def emit(self, event: str, data: Any = None) -> None:
        await self.sio.emit(event, data)


async def connect(url: str, auth: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None, transport: str = "websocket",
                  handlers: dict[str, Callable[[Any], Any]] | None = None,
                  peer: Peer | None = None) -> Peer:
    """Connect a new peer (or `peer`, whose handlers may need to know it before it connects:
    work can arrive the moment the connection is accepted)."""
    peer = peer or Peer(handlers)
    await peer.sio.connect(url, auth=auth, headers=headers or {}, transports=[transport],
                           wait_timeout=10)
    return peer


async def refused(url: str, auth: dict[str, Any] | None = None,
                  headers: dict[str, str] | None = None) -> Any:
    """Connect and expect a refusal; return the `connect_error` data."""
    peer = Peer()
    errors: asyncio.Queue[Any] = asyncio.Queue()
    peer.sio.on("connect_error", errors.put_nowait)
    with pytest.raises(socketio.exceptions.ConnectionError):
        await peer.sio.connect(url, auth=auth, headers=headers or {}, transports=["websocket"],
                               wait_timeout=10)
    return await asyncio.wait_for(errors.get(), 5)


def extension_runner(peer_ref: list[Peer], *, progress: bool = True,
                     answer: bool = True) -> dict[str, Callable[[Any], Any]]:
    """Handlers that make a peer behave like a browser extension that completes commands."""

    async def on_command(command: dict[str, Any]) -> None:
        if not answer:
            return
        peer = peer_ref[0]
        if progress:
            await peer.emit("progress", {"id": command["id"], "percent": 50, "message": "half"})
        await peer.emit("result", {"id": command["id"], "success": True,
                                   "data": {"type": command["type"], "echo": command}})

    return {"command": on_command}


@pytest.fixture
async def peers() -> AsyncIterator[list[Peer]]:
    """Every peer appended here is disconnected after the test."""
    made: list[Peer] = []
    yield made
    for peer in made:
        if peer.sio.connected and peer.sio.transport() == "polling":
            # A polite polling disconnect waits out the pending long-poll; not worth the wait.
            await peer.sio.eio.disconnect(abort=True)
        elif peer.sio.connected:
            await peer.sio.disconnect()


async def extension(url: str, peers: list[Peer], auth: dict[str, Any], **options: Any) -> Peer:
    peer = Peer()
    peer.handlers = extension_runner([peer], **options)
    await connect(url, auth=auth, peer=peer)
    peers.append(peer)
    return peer
