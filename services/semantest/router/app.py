"""The router role: consumes the commands stream in a group and runs the schedules.

Messages about one command are handled in order; different commands run concurrently.
A message that cannot be handled is logged, counted and acknowledged, never retried forever.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

from semantest import protocol as p
from semantest.bus.base import Bus, Delivery
from semantest.config import Settings
from semantest.router.commands import CommandRouter
from semantest.telemetry import Metrics

log = logging.getLogger("semantest.router")

TICK_S = 0.1
SWEEP_EVERY_TICKS = 20


def _subject_of(delivery: Delivery) -> str:
    message = delivery.message
    kind = message.get("k")
    if kind == p.KIND_COMMAND:
        return p.pair(message["tenant"], message["cmd"]["id"])
    if kind in (p.KIND_PROGRESS, p.KIND_RESULT):
        return p.pair(message["tenant"], message["data"]["id"])
    if kind == p.KIND_CANCEL:
        return p.pair(message["tenant"], message["id"])
    return delivery.id


class Router:
    def __init__(self, settings: Settings, bus: Bus, metrics: Metrics) -> None:
        self.bus = bus
        self.metrics = metrics
        self.commands = CommandRouter(settings, bus, metrics)
        self.consumer = f"router-{uuid.uuid4().hex[:12]}"

    async def handle(self, delivery: Delivery) -> None:
        message, router = delivery.message, self.commands
        match message.get("k"):
            case p.KIND_COMMAND:
                await router.on_command(delivery.id, message)
            case p.KIND_PROGRESS:
                await router.on_progress(message)
            case p.KIND_RESULT:
                await router.on_result(message)
            case p.KIND_CANCEL:
                await router.on_cancel(message)
            case p.KIND_EXTENSION_UP:
                await router.on_extension_up(message)
            case p.KIND_EXTENSION_DOWN:
                await router.on_extension_down(message)
            case other:
                raise ValueError(f"unknown message kind {other!r}")

    async def _in_order(self, deliveries: list[Delivery]) -> None:
        for delivery in deliveries:
            try:
                await self.handle(delivery)
            except Exception:
                self.metrics.bus_errors.add(1, {"stream": delivery.stream})
                log.exception("cannot handle %s entry %s", delivery.stream, delivery.id)

    async def consume(self) -> None:
        async for batch in self.bus.consume(p.COMMANDS, p.ROUTER_GROUP, self.consumer):
            groups: dict[str, list[Delivery]] = defaultdict(list)
            for delivery in batch:
                try:
                    groups[_subject_of(delivery)].append(delivery)
                except (KeyError, TypeError):
                    groups[delivery.id].append(delivery)
            await asyncio.gather(*(self._in_order(group) for group in groups.values()))
            await self.bus.ack(p.COMMANDS, p.ROUTER_GROUP, [d.id for d in batch])

    async def tick(self) -> None:
        ticks = 0
        while True:
            try:
                await self.commands.expire_deadlines()
                await self.commands.expire_grace()
                if ticks % SWEEP_EVERY_TICKS == 0:
                    await self.commands.sweep_vanished_extensions()
            except Exception:
                self.metrics.bus_errors.add(1, {"stream": "schedules"})
                log.exception("schedule sweep failed")
            ticks += 1
            await asyncio.sleep(TICK_S)


@contextlib.asynccontextmanager
async def component(settings: Settings, bus: Bus, metrics: Metrics) -> AsyncIterator[Router]:
    """Run a router for as long as the context is open."""
    router = Router(settings, bus, metrics)
    tasks = [asyncio.create_task(router.consume()), asyncio.create_task(router.tick())]
    log.info("router %s consuming %s", router.consumer, p.COMMANDS)
    try:
        yield router
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
