"""Sessions (DESIGN §3.4): create, join with a share token, share, leave.

Rights belong to a principal's subject and live in the store, so a member of a persistent session
keeps them across reconnects and restarts. A socket that created or joined a session is attached
to it: attached readers receive the session's progress and results. A non-persistent session ends
when its last socket leaves. Share tokens are JWTs with their own audience, so one can never be
used to log in.

Caps and expiry. Every session record lives `sessions.persistentTtl` ms after its last use
(create, join, a command or share in it), so a session nobody uses goes away, and so does a
non-persistent one whose gateway died with its sockets. Each session id is also in two store
schedules with its expiry as score: the owner's (`sessions.maxPerPrincipal`) and the tenant's
(`sessions.maxPerTenant`). A create prunes both (entries past their time whose record is gone),
then claims its place and counts; over a cap it takes the place back and is refused. The counts
are sets, not counters, so nothing drifts when a gateway dies mid-way: a stale entry leaves at
its expiry. Pruning the tenant's schedule also deletes what an expired session left behind (its
member and socket sets, rights, affinity), so those keys stay bounded by the tenant cap.
"""

from __future__ import annotations

import asyncio
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
PRUNE_BATCH = 100
"""Expired schedule entries handled per store round trip when a create prunes."""
FAR_FUTURE = 2**53
"""A schedule score beyond every expiry (epoch ms): `due(key, FAR_FUTURE)` lists everything."""
REFRESH_MAX_S = 60.0
"""Use within this long (or a tenth of the TTL, if shorter) of a refresh does not refresh again."""


def now_ms() -> int:
    return int(time.time() * 1000)


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
        self.max_per_principal = settings.sessions.max_per_principal
        self.max_per_tenant = settings.sessions.max_per_tenant
        self.ttl = settings.sessions.persistent_ttl
        self.refresh_every = min(self.ttl / 10_000, REFRESH_MAX_S)
        self.refreshed: dict[tuple[str, str], float] = {}
        """(tenant, session id) → when this gateway last refreshed it (monotonic seconds)."""

    async def create(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Create, data)
        self._check_cap(connection)
        tenant, session_id = connection.principal.tenant, str(uuid.uuid4())
        record = {"id": session_id, "name": request.name, "persistent": request.persistent,
                  "owner": connection.principal.subject, "created": now_ms()}
        # The record first: a count entry then always has a record to check it against.
        await self.store.put(p.session_key(tenant, session_id), record, ttl_ms=self.ttl)
        await self._claim(tenant, connection.principal.subject, session_id)
        self._refreshed(tenant, session_id)
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
        await self._touch(tenant, session_id, record)
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
            await self._keep_alive(connection, session_id)
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
            await self._end(tenant, session_id)
            await asyncio.gather(
                self.store.unschedule(p.sessions_owned_key(tenant, record["owner"]), session_id),
                self.store.unschedule(p.sessions_held_key(tenant), session_id))
            self.refreshed.pop((tenant, session_id), None)

    async def _end(self, tenant: str, session_id: str) -> None:
        """Delete a session's record and everything that hangs off it."""
        members = await self.store.members(p.session_members_key(tenant, session_id))
        await self.store.delete(
            p.session_key(tenant, session_id), p.session_sockets_key(tenant, session_id),
            p.session_members_key(tenant, session_id),
            p.session_affinity_key(tenant, session_id),
            *(p.session_rights_key(tenant, session_id, m) for m in members))

    # --- caps and expiry ---------------------------------------------------------------------
    async def _claim(self, tenant: str, subject: str, session_id: str) -> None:
        """Count the new session against its owner's and its tenant's cap, or refuse it.

        Claim first, count after: two creates racing for the last place may both be refused,
        but the count never passes the cap.
        """
        owned, held = p.sessions_owned_key(tenant, subject), p.sessions_held_key(tenant)
        now = now_ms()
        await self._prune(tenant, held, now, clean=True)
        await self._prune(tenant, owned, now)
        expires = now + self.ttl
        await asyncio.gather(self.store.schedule(owned, session_id, expires),
                             self.store.schedule(held, session_id, expires))
        owner_count, tenant_count = await asyncio.gather(
            self.store.scheduled_count(owned), self.store.scheduled_count(held))
        if owner_count > self.max_per_principal:
            owner_count = await self._recount(tenant, owned)
        refusal = None
        if owner_count > self.max_per_principal:
            refusal = (f"at most {self.max_per_principal} sessions per principal "
                       "(config key sessions.maxPerPrincipal); leave one of yours or let it expire")
        elif tenant_count > self.max_per_tenant:
            refusal = (f"this tenant holds its limit of {self.max_per_tenant} sessions "
                       "(config key sessions.maxPerTenant)")
        if refusal is not None:
            await asyncio.gather(self.store.unschedule(owned, session_id),
                                 self.store.unschedule(held, session_id))
            await self.store.delete(p.session_key(tenant, session_id))
            raise HubError(ErrorCode.VALIDATION_FAILED, refusal)

    async def _prune(self, tenant: str, key: str, now: int, clean: bool = False) -> None:
        """Take out the entries past their expiry whose session is gone (`clean`: and delete
        what the session left behind). One still there was refreshed meanwhile: it moves on."""
        while batch := await self.store.due(key, now, PRUNE_BATCH):
            records = await self.store.get_many([p.session_key(tenant, s) for s in batch])
            gone = [s for s, record in zip(batch, records, strict=True) if record is None]
            alive = [s for s, record in zip(batch, records, strict=True) if record is not None]
            if clean:
                await asyncio.gather(*(self._end(tenant, s) for s in gone))
            await asyncio.gather(
                *(self.store.unschedule(key, s) for s in gone),
                *(self.store.schedule(key, s, now + self.ttl) for s in alive))
            if len(batch) < PRUNE_BATCH:
                return

    async def _recount(self, tenant: str, key: str) -> int:
        """Count only entries whose session exists (an entry can outlive its session when a
        gateway dies between ending one and uncounting it); take the others out."""
        entries = await self.store.due(key, FAR_FUTURE, self.max_per_principal + PRUNE_BATCH)
        records = await self.store.get_many([p.session_key(tenant, s) for s in entries])
        gone = [s for s, record in zip(entries, records, strict=True) if record is None]
        await asyncio.gather(*(self.store.unschedule(key, s) for s in gone))
        return await self.store.scheduled_count(key)

    async def _touch(self, tenant: str, session_id: str, record: Message) -> None:
        """Use of a session: it lives `sessions.persistentTtl` from now (record and counts)."""
        expires = now_ms() + self.ttl
        await asyncio.gather(
            self.store.put(p.session_key(tenant, session_id), record, ttl_ms=self.ttl),
            self.store.schedule(p.sessions_owned_key(tenant, record["owner"]), session_id,
                                expires),
            self.store.schedule(p.sessions_held_key(tenant), session_id, expires))
        self._refreshed(tenant, session_id)

    def _refreshed(self, tenant: str, session_id: str) -> None:
        now = time.monotonic()
        if len(self.refreshed) >= 10_000:  # only recent refreshes matter; forget the rest
            self.refreshed = {k: at for k, at in self.refreshed.items()
                              if now - at < self.refresh_every}
        self.refreshed[(tenant, session_id)] = now

    async def _keep_alive(self, connection: Connection, session_id: str) -> None:
        """Use by an attached socket refreshes the session, at most every `refresh_every`; a
        session that expired meanwhile is left (`SESSION_NOT_FOUND`), never brought back."""
        tenant = connection.principal.tenant
        last = self.refreshed.get((tenant, session_id))
        if last is not None and time.monotonic() - last < self.refresh_every:
            return
        record = await self.store.get(p.session_key(tenant, session_id))
        if record is None:
            await self.detach(connection, session_id)
            raise HubError(ErrorCode.SESSION_NOT_FOUND, "the session has expired or ended")
        await self._touch(tenant, session_id, record)

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
