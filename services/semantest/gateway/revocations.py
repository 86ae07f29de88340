"""Dropping the live connections of a revoked credential (an API key, a logged-out token).

The auth service deletes the key (or marks the token's jti revoked) in the store, then announces
the id on the revocations stream; every gateway tails that stream and disconnects the sockets
whose principal carries the id, after an `error {code: AUTH_INVALID}` saying why. Ids seen in the
last minute are remembered, so a connection that was being admitted while the revocation arrived
is refused too. This module must not decide who is revoked: the auth service does.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

import socketio

from semantest import protocol as p
from semantest.bus.base import Bus
from semantest.gateway.connections import Connections
from semantest.protocol import ErrorCode, HubError, Principal

log = logging.getLogger("semantest.gateway")

REMEMBER_S = 60.0
REVOKED = HubError(ErrorCode.AUTH_INVALID, "the credential of this connection was revoked")


class Holder(Protocol):
    """What the watcher needs of the gateway's sockets."""

    connections: Connections
    sio: socketio.AsyncServer


class Revocations:
    def __init__(self) -> None:
        self.recent: dict[str, float] = {}
        """Credential id → monotonic time it was revoked."""

    def check(self, principal: Principal) -> None:
        """Refuse a principal whose credential was revoked a moment ago."""
        if principal.credential_id and principal.credential_id in self.recent:
            raise REVOKED

    def _remember(self, credential: str) -> None:
        now = time.monotonic()
        self.recent = {c: at for c, at in self.recent.items() if now - at < REMEMBER_S}
        self.recent[credential] = now

    async def drop(self, sockets: Holder, credential: str) -> int:
        """Disconnect every socket of this gateway that authenticated with `credential`."""
        self._remember(credential)
        doomed = [sid for sid, c in sockets.connections.by_sid.items()
                  if c.principal.credential_id == credential]
        for sid in doomed:
            await sockets.sio.emit("error", REVOKED.as_dict(), to=sid)
            await sockets.sio.disconnect(sid)
        if doomed:
            log.info("dropped %d connection(s) of a revoked credential", len(doomed))
        return len(doomed)

    async def watch(self, bus: Bus, sockets: Holder) -> None:
        """Tail the revocations stream for as long as the gateway runs."""
        async for batch in bus.tail(p.REVOCATIONS):
            for delivery in batch:
                credential = delivery.message.get("credential")
                if isinstance(credential, str) and credential:
                    try:
                        await self.drop(sockets, credential)
                    except Exception:
                        log.exception("cannot drop the connections of a revoked credential")
