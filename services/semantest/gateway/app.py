"""The gateway role: Socket.IO on the app, /auth/* forwarded to auth over the bus, and the inbox.

One port serves everything a client needs. The gateway owns no routing state: what another pod
would need lives in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

import orjson
from aiohttp import web

from semantest import protocol as p
from semantest.bus.base import Bus, Message
from semantest.bus.ledger import INBOX_GROUP, Ledger
from semantest.config import Settings
from semantest.gateway import limits
from semantest.gateway.sockets import GatewaySockets
from semantest.protocol import ErrorCode, Role
from semantest.telemetry import Metrics
from semantest.tracing import SERVER

log = logging.getLogger("semantest.gateway")

AUTH_REPLY_TIMEOUT_S = 5.0
HEARTBEAT_S = 5.0
RETRY_S = 1.0
INBOX_CLAIM_IDLE_MS = 1000
"""An inbox entry this gateway read but has not acknowledged for this long was lost on the way
(a read retried after a Redis restart or stall): it takes it again."""
REMEMBERED_ENTRIES = 100_000


def error_response(status: int, code: ErrorCode, message: str) -> web.Response:
    return web.json_response({"error": {"code": code.value, "message": message}}, status=status,
                             dumps=lambda v: orjson.dumps(v).decode())


class Gateway:
    def __init__(self, settings: Settings, bus: Bus, ledger: Ledger, metrics: Metrics) -> None:
        self.id = uuid.uuid4().hex[:12]
        self.bus = bus
        self.ledger = ledger
        self.sockets = GatewaySockets(settings, bus, ledger, metrics, self.id)
        self._replies: dict[str, asyncio.Future[Message]] = {}
        self._handled: OrderedDict[str, None] = OrderedDict()
        """Inbox entries handled lately: one read again (its reply or acknowledgement was lost
        to a Redis hiccup, so it came back from the pending list) is dropped."""
        self._queued_types: dict[str, set[str]] = {}
        """Per tenant, the types last reported queued: one no longer queued is reported as 0."""

    def connection_counts(self) -> dict[str, int]:
        connections = self.sockets.connections
        return {"clients": connections.count(Role.CLIENT),
                "extensions": connections.count(Role.EXTENSION)}

    async def forward_auth(self, request: web.Request) -> web.Response:
        """POST /auth/...: hand the request to the auth service and wait for its answer."""
        raw = await request.read()
        try:
            body: Any = orjson.loads(raw) if raw else None
        except orjson.JSONDecodeError:
            return error_response(400, ErrorCode.VALIDATION_FAILED, "body is not valid JSON")
        rid = uuid.uuid4().hex
        future: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[rid] = future
        exchange = {
            "method": request.method, "path": request.path, "body": body,
            "authorization": request.headers.get("Authorization"),
            "apiKey": request.headers.get(self.sockets.settings.auth.api_keys.header),
            "ip": self.sockets.limits.ip_of(request)}
        store, answer = self.bus.store, p.auth_exchange_key(rid, "reply")
        tracing = self.sockets.metrics.tracing
        with tracing.span("auth request", kind=SERVER, parent=request.headers.get("traceparent"),
                          attributes={**self.sockets.span_attributes,
                                      "http.request.method": request.method,
                                      "url.path": request.path}):
            ring = {"rid": rid, "reply": self.sockets.inbox}
            if tracing.enabled:  # the auth service continues this trace
                ring["traceparent"] = tracing.traceparent()
            try:  # secrets travel through the store under a TTL, never in a stream
                await store.put(p.auth_exchange_key(rid, "request"), exchange,
                                ttl_ms=int(AUTH_REPLY_TIMEOUT_S * 1000))
                await self.bus.publish(p.AUTH_REQUESTS, ring)
                await asyncio.wait_for(future, AUTH_REPLY_TIMEOUT_S)
                reply = await store.get(answer)
            except TimeoutError:
                reply = None
            finally:
                self._replies.pop(rid, None)
        await store.delete(answer)
        if reply is None:
            return error_response(503, ErrorCode.UNAVAILABLE, "the auth service did not answer")
        retry_after = (reply["body"].get("error") or {}).get("retryAfter")
        if reply["status"] == 429 and isinstance(retry_after, int):  # login attempts
            return limits.too_many(limits.RateLimited(reply["body"]["error"]["message"],
                                                      retry_after))
        return web.json_response(reply["body"], status=reply["status"],
                                 dumps=lambda v: orjson.dumps(v).decode())

    async def heartbeat(self) -> None:
        """Tell the routers this gateway lives; silent too long, its extensions are let go."""
        first = True
        while True:
            try:
                if not await self.ledger.heartbeat(self.id, p.now_ms()) and not first:
                    log.warning("gateway %s was given up for dead (silent too long): "
                                "registering its extensions again", self.id)
                    await self.sockets.register_again()
                first = False
                await self.count_pending()
            except Exception:
                log.exception("heartbeat failed")
            await asyncio.sleep(HEARTBEAT_S)

    async def count_pending(self) -> None:
        """`semantest_commands_pending` and `semantest_commands_queued` of the tenants with a
        connection here (a tenant's counts live in the ledger; every gateway of the tenant
        reports the same numbers)."""
        for tenant in {c.principal.tenant for c in self.sockets.connections.by_sid.values()}:
            not_ended, queued = await self.ledger.counts(tenant)
            pending = self.sockets.metrics.commands_pending
            pending.set(queued, {"tenant": tenant, "state": "queued"})
            pending.set(not_ended - queued, {"tenant": tenant, "state": "running"})
            by_type = await self.ledger.queued_by_type(tenant)
            waiting = self.sockets.metrics.commands_queued
            for command_type in self._queued_types.get(tenant, set()) - by_type.keys():
                waiting.set(0, {"tenant": tenant, "type": command_type})
            for command_type, count in by_type.items():
                waiting.set(count, {"tenant": tenant, "type": command_type})
            self._queued_types[tenant] = set(by_type)

    async def drain(self, timeout_s: float) -> None:
        await self.sockets.drain(timeout_s)

    async def read_inbox(self) -> None:
        """Read the inbox for as long as the gateway runs, whatever Redis does meanwhile."""
        while True:
            try:
                await self._read_inbox()
            except Exception:
                log.exception("reading the inbox failed; reading again in %.0f s", RETRY_S)
                await asyncio.sleep(RETRY_S)

    async def _read_inbox(self) -> None:
        """Deliveries, acknowledged once handled. An entry seen again (its acknowledgement or
        the reply that carried it was lost to a Redis hiccup) is dropped: each entry once."""
        inbox = self.sockets.inbox
        handled = self._handled
        async for batch in self.bus.consume(inbox, INBOX_GROUP, self.id, start="0",
                                            claim_idle_ms=INBOX_CLAIM_IDLE_MS):
            for delivery in batch:
                if delivery.id in handled:
                    continue
                handled[delivery.id] = None
                if len(handled) > REMEMBERED_ENTRIES:
                    handled.popitem(last=False)
                message = delivery.message
                if message.get("t") == p.DELIVER_HTTP_REPLY:
                    future = self._replies.get(message.get("rid", ""))
                    if future is not None and not future.done():
                        future.set_result(message)
                    continue
                try:
                    await self.sockets.deliver(delivery)
                except Exception:
                    log.exception("cannot deliver inbox entry %s", delivery.id)
            await self.bus.ack(inbox, INBOX_GROUP, [delivery.id for delivery in batch],
                               delete=True)

    def routes(self, app: web.Application) -> None:
        self.sockets.sio.attach(app)
        for method in ("GET", "POST", "DELETE"):  # explicit, so CORS can add OPTIONS
            app.router.add_route(method, "/auth/{tail:.*}", self.forward_auth)
        app.middlewares.append(self.sockets.limits.http)


@contextlib.asynccontextmanager
async def component(settings: Settings, bus: Bus, metrics: Metrics,
                    gateway: Gateway) -> AsyncIterator[Gateway]:
    """Read the inbox and beat while the context is open (the first beat at once: a gateway
    that cannot reach Redis still starts, and says so on /health)."""
    tasks = [asyncio.create_task(gateway.read_inbox()),
             asyncio.create_task(gateway.heartbeat()),
             asyncio.create_task(gateway.sockets.revocations.watch(bus, gateway.sockets))]
    log.info("gateway %s reading %s", gateway.id, gateway.sockets.inbox)
    try:
        yield gateway
    finally:
        await gateway.sockets.close_all()
        for task in tasks:  # no heartbeat after the burial below
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await gateway.ledger.bury(p.now_ms(), gateway.id)
