"""The command ledger on Redis: each operation is one call of a function in ledger.lua.

The library is loaded by whoever needs it first. Its name and its functions' names carry a hash
of the file, so two versions live side by side during a rolling upgrade, and a Redis that lost
its functions (a fresh replica, `FUNCTION FLUSH`) gets them again on the next call.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from importlib import resources
from typing import Any

import orjson
from redis.exceptions import ResponseError

from semantest import protocol as p
from semantest.bus.base import Message
from semantest.bus.ledger import (
    SWEEP_LIMIT,
    Accepted,
    Ended,
    Ledger,
    NewCommand,
    Policy,
    Sweep,
    names_download,
    outcome,
)
from semantest.bus.redis_streams import RedisStreamsBus

log = logging.getLogger("semantest.bus")

_SOURCE = resources.files("semantest.bus").joinpath("ledger.lua").read_text()
VERSION = hashlib.sha1(_SOURCE.encode()).hexdigest()[:12]
LIBRARY = _SOURCE.replace("VERSION", VERSION)
ACKNOWLEDGED = frozenset({"accept", "report", "cancel", "register"})
"""Steps whose success the hub tells a client or an extension ("accepted", "connected"): with
Sentinels each waits for a replica first, so no failover undoes what was acknowledged. Every
other step's effect reaches the outside only through an inbox, whose reader waits likewise."""


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _ended(reply: list[Any], known: str | None = None) -> Ended | None:
    """`{type, outcome, duration, id, echo}` from a sweep, or `{type, duration}` with the
    outcome known."""
    if not reply:
        return None
    if known is None:
        echo = _text(reply[4])
        traceparent = orjson.loads(b"{" + echo.encode() + b"}").get("traceparent") if echo \
            else None
        return Ended(_text(reply[0]), _text(reply[1]), int(reply[2]), _text(reply[3]),
                     traceparent)
    return Ended(_text(reply[0]), known, int(reply[1]))


def _json(value: Any) -> bytes:
    return b"" if value is None else orjson.dumps(value)


class RedisLedger(Ledger):
    def __init__(self, bus: RedisStreamsBus, policy: Policy) -> None:
        self.policy = policy
        self._bus = bus
        self._prefix = bus.prefix
        self._anchor = bus.prefix + "ledger"
        self._loaded = False

    async def _load(self) -> None:
        try:
            await self._bus.redis.function_load(LIBRARY)
        except ResponseError as exc:
            if "already exists" not in str(exc):
                raise
        self._loaded = True

    async def _fcall(self, name: str, *args: Any) -> Any:
        if not self._loaded:
            await self._load()
        # One declared key, so a Redis Cluster client would route the call to the node that
        # holds the prefix's hash slot (docs/architecture.md, "Keys and Redis Cluster").
        call = ("fcall", f"{name}_{VERSION}", 1, self._anchor, self._prefix, *args)
        send = self._bus.call_replicated if name in ACKNOWLEDGED else self._bus.call
        started = time.perf_counter()
        try:
            return await send(*call)
        except ResponseError as exc:
            if "Function not found" not in str(exc):
                raise
            await self._load()
            return await send(*call)
        finally:
            if self.observe_call is not None:
                self.observe_call(name, time.perf_counter() - started)

    def _ending(self) -> tuple[int, int, int]:
        policy = self.policy
        return policy.retention_ms, policy.max_result_bytes, policy.channel_history

    async def accept(self, command: NewCommand) -> Accepted:
        payload = command.payload
        reply = await self._fcall(
            "accept", command.tenant, command.subject, command.origin["gw"],
            command.origin["sid"], payload["id"], payload["type"],
            payload.get("sessionId") or "", command.target,
            payload["deadline"], command.accepted, orjson.dumps(payload),
            orjson.dumps(p.echo(payload))[1:-1], self.policy.max_queued,
            orjson.dumps(command.readable_sessions))
        return Accepted(_text(reply[0]), _text(reply[1]) if len(reply) > 1 else None)

    async def report(self, tenant: str, extension: str, sid: str, report: Message,
                     now: int) -> Ended | None:
        reply = await self._fcall(
            "report", tenant, extension, sid, report["id"], int(bool(report["success"])),
            _json(report.get("data")), _json(report.get("error")), int(names_download(report)),
            now, *self._ending())
        return _ended(reply, outcome(report))

    async def progress(self, tenant: str, extension: str, sid: str, command_id: str,
                       event: Message) -> bool:
        return bool(await self._fcall("progress", tenant, extension, sid, command_id,
                                      orjson.dumps(event)))

    async def cancel(self, tenant: str, subject: str, command_id: str,
                     writable_sessions: list[str], now: int) -> Ended | None:
        reply = await self._fcall("cancel", tenant, subject, command_id,
                                  orjson.dumps(writable_sessions), now, *self._ending())
        return _ended(reply, p.ErrorCode.CANCELLED.value)

    async def register(self, tenant: str, extension: str, owner: str, gateway: str, sid: str,
                       record: Message, now: int) -> bool:
        capabilities = record.get("capabilities") or ["*"]
        reply = await self._fcall(
            "register", tenant, extension, owner, gateway, sid, record.get("maxConcurrency") or 0,
            orjson.dumps(record), int(bool(record.get("acks"))), *capabilities)
        return _text(reply[0]) == "ok"

    async def received(self, tenant: str, extension: str, sid: str, command_id: str) -> None:
        await self._fcall("received", tenant, extension, sid, command_id)

    async def unregister(self, tenant: str, extension: str, sid: str, now: int) -> None:
        await self._fcall("unregister", tenant, extension, sid, now, self.policy.grace_ms)

    async def handback(self, tenant: str, extension: str, command_id: str,
                       gateway: str) -> None:
        await self._fcall("handback", tenant, extension, command_id, gateway)

    async def _sweep(self, name: str, now: int) -> Sweep:
        ended, unreadable = await self._fcall(name, now, SWEEP_LIMIT, *self._ending())
        return Sweep([e for e in map(_ended, ended) if e is not None],
                     [_text(entry) for entry in unreadable])

    async def expire(self, now: int) -> Sweep:
        return await self._sweep("expire", now)

    async def expire_grace(self, now: int) -> Sweep:
        return await self._sweep("expire_grace", now)

    async def heartbeat(self, gateway: str, now: int) -> bool:
        return bool(await self._fcall("heartbeat", gateway, now))

    async def bury(self, now: int, gateway: str | None = None) -> int:
        if gateway is not None:  # leaving: mark it long silent
            await self._fcall("heartbeat", gateway, 0)
        return int(await self._fcall("bury", now - self.policy.gateway_dead_after_ms, now,
                                     self.policy.grace_ms, self.policy.retention_ms))

    async def extensions(self, tenant: str) -> list[Message]:
        prefix, call = self._prefix, self._bus.call
        ids = sorted(_text(m) for m in await call("smembers", prefix + p.extensions_index(tenant)))
        records, loads = await asyncio.gather(
            asyncio.gather(*(call("hget", prefix + p.extension_key(tenant, i), "record")
                             for i in ids)),
            asyncio.gather(*(call("scard", prefix + p.extension_commands_key(tenant, i))
                             for i in ids)))
        return [{**orjson.loads(record), "inFlight": int(load)}
                for record, load in zip(records, loads, strict=True) if record is not None]

    async def counts(self, tenant: str) -> tuple[int, int]:
        in_flight, queued = await self._bus.call(
            "hmget", self._prefix + p.tenant_stats_key(tenant), "inflight", "queued")
        return int(in_flight or 0), int(queued or 0)

    async def queued_by_type(self, tenant: str) -> dict[str, int]:
        prefix, call = self._prefix, self._bus.call
        queued_types = await call("smembers", prefix + p.queued_types_key(tenant))
        types = sorted(_text(t) for t in queued_types)
        sizes = await asyncio.gather(*(  # one round trip: the calls share a pipeline
            call("zcard", prefix + p.type_queue_key(tenant, t)) for t in types))
        return {t: n for t, n in zip(types, sizes, strict=True) if n}
