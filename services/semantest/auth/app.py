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

log = logging.getLogger("semantest.auth")


class AuthService:
    def __init__(self, settings: Settings, bus: Bus, metrics: Metrics) -> None:
        self.bus = bus
        self.metrics = metrics
        self.routes = AuthRoutes(settings, bus)
        self.consumer = f"auth-{uuid.uuid4().hex[:12]}"

    async def answer(self, delivery: Delivery) -> None:
        request = delivery.message
        try:
            status, body = await self.routes.handle(request)
        except Exception:
            log.exception("auth request %s failed", request.get("path"))
            self.metrics.bus_errors.add(1, {"stream": p.AUTH_REQUESTS})
            status, body = error(500, p.ErrorCode.INTERNAL, "internal error")
        if isinstance(request.get("reply"), str):
            await self.bus.publish(
                request["reply"],
                {"t": p.DELIVER_HTTP_REPLY, "rid": request.get("rid"), "status": status,
                 "body": body},
            )

    async def consume(self) -> None:
        async for batch in self.bus.consume(p.AUTH_REQUESTS, p.AUTH_GROUP, self.consumer):
            await asyncio.gather(*(self.answer(delivery) for delivery in batch))
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
