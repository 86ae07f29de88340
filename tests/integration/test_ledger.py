"""The command ledger's contract, on both buses: every operation checks the state it expects,
so a repeated, late or foreign step changes nothing, and every delivery it makes lands once."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from semantest import protocol as p
from semantest.bus import Bus
from semantest.bus.ledger import INBOX_GROUP, Ledger, NewCommand, Policy

CLIENT_GW, EXT_GW, OTHER_GW = "gw-client", "gw-ext", "gw-other"


def now_ms() -> int:
    return int(time.time() * 1000)


@pytest.fixture
def ledger(bus: Bus) -> Ledger:
    return bus.ledger(Policy(retention_ms=60_000, max_result_bytes=2048, grace_ms=200,
                             max_queued=3, gateway_dead_after_ms=1000))


async def inbox(bus: Bus, gateway: str) -> list[dict[str, Any]]:
    return [d.message for d in await bus.history(p.gateway_inbox(gateway), "0-0", 1000)]


async def results(bus: Bus, gateway: str, sid: str = "c1") -> list[dict[str, Any]]:
    return [m["data"] for m in await inbox(bus, gateway)
            if m.get("event") == "result" and sid in m.get("sids", [])]


def command(command_id: str, *, subject: str = "alice", sid: str = "c1",
            type_: str = "NAVIGATE", timeout: int = 30_000, **fields: Any) -> NewCommand:
    accepted = now_ms()
    payload = {"id": command_id, "type": type_, "timeout": timeout,
               "deadline": accepted + timeout, **fields}
    return NewCommand("t", subject, {"gw": CLIENT_GW, "sid": sid}, payload, accepted)


async def register(ledger: Ledger, extension: str = "e1", *, owner: str = "alice",
                   gateway: str = EXT_GW, sid: str = "x1", **record: Any) -> bool:
    await ledger.heartbeat(gateway, now_ms())
    return await ledger.register("t", extension, owner, gateway, sid,
                                 {"extensionId": extension, **record}, now_ms())


async def test_a_command_runs_on_an_extension_and_ends_once(bus: Bus, ledger: Ledger) -> None:
    assert await register(ledger)
    accepted = await ledger.accept(command("c-1", correlationId="k"))
    assert (accepted.outcome, accepted.extension) == ("dispatched", "e1")
    (delivery,) = await inbox(bus, EXT_GW)
    assert delivery["event"] == "command" and delivery["data"]["id"] == "c-1"
    assert delivery["origin"] == {"gw": CLIENT_GW, "sid": "c1"}
    assert await ledger.progress("t", "e1", "x1", "c-1", {"id": "c-1", "percent": 50})
    report = {"id": "c-1", "success": True, "data": {"title": "x"}}
    ended = await ledger.report("t", "e1", "x1", report, now_ms())
    assert ended is not None and (ended.type, ended.outcome) == ("NAVIGATE", "success")
    assert await ledger.report("t", "e1", "x1", report, now_ms()) is None  # a repeat: nothing
    assert not await ledger.progress("t", "e1", "x1", "c-1", {"id": "c-1", "percent": 60})
    events = [(m["event"], m["data"]) for m in await inbox(bus, CLIENT_GW)]
    assert events[0] == ("progress", {"id": "c-1", "percent": 50, "correlationId": "k"})
    ((event, result),) = events[1:]
    assert event == "result" and result["success"] is True and result["data"] == {"title": "x"}
    assert result["correlationId"] == "k" and result["metadata"]["extension"] == "e1"
    assert await ledger.counts("t") == (0, 0)


async def test_only_the_connection_given_the_command_may_report(bus: Bus,
                                                                ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("c-2"))
    forged = {"id": "c-2", "success": True, "data": "forged"}
    assert await ledger.report("t", "e1", "other-sid", forged, now_ms()) is None
    assert await ledger.report("t", "e2", "x1", forged, now_ms()) is None
    assert not await ledger.progress("t", "e1", "other-sid", "c-2", {"id": "c-2", "percent": 1})
    assert await results(bus, CLIENT_GW) == []


async def test_a_re_sent_id_never_runs_twice_and_is_answered(bus: Bus, ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("c-3"))
    again = await ledger.accept(command("c-3", sid="c9"))  # the client came back elsewhere
    assert again.outcome == "running"
    assert len(await inbox(bus, EXT_GW)) == 1
    await ledger.report("t", "e1", "x1", {"id": "c-3", "success": True}, now_ms())
    assert await results(bus, CLIENT_GW, "c1") == []
    assert [r["id"] for r in await results(bus, CLIENT_GW, "c9")] == ["c-3"]
    assert (await ledger.accept(command("c-3", sid="c10"))).outcome == "done"
    assert [r["id"] for r in await results(bus, CLIENT_GW, "c10")] == ["c-3"]


async def test_another_principal_gets_nothing_of_a_command(bus: Bus, ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("c-4", sessionId="s1"))
    assert (await ledger.accept(command("c-4", subject="mallory", sid="m1"))).outcome == "taken"
    assert await ledger.cancel("t", "mallory", "c-4", [], now_ms()) is None
    assert await ledger.cancel("t", "mallory", "missing", [], now_ms()) is None
    await ledger.report("t", "e1", "x1", {"id": "c-4", "success": True, "data": 1}, now_ms())
    assert (await ledger.accept(command("c-4", subject="mallory", sid="m1"))).outcome == "taken"
    assert await results(bus, CLIENT_GW, "m1") == []
    # A reader of the command's session is one of its audience.
    reader = command("c-4", subject="bob", sid="b1")
    reader = NewCommand(reader.tenant, reader.subject, reader.origin, reader.payload,
                        reader.accepted, ["s1"])
    assert (await ledger.accept(reader)).outcome == "done"


async def test_cancel_by_the_sender_or_a_session_writer(bus: Bus, ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("c-5", sessionId="s1"))
    ended = await ledger.cancel("t", "bob", "c-5", ["s1"], now_ms())
    assert ended is not None and ended.outcome == "CANCELLED"
    assert await ledger.cancel("t", "alice", "c-5", [], now_ms()) is None  # ended already
    (result,) = await results(bus, CLIENT_GW)
    assert result["error"]["code"] == "CANCELLED"
    assert [m["event"] for m in await inbox(bus, EXT_GW)] == ["command", "cancel"]


async def test_an_unrunnable_backlog_never_blocks_other_work(bus: Bus, ledger: Ledger) -> None:
    for n in range(3):
        assert (await ledger.accept(command(f"a-{n}", type_="NOBODY"))).outcome == "queued"
    assert (await ledger.accept(command("a-3", type_="NOBODY"))).outcome == "full"
    assert (await ledger.accept(command("b-1", subject="bob", type_="CLICK"))).outcome == \
        "queued"
    assert await ledger.counts("t") == (4, 4)
    assert await ledger.queued_by_type("t") == {"NOBODY": 3, "CLICK": 1}
    await register(ledger, capabilities=["CLICK"])
    ((event, data),) = [(m["event"], m["data"]["id"]) for m in await inbox(bus, EXT_GW)]
    assert (event, data) == ("command", "b-1")
    assert await ledger.counts("t") == (4, 3)
    assert await ledger.queued_by_type("t") == {"NOBODY": 3}
    assert await ledger.queued_by_type("another tenant") == {}


async def test_freed_capacity_takes_the_oldest_queued_command(bus: Bus, ledger: Ledger) -> None:
    await register(ledger, maxConcurrency=1)
    assert (await ledger.accept(command("q-1"))).outcome == "dispatched"
    assert (await ledger.accept(command("q-2"))).outcome == "queued"
    await ledger.report("t", "e1", "x1", {"id": "q-1", "success": True}, now_ms())
    assert [m["data"]["id"] for m in await inbox(bus, EXT_GW)] == ["q-1", "q-2"]


async def test_deadlines_end_each_command_once_across_routers(bus: Bus,
                                                             ledger: Ledger) -> None:
    await register(ledger, capabilities=["RUN"])
    await ledger.accept(command("d-1", type_="RUN", timeout=1))
    await ledger.accept(command("d-2", type_="WAIT", timeout=1))
    await asyncio.sleep(0.01)
    later = now_ms()
    sweeps = await asyncio.gather(*(ledger.expire(later) for _ in range(4)))
    ended = sorted((e.type, e.outcome) for sweep in sweeps for e in sweep.ended)
    assert ended == [("RUN", "TIMEOUT"), ("WAIT", "NO_EXTENSION")]
    codes = sorted(r["error"]["code"] for r in await results(bus, CLIENT_GW))
    assert codes == ["NO_EXTENSION", "TIMEOUT"]
    assert [m["event"] for m in await inbox(bus, EXT_GW)] == ["command", "cancel"]
    assert await ledger.report("t", "e1", "x1", {"id": "d-1", "success": True}, now_ms()) is None


async def test_an_extension_id_belongs_to_its_principal(bus: Bus, ledger: Ledger) -> None:
    assert await register(ledger, owner="alice", sid="x1")
    assert not await register(ledger, owner="mallory", sid="m1")
    await ledger.unregister("t", "e1", "x1", now_ms())
    assert not await register(ledger, owner="mallory", sid="m1")  # within the grace period
    assert await register(ledger, owner="alice", sid="x2")  # its owner comes back
    await ledger.unregister("t", "e1", "x2", now_ms())
    await asyncio.sleep(0.3)
    assert await register(ledger, owner="mallory", sid="m1")  # after it, the id is free


async def test_a_stale_disconnect_does_not_drop_a_newer_connection(bus: Bus,
                                                                  ledger: Ledger) -> None:
    await register(ledger, sid="x1")
    await register(ledger, sid="x2")
    await ledger.unregister("t", "e1", "x1", now_ms())
    assert [e["extensionId"] for e in await ledger.extensions("t")] == ["e1"]


async def test_commands_of_a_lost_extension_end_after_its_grace(bus: Bus,
                                                                ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("g-1"))
    await ledger.unregister("t", "e1", "x1", now_ms())
    assert (await ledger.expire_grace(now_ms())).ended == []
    await asyncio.sleep(0.25)
    (ended,) = (await ledger.expire_grace(now_ms())).ended
    assert ended.outcome == "EXTENSION_DISCONNECTED"
    (result,) = await results(bus, CLIENT_GW)
    assert result["error"]["code"] == "EXTENSION_DISCONNECTED"


async def test_an_extension_back_in_its_grace_keeps_its_commands(bus: Bus,
                                                                ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("g-2"))
    await ledger.unregister("t", "e1", "x1", now_ms())
    await register(ledger, sid="x2")
    await asyncio.sleep(0.25)
    assert (await ledger.expire_grace(now_ms())).ended == []
    assert await ledger.report("t", "e1", "x2", {"id": "g-2", "success": True}, now_ms())


async def read_inbox_once(bus: Bus, gateway: str) -> None:
    """What a gateway does: read its inbox in its group (here: once, without acknowledging)."""
    reader = bus.consume(p.gateway_inbox(gateway), INBOX_GROUP, gateway, start="0")
    await asyncio.wait_for(anext(reader), 5)
    await reader.aclose()


async def test_work_a_dead_gateway_never_read_goes_where_the_extension_is(
        bus: Bus, ledger: Ledger) -> None:
    await register(ledger, gateway=EXT_GW)
    await ledger.accept(command("r-1"))
    await read_inbox_once(bus, EXT_GW)  # r-1 may have reached the extension
    await ledger.accept(command("r-2"))  # r-2 was never read
    await ledger.bury(now_ms(), EXT_GW)  # the gateway dies
    await register(ledger, gateway=OTHER_GW, sid="x2")
    assert [m["data"]["id"] for m in await inbox(bus, OTHER_GW)] == ["r-2"]


async def test_unread_work_follows_the_extension_to_its_new_gateway(
        bus: Bus, ledger: Ledger) -> None:
    await register(ledger, gateway=EXT_GW)
    await ledger.accept(command("h-1"))
    await register(ledger, gateway=OTHER_GW, sid="x2")  # moved while h-1 waited unread
    assert [m["data"]["id"] for m in await inbox(bus, OTHER_GW)] == ["h-1"]
    assert await inbox(bus, EXT_GW) == []  # taken out: the old gateway cannot send it too


async def test_a_gateway_hands_back_work_for_an_extension_it_lost(bus: Bus,
                                                                 ledger: Ledger) -> None:
    await register(ledger, gateway=EXT_GW)
    await ledger.accept(command("h-2"))
    await ledger.unregister("t", "e1", "x1", now_ms())
    await read_inbox_once(bus, EXT_GW)  # read while the extension was away
    await ledger.handback("t", "e1", "h-2", EXT_GW)
    await ledger.handback("t", "e1", "h-2", EXT_GW)  # a repeat changes nothing
    await register(ledger, gateway=OTHER_GW, sid="x2")
    assert [m["data"]["id"] for m in await inbox(bus, OTHER_GW)] == ["h-2"]


async def test_a_large_result_is_delivered_whole_and_kept_without_data(
        bus: Bus, ledger: Ledger) -> None:
    await register(ledger)
    await ledger.accept(command("big-1"))
    await ledger.report("t", "e1", "x1", {"id": "big-1", "success": True, "data": "x" * 5000},
                        now_ms())
    await ledger.accept(command("big-1", sid="c2"))
    (first,) = await results(bus, CLIENT_GW, "c1")
    (kept,) = await results(bus, CLIENT_GW, "c2")
    assert first["data"] == "x" * 5000
    assert "data" not in kept and kept["metadata"]["dataDropped"] is True


async def test_failures_and_downloads_reach_the_system_channels(bus: Bus,
                                                               ledger: Ledger) -> None:
    await bus.store.add(p.channel_gateways_key("t", "errors"), CLIENT_GW)
    await register(ledger)
    await ledger.accept(command("f-1"))
    await ledger.report("t", "e1", "x1", {"id": "f-1", "success": False,
                                          "error": {"code": "E", "message": "m"}}, now_ms())
    (kept,) = await bus.history(p.channel_stream("t", "errors"), "0-0", 10)
    assert kept.message["message"]["type"] == "NAVIGATE"
    delivered = [m for m in await inbox(bus, CLIENT_GW) if m["t"] == p.DELIVER_TO_CHANNEL]
    assert delivered[0]["data"]["offset"] == kept.id


async def test_session_readers_get_results(bus: Bus, ledger: Ledger) -> None:
    sockets = p.session_sockets_key("t", "s1")
    await bus.store.add(sockets, p.pair(CLIENT_GW, "c1", "read,write"),
                        p.pair(OTHER_GW, "r1", "read"), p.pair(OTHER_GW, "w1", "write"))
    await register(ledger)
    await ledger.accept(command("s-1", sessionId="s1"))
    await ledger.report("t", "e1", "x1", {"id": "s-1", "success": True}, now_ms())
    assert [r["id"] for r in await results(bus, OTHER_GW, "r1")] == ["s-1"]
    assert await results(bus, OTHER_GW, "w1") == []
    assert len(await results(bus, CLIENT_GW, "c1")) == 1


async def test_redis_sweeps_skip_an_unreadable_entry(bus: Bus, ledger: Ledger) -> None:
    if bus.kind != "redis":
        pytest.skip("only Redis can hold a foreign entry (the in-process schedule is typed)")
    prefix = bus.prefix  # type: ignore[attr-defined]
    await bus.call("zadd", prefix + p.DEADLINES, {"t\x1fbad\x1fentry": 1})  # type: ignore
    await register(ledger)
    await ledger.accept(command("u-1", timeout=1))
    await asyncio.sleep(0.01)
    sweep = await ledger.expire(now_ms())
    assert sweep.unreadable == ["t\x1fbad\x1fentry"]
    assert [e.outcome for e in sweep.ended] == ["TIMEOUT"]


async def test_a_command_for_a_named_extension_waits_for_that_one(bus: Bus,
                                                                  ledger: Ledger) -> None:
    named = command("n-1", subject="bob", target={"extensionId": "e2"})
    assert (await ledger.accept(named)).outcome == "queued"
    assert (await ledger.accept(command("n-2"))).outcome == "queued"
    await register(ledger, "e1")  # takes the untargeted one only
    assert [m["data"]["id"] for m in await inbox(bus, EXT_GW)] == ["n-2"]
    await register(ledger, "e2", gateway=OTHER_GW, sid="x2")
    assert [m["data"]["id"] for m in await inbox(bus, OTHER_GW)] == ["n-1"]
    assert await ledger.counts("t") == (2, 0)


async def test_an_acknowledging_extension_gets_what_it_missed_once_more(
        bus: Bus, ledger: Ledger) -> None:
    await register(ledger, gateway=EXT_GW, acks=True)
    await ledger.accept(command("k-1"))
    await ledger.accept(command("k-2"))
    await read_inbox_once(bus, EXT_GW)  # both read, both maybe lost on the way
    await ledger.received("t", "e1", "x1", "k-1")  # k-1 arrived
    await ledger.received("t", "e1", "stale-sid", "k-2")  # not from its connection: ignored
    await ledger.unregister("t", "e1", "x1", now_ms())
    await register(ledger, gateway=EXT_GW, sid="x2", acks=True)
    (again,) = [m["data"] for m in (await inbox(bus, EXT_GW))[2:]]
    assert again["id"] == "k-2" and again["redelivered"] is True


async def test_a_command_read_by_a_live_gateway_is_not_sent_twice(bus: Bus,
                                                                  ledger: Ledger) -> None:
    await register(ledger, gateway=EXT_GW)  # no acks: a read command may have arrived
    await ledger.accept(command("k-3"))
    await read_inbox_once(bus, EXT_GW)
    await ledger.unregister("t", "e1", "x1", now_ms())
    await register(ledger, gateway=EXT_GW, sid="x2")
    assert len(await inbox(bus, EXT_GW)) == 1


async def test_a_gateway_given_up_for_dead_hears_it_on_its_next_beat(
        bus: Bus, ledger: Ledger) -> None:
    assert not await ledger.heartbeat(EXT_GW, now_ms())  # new
    assert await ledger.heartbeat(EXT_GW, now_ms())
    await register(ledger)
    await ledger.bury(now_ms(), EXT_GW)  # slow, not dead: buried all the same
    assert await ledger.extensions("t") == []
    assert not await ledger.heartbeat(EXT_GW, now_ms())  # told: it registers again
    assert await register(ledger)
    assert [e["extensionId"] for e in await ledger.extensions("t")] == ["e1"]
