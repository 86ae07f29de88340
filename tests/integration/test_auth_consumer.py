"""The auth role's consumer outlives a request it cannot answer, on every bus."""

from __future__ import annotations

import asyncio

from semantest import protocol as p
from semantest.auth.app import component
from semantest.bus import Bus
from semantest.config import load_settings
from semantest.telemetry import create_metrics

REPLIES = "gw:auth-consumer-test"


async def _ring(bus: Bus, rid: str, exchange: object) -> None:
    await bus.store.put(p.auth_exchange_key(rid, "request"), exchange)  # type: ignore[arg-type]
    await bus.publish(p.AUTH_REQUESTS, {"rid": rid, "reply": REPLIES})


GOOD = {"method": "GET", "path": "/auth/nowhere", "body": None, "authorization": None,
        "apiKey": None, "ip": "127.0.0.1"}


async def _answered(bus: Bus, rid: str, tries: int = 100) -> dict[str, object] | None:
    for _ in range(tries):
        reply = await bus.store.get(p.auth_exchange_key(rid, "reply"))
        if reply is not None:
            return reply
        await asyncio.sleep(0.05)
    return None


async def _until_consuming(bus: Bus) -> None:
    """The consumer reads new entries only: ring until one is answered."""
    for attempt in range(50):
        await _ring(bus, f"probe-{attempt}", GOOD)
        if await _answered(bus, f"probe-{attempt}", tries=4) is not None:
            return
    raise AssertionError("the auth consumer never answered")


async def test_a_request_that_cannot_be_answered_does_not_stop_the_others(bus: Bus) -> None:
    settings = load_settings({"JWT_SECRET": "s" * 32})
    metrics = create_metrics()
    async with component(settings, bus, metrics):
        await _until_consuming(bus)
        await _ring(bus, "broken", ["not", "a", "request"])  # answering it raises
        await _ring(bus, "fine", GOOD)
        reply = await _answered(bus, "fine")
    assert reply is not None and reply["status"] == 404
    assert await bus.store.get(p.auth_exchange_key("broken", "reply")) is None
    errors = {tuple(o.attributes.items()): o.value for o in metrics.bus_errors.observe(None)}
    assert errors[(("stream", p.AUTH_REQUESTS),)] == 1
