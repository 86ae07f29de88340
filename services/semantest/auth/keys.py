"""API keys made by admins (DESIGN §3.2): create (shown once), list (no secrets), revoke.

A key is stored only as its SHA-256 digest: keys are 256 random bits, so a fast hash is enough
(argon2 is for passwords people choose). Revoking deletes the record, so the next connect fails,
and announces the id on the revocations stream, so every gateway drops the key's live connections.
Admins of the default tenant (the operator's) manage keys of every tenant; an admin of another
tenant only those of its own. This module must never return or log a key after the create reply.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from semantest import credentials
from semantest import protocol as p
from semantest.bus.base import Bus
from semantest.protocol import DEFAULT_TENANT, ErrorCode, Principal

log = logging.getLogger("semantest.auth")

Reply = tuple[int, dict[str, Any]]
TENANT = r"^[A-Za-z0-9_.-]{1,64}$"
"""Tenant names end up inside store keys, so no `:`."""
SHOWN = ("id", "name", "scopes", "tenant", "createdAt", "createdBy")


def error(status: int, code: ErrorCode, message: str) -> Reply:
    return status, {"error": {"code": code.value, "message": message}}


def invalid(exc: ValidationError) -> Reply:
    problem = exc.errors()[0]
    where = ".".join(str(part) for part in problem["loc"]) or "body"
    return error(400, ErrorCode.VALIDATION_FAILED, f"{where}: {problem['msg']}")


class NewKey(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=128)
    scopes: list[Literal["client", "extension", "admin"]] = Field(min_length=1, max_length=3)
    tenant: str | None = Field(None, pattern=TENANT)


class ApiKeys:
    def __init__(self, bus: Bus) -> None:
        self.bus = bus
        self.store = bus.store

    @staticmethod
    def _manages(admin: Principal, tenant: str) -> bool:
        return admin.tenant in (DEFAULT_TENANT, tenant)

    async def create(self, admin: Principal, body: Any) -> Reply:
        try:
            form = NewKey.model_validate(body if body is not None else {})
        except ValidationError as exc:
            return invalid(exc)
        tenant = form.tenant or admin.tenant
        if not self._manages(admin, tenant):
            return error(403, ErrorCode.FORBIDDEN, "you may only make keys for your own tenant")
        made = credentials.new_api_key()
        record = {"id": made.id, "name": form.name, "scopes": sorted(set(form.scopes)),
                  "tenant": tenant, "createdAt": int(time.time() * 1000),
                  "createdBy": admin.subject, "hash": made.digest}
        await self.store.put(p.api_key_key(made.id), record)
        await self.store.add(p.API_KEYS, made.id)
        log.info("API key %s (%s) made for tenant %s by %s", made.id, form.name, tenant,
                 admin.subject)
        return 201, {**{k: record[k] for k in SHOWN}, "key": made.key}

    async def list(self, admin: Principal) -> Reply:
        ids = sorted(await self.store.members(p.API_KEYS))
        records = await self.store.get_many([p.api_key_key(i) for i in ids])
        keys = [{k: r[k] for k in SHOWN} for r in records
                if r is not None and self._manages(admin, r["tenant"])]
        return 200, {"keys": keys}

    async def revoke(self, admin: Principal, key_id: str) -> Reply:
        record = await self.store.get(p.api_key_key(key_id)) if len(key_id) <= 64 else None
        if record is None or not self._manages(admin, record["tenant"]):
            return error(404, ErrorCode.VALIDATION_FAILED, "no API key with this id")
        await self.store.delete(p.api_key_key(key_id))
        await self.store.remove(p.API_KEYS, key_id)
        await self.bus.publish(p.REVOCATIONS, {"credential": key_id}, maxlen=10_000)
        log.info("API key %s revoked by %s", key_id, admin.subject)
        return 200, {"id": key_id, "revoked": True}
