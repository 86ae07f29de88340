"""Sessions (DESIGN §3.4): create, join with a share token, share, leave.

Rights belong to a principal's subject and live in the store, so a member of a persistent session
keeps them across reconnects and restarts. A socket that created or joined a session is attached
to it: attached readers receive the session's progress and results. A non-persistent session ends
when its last socket leaves. Share tokens are JWTs with their own audience, so one can never be
used to log in.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, Literal

import jwt
from pydantic import Field, StringConstraints

from semantest import protocol as p
from semantest.bus.base import Bus, Message
from semantest.config import Settings, duration_seconds
from semantest.gateway import events
from semantest.gateway.connections import Connection
from semantest.protocol import ErrorCode, HubError

SHARE_AUDIENCE = "semantest:session-share"
ALGORITHM = "HS256"


class Create(events.Shape):
    name: events.Name
    persistent: bool = False


class Join(events.Shape):
    session_id: events.Id = Field(alias="sessionId")
    share_token: Annotated[str, StringConstraints(max_length=4096)] | None = Field(
        None, alias="shareToken")


class Share(events.Shape):
    session_id: events.Id = Field(alias="sessionId")
    permissions: list[Literal["read", "write"]] = Field(min_length=1, max_length=2)
    expires_in: int | Annotated[str, StringConstraints(max_length=16)] | None = Field(
        None, alias="expiresIn")


class Leave(events.Shape):
    session_id: events.Id = Field(alias="sessionId")


class Sessions:
    def __init__(self, settings: Settings, bus: Bus, gateway_id: str) -> None:
        secret = settings.auth.jwt.secret
        if secret is None:
            raise ValueError("auth.jwt.secret is required to sign share tokens")
        self.secret = secret.get_secret_value()
        self.store = bus.store
        self.gateway_id = gateway_id
        self.max_sessions = settings.websocket.max_sessions

    async def create(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Create, data)
        self._check_cap(connection)
        tenant, session_id = connection.principal.tenant, str(uuid.uuid4())
        await self.store.put(p.session_key(tenant, session_id), {
            "id": session_id, "name": request.name, "persistent": request.persistent,
            "owner": connection.principal.subject, "created": int(time.time() * 1000)})
        permissions = list(p.PERMISSIONS)
        await self._grant(connection, session_id, permissions)
        await self._attach(connection, session_id, permissions)
        return {"sessionId": session_id, "name": request.name,
                "persistent": request.persistent, "permissions": permissions}

    async def join(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Join, data)
        tenant, session_id = connection.principal.tenant, request.session_id
        record = await self.store.get(p.session_key(tenant, session_id))
        if record is None:
            raise HubError(ErrorCode.SESSION_NOT_FOUND, "no such session")
        subject = connection.principal.subject
        rights = await self.store.get(p.session_rights_key(tenant, session_id, subject))
        permissions = set(rights["permissions"]) if rights else set()
        if request.share_token is not None:
            permissions |= self._verify_share(request.share_token, tenant, session_id)
        elif not permissions:
            raise HubError(ErrorCode.FORBIDDEN, "a share token is needed to join this session")
        if session_id not in connection.sessions:
            self._check_cap(connection)
        granted = sorted(permissions)
        await self._grant(connection, session_id, granted)
        await self._attach(connection, session_id, granted)
        return {"sessionId": session_id, "name": record["name"], "permissions": granted}

    async def share(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Share, data)
        held = await self.permissions(connection, request.session_id)
        if not set(request.permissions) <= held:
            raise HubError(ErrorCode.FORBIDDEN, "you cannot share rights you do not hold")
        claims: dict[str, Any] = {
            "aud": SHARE_AUDIENCE, "tenant": connection.principal.tenant,
            "sid": request.session_id, "perms": sorted(set(request.permissions)),
            "iat": int(time.time()), "jti": uuid.uuid4().hex,
        }
        if request.expires_in is not None:
            try:
                claims["exp"] = int(time.time()) + duration_seconds(request.expires_in)
            except ValueError as exc:
                raise HubError(ErrorCode.VALIDATION_FAILED, f"expiresIn: {exc}") from None
        token = jwt.encode(claims, self.secret, algorithm=ALGORITHM)
        return {"sessionId": request.session_id, "shareToken": token,
                "permissions": claims["perms"]}

    async def leave(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Leave, data)
        if request.session_id not in connection.sessions:
            await self.permissions(connection, request.session_id)  # not found vs not a member
            raise HubError(ErrorCode.FORBIDDEN, "this connection has not joined the session")
        await self.detach(connection, request.session_id)
        return {"sessionId": request.session_id}

    async def permissions(self, connection: Connection, session_id: str) -> set[str]:
        """What this connection may do in the session; refuses when it is not a member."""
        attached = connection.sessions.get(session_id)
        if attached is not None:
            return set(attached[1])
        tenant = connection.principal.tenant
        if await self.store.get(p.session_key(tenant, session_id)) is None:
            raise HubError(ErrorCode.SESSION_NOT_FOUND, "no such session")
        raise HubError(ErrorCode.FORBIDDEN, "join the session first")

    async def detach(self, connection: Connection, session_id: str) -> None:
        """Take the socket out; the last socket out ends a non-persistent session."""
        entry, _ = connection.sessions.pop(session_id)
        tenant = connection.principal.tenant
        sockets = p.session_sockets_key(tenant, session_id)
        await self.store.remove(sockets, entry)
        if await self.store.members(sockets):
            return
        record = await self.store.get(p.session_key(tenant, session_id))
        if record is not None and not record["persistent"]:
            members = await self.store.members(p.session_members_key(tenant, session_id))
            await self.store.delete(
                p.session_key(tenant, session_id), sockets,
                p.session_members_key(tenant, session_id),
                p.session_affinity_key(tenant, session_id),
                *(p.session_rights_key(tenant, session_id, m) for m in members))

    def _check_cap(self, connection: Connection) -> None:
        if len(connection.sessions) >= self.max_sessions:
            raise HubError(ErrorCode.VALIDATION_FAILED,
                           f"at most {self.max_sessions} sessions per connection")

    def _verify_share(self, token: str, tenant: str, session_id: str) -> set[str]:
        try:
            claims = jwt.decode(token, self.secret, algorithms=[ALGORITHM],
                                audience=SHARE_AUDIENCE, options={"require": ["sid", "perms"]})
        except jwt.ExpiredSignatureError:
            raise HubError(ErrorCode.FORBIDDEN, "the share token has expired") from None
        except jwt.InvalidTokenError:
            raise HubError(ErrorCode.FORBIDDEN, "the share token is invalid") from None
        if claims["sid"] != session_id or claims.get("tenant") != tenant:
            raise HubError(ErrorCode.FORBIDDEN, "the share token is for another session")
        return set(claims["perms"]) & set(p.PERMISSIONS)

    async def _grant(self, connection: Connection, session_id: str,
                     permissions: list[str]) -> None:
        tenant, subject = connection.principal.tenant, connection.principal.subject
        await self.store.put(p.session_rights_key(tenant, session_id, subject),
                             {"permissions": permissions})
        await self.store.add(p.session_members_key(tenant, session_id), subject)

    async def _attach(self, connection: Connection, session_id: str,
                      permissions: list[str]) -> None:
        previous = connection.sessions.get(session_id)
        entry = p.pair(self.gateway_id, connection.sid, ",".join(permissions))
        sockets = p.session_sockets_key(connection.principal.tenant, session_id)
        if previous is not None and previous[0] != entry:
            await self.store.remove(sockets, previous[0])
        await self.store.add(sockets, entry)
        connection.sessions[session_id] = (entry, tuple(permissions))
