"""The auth role: answers /auth/* requests that gateways forward over the bus."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator

from semantest import protocol as p
from semantest.auth.routes import AuthRoutes, error
from semantest.bus.base import Bus, Delivery
from semantest.config import Settings
from semantest.telemetry import Metrics
from semantest.tracing import CONSUMER

log = logging.getLogger("semantest.auth")

REPLY_TTL_MS = 10_000
"""How long an answer waits in the store for its gateway (which deletes it on reading)."""


class AuthService:
    def __init__(self, settings: Settings, bus: Bus, metrics: Metrics) -> None:
        self.bus = bus
        self.metrics = metrics
        metrics.bus_errors.add(0, {"stream": p.AUTH_REQUESTS})  # a series from the start
        self.routes = AuthRoutes(settings, bus)
        self.consumer = f"auth-{uuid.uuid4().hex[:12]}"

    async def answer(self, delivery: Delivery) -> None:
        """Read the request from the store (it holds secrets), answer there, ring the gateway."""
        rid, reply_to = delivery.message.get("rid"), delivery.message.get("reply")
        if not isinstance(rid, str) or not isinstance(reply_to, str):
            log.warning("dropping malformed auth request entry %s", delivery.id)
            return
        request_key = p.auth_exchange_key(rid, "request")
        request = await self.bus.store.get(request_key)
        await self.bus.store.delete(request_key)
        if request is None:
            return  # the gateway gave up waiting; its key expired
        with self.metrics.tracing.span(
                "auth answer", kind=CONSUMER, parent=delivery.message.get("traceparent"),
                attributes={"url.path": str(request.get("path"))}):
            try:
                status, body = await self.routes.handle(request)
            except Exception:
                log.exception("auth request %s failed", request.get("path"))
                self.metrics.bus_errors.add(1, {"stream": p.AUTH_REQUESTS})
                status, body = error(500, p.ErrorCode.INTERNAL, "internal error")
            self.metrics.tracing.annotate(**{"http.status": status})
        await self.bus.store.put(p.auth_exchange_key(rid, "reply"),
                                 {"status": status, "body": body}, ttl_ms=REPLY_TTL_MS)
        await self.bus.publish(reply_to, {"t": p.DELIVER_HTTP_REPLY, "rid": rid})

    async def consume(self) -> None:
        """Answer requests for as long as auth runs: the bus reads again after a Redis failure,
        and a request that cannot be answered is logged and left to its gateway's timeout."""
        async for batch in self.bus.consume(p.AUTH_REQUESTS, p.AUTH_GROUP, self.consumer):
            answered = await asyncio.gather(*(self.answer(delivery) for delivery in batch),
                                            return_exceptions=True)
            for delivery, outcome in zip(batch, answered, strict=True):
                if isinstance(outcome, Exception):
                    log.error("cannot answer auth request entry %s", delivery.id,
                              exc_info=outcome)
                    self.metrics.bus_errors.add(1, {"stream": p.AUTH_REQUESTS})
            await self.bus.ack(p.AUTH_REQUESTS, p.AUTH_GROUP, [d.id for d in batch])


@contextlib.asynccontextmanager
async def component(settings: Settings, bus: Bus, metrics: Metrics) -> AsyncIterator[AuthService]:
    """Serve auth requests for as long as the context is open."""
    service = AuthService(settings, bus, metrics)
    task = asyncio.create_task(service.consume())
    log.info("auth %s consuming %s", service.consumer, p.AUTH_REQUESTS)
    try:
        yield service
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
