"""The trace context rides in the command: the ledger keeps a command's `traceparent`, echoes it
on the result, and its sweeps tell the router each ended command's id and trace (both ledgers:
in process and ledger.lua on a real Redis)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from semantest import protocol as p
from semantest.bus import Bus, open_bus
from semantest.bus.ledger import Ledger, NewCommand, Policy
from tests.conftest import RedisServer

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Bus]:
    if request.param == "memory":
        made = open_bus("memory://")
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        made = open_bus(redis.url, prefix=redis_prefix)
    yield made
    await made.aclose()


@pytest.fixture
def ledger(bus: Bus) -> Ledger:
    return bus.ledger(Policy(grace_ms=50))


def now_ms() -> int:
    return int(time.time() * 1000)


def command(command_id: str, type_: str, timeout: int, **fields: Any) -> NewCommand:
    accepted = now_ms()
    return NewCommand("t", "alice", {"gw": "gw-c", "sid": "c1"},
                      {"id": command_id, "type": type_, "timeout": timeout,
                       "deadline": accepted + timeout, **fields}, accepted)


async def results(bus: Bus) -> dict[str, dict[str, Any]]:
    entries = await bus.history(p.gateway_inbox("gw-c"), "0-0", 100)
    return {m["data"]["id"]: m["data"] for m in (d.message for d in entries)
            if m.get("event") == "result"}


async def test_an_expiry_tells_the_command_and_its_trace(bus: Bus, ledger: Ledger) -> None:
    await ledger.accept(command("traced", "NOBODY", 1, traceparent=TRACEPARENT,
                                correlationId="k"))
    await ledger.accept(command("untraced", "NOBODY", 1))
    await asyncio.sleep(0.01)
    sweep = await ledger.expire(now_ms())
    told = sorted((e.id, e.outcome, e.traceparent) for e in sweep.ended)
    assert told == [("traced", "NO_EXTENSION", TRACEPARENT), ("untraced", "NO_EXTENSION", None)]
    delivered = await results(bus)
    assert delivered["traced"]["traceparent"] == TRACEPARENT
    assert delivered["traced"]["correlationId"] == "k"
    assert "traceparent" not in delivered["untraced"]


async def test_a_grace_expiry_tells_the_command_and_its_trace(bus: Bus, ledger: Ledger) -> None:
    await ledger.heartbeat("gw-e", now_ms())
    assert await ledger.register("t", "e1", "alice", "gw-e", "x1", {"extensionId": "e1"},
                                 now_ms())
    await ledger.accept(command("held", "RUN", 60_000, traceparent=TRACEPARENT))
    await ledger.unregister("t", "e1", "x1", now_ms())
    await asyncio.sleep(0.1)
    sweep = await ledger.expire_grace(now_ms())
    assert [(e.id, e.outcome, e.traceparent) for e in sweep.ended] == [
        ("held", "EXTENSION_DISCONNECTED", TRACEPARENT)]
