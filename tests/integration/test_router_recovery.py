"""A router that ends a command and dies before sending the result: the next router to touch
the command sends the recorded result, exactly once. Runs on both buses."""

from __future__ import annotations

import asyncio

from semantest import protocol as p
from semantest.bus import Bus
from semantest.config import load_settings
from semantest.router.commands import ABANDONED_AFTER_MS, CommandRouter, now_ms
from semantest.telemetry import create_metrics

ORIGIN = {"gw": "gw-test", "sid": "client-sid"}




async def dispatched(bus: Bus, command_id: str) -> dict:
    state = {"id": command_id, "tenant": "t", "type": "CLICK", "subject": "s", "origin": ORIGIN,
             "entry": "1-0", "status": "dispatched", "ext": "e1", "deadline": now_ms() + 60_000,
             "accepted": now_ms() - 10, "cmd": {"id": command_id, "type": "CLICK"}}
    await bus.store.put(p.command_key("t", command_id), state)
    await bus.store.schedule(p.DEADLINES, p.pair("t", command_id), state["deadline"])
    return state


async def results_for(bus: Bus) -> list[dict]:
    inbox = bus.tail(p.gateway_inbox(ORIGIN["gw"]), after="0-0")
    try:
        batch = await asyncio.wait_for(anext(inbox), 2)
    except TimeoutError:
        return []
    finally:
        await inbox.aclose()
    return [d.message["data"] for d in batch if d.message["event"] == "result"]


def router(bus: Bus) -> CommandRouter:
    return CommandRouter(load_settings({}), bus, create_metrics())


async def test_an_abandoned_end_is_finished_with_the_recorded_result(bus: Bus) -> None:
    await dispatched(bus, "c1")
    recorded = {"id": "c1", "success": True, "data": {"from": "the dead router"},
                "metadata": {"duration": 5, "timestamp": now_ms() - ABANDONED_AFTER_MS - 1,
                             "extension": "e1"}}
    await bus.store.put(p.command_end_key("t", "c1"), recorded)  # it died right after this
    report = {"k": p.KIND_RESULT, "tenant": "t", "ext": "e1",
              "data": {"id": "c1", "success": False}}
    await router(bus).on_result(report)  # the redelivered report reaches another router
    assert await results_for(bus) == [recorded]
    state = await bus.store.get(p.command_key("t", "c1"))
    assert state["status"] == "done" and state["result"] == recorded
    assert await bus.store.due(p.DEADLINES, float("inf")) == []


async def test_a_fresh_end_is_left_to_the_router_that_is_finishing_it(bus: Bus) -> None:
    await dispatched(bus, "c2")
    fresh = {"id": "c2", "success": True, "metadata": {"timestamp": now_ms()}}
    await bus.store.put(p.command_end_key("t", "c2"), fresh)
    report = {"k": p.KIND_RESULT, "tenant": "t", "ext": "e1",
              "data": {"id": "c2", "success": True}}
    await router(bus).on_result(report)
    assert await results_for(bus) == []


async def test_result_and_cancel_racing_end_the_command_once(bus: Bus) -> None:
    state = await dispatched(bus, "c3")
    routers = [router(bus), router(bus)]
    report = {"k": p.KIND_RESULT, "tenant": "t", "ext": "e1",
              "data": {"id": "c3", "success": True}}
    await asyncio.gather(routers[0].on_result(report),
                         routers[1].end(dict(state), p.ErrorCode.CANCELLED, "cancelled"))
    assert len(await results_for(bus)) == 1
