"""One behaviour suite for both buses: the in-process bus and Redis streams on a real Redis."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from semantest.bus import Bus, open_bus, redis_streams


async def first(iterator: AsyncIterator[list], timeout: float = 5) -> list:
    return await asyncio.wait_for(anext(iterator), timeout)


async def test_messages_round_trip_through_encoding(bus: Bus) -> None:
    if bus.kind == "embedded":  # objects pass as they are; the codec mode shows the wire
        bus = open_bus("memory://?codec=1")
    reader = bus.tail("s", after="0-0")
    message = {"text": "héllo", "n": 1, "nested": {"list": [1, None, True]}}
    await bus.publish("s", message)
    (delivery,) = await first(reader)
    assert delivery.message == message and delivery.message is not message
    assert delivery.stream == "s"
    with pytest.raises(TypeError):
        await bus.publish("s", {"not json": object()})
    await reader.aclose()


async def test_a_group_shares_work_and_every_entry_goes_to_one_consumer(bus: Bus) -> None:
    one = bus.consume("work", "g", "c1")
    two = bus.consume("work", "g", "c2")
    start_one = asyncio.ensure_future(first(one))
    await asyncio.sleep(0.05)  # let the group exist before the first publish
    for n in range(10):
        await bus.publish("work", {"n": n})
    got_one = await start_one
    await bus.ack("work", "g", [d.id for d in got_one])
    seen = [d.message["n"] for d in got_one]
    if len(seen) < 10:
        got_two = await first(two)
        await bus.ack("work", "g", [d.id for d in got_two])
        seen += [d.message["n"] for d in got_two]
    assert sorted(seen) == list(range(10))
    await one.aclose()
    await two.aclose()


async def test_two_groups_each_get_everything(bus: Bus) -> None:
    a = bus.consume("fan", "a", "c")
    b = bus.consume("fan", "b", "c")
    reads = [asyncio.ensure_future(first(a)), asyncio.ensure_future(first(b))]
    await asyncio.sleep(0.05)
    await bus.publish("fan", {"x": 1})
    got = await asyncio.gather(*reads)
    assert [batch[0].message for batch in got] == [{"x": 1}, {"x": 1}]
    await a.aclose()
    await b.aclose()


async def test_unacked_work_goes_to_another_consumer(bus: Bus,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(redis_streams, "CLAIM_IDLE_MS", 200)
    monkeypatch.setattr(redis_streams, "CLAIM_EVERY_S", 0.1)
    dying = bus.consume("jobs", "g", "dying")
    read = asyncio.ensure_future(first(dying))
    await asyncio.sleep(0.05)
    await bus.publish("jobs", {"job": 1})
    (taken,) = await read
    await dying.aclose()  # dies without acking
    survivor = bus.consume("jobs", "g", "survivor")
    (again,) = await first(survivor, timeout=10)
    assert again.id == taken.id and again.message == {"job": 1}
    await bus.ack("jobs", "g", [again.id])
    await survivor.aclose()


async def test_a_reader_whose_connection_is_cut_reads_on_its_own_unacked_entries_first(
        bus: Bus) -> None:
    """Redis only (the in-process bus has no connection to cut)."""
    if not isinstance(bus, redis_streams.RedisStreamsBus):
        pytest.skip("the in-process bus has no connection")
    reader = bus.consume("cut", "g", "me", claim_idle_ms=600_000)  # no claim brings it back
    read = asyncio.ensure_future(first(reader))
    await asyncio.sleep(0.05)
    await bus.publish("cut", {"job": 1})
    (taken,) = await read  # read, never acknowledged
    again = asyncio.ensure_future(first(reader, timeout=10))
    killed = 0
    while not killed:  # the reader's blocked XREADGROUP, cut under it
        blocked = [c for c in await bus.redis.client_list()
                   if c["cmd"] == "xreadgroup" and "b" in c["flags"]]
        for client in blocked:
            killed += await bus.redis.client_kill_filter(_id=client["id"])
        await asyncio.sleep(0.02)
    (back,) = await again
    assert back.id == taken.id and back.message == {"job": 1}
    await bus.ack("cut", "g", [back.id])
    await bus.publish("cut", {"job": 2})
    (fresh,) = await first(reader)
    assert fresh.message == {"job": 2}
    await reader.aclose()


async def test_a_group_reader_makes_its_group_again_when_redis_lost_it(bus: Bus) -> None:
    """A Redis restarted without its data has no group: the reader makes it again."""
    if not isinstance(bus, redis_streams.RedisStreamsBus):
        pytest.skip("the in-process bus cannot lose its data")
    reader = bus.consume("lost", "g", "me", start="0")
    read = asyncio.ensure_future(first(reader))
    await bus.publish("lost", {"job": 1})
    (job,) = await read
    await bus.ack("lost", "g", [job.id])
    await bus.redis.delete(bus.prefix + "lost")  # the stream and its groups, as after a restart
    await bus.publish("lost", {"job": 2})
    (again,) = await first(reader, timeout=10)
    assert again.message == {"job": 2}
    await reader.aclose()


async def test_tail_fans_out_to_every_reader_from_now(bus: Bus) -> None:
    await bus.publish("news", {"old": True})
    readers = [bus.tail("news"), bus.tail("news")]
    pending = [asyncio.ensure_future(first(r)) for r in readers]
    # A reader starts from the moment it first reads, which no event announces: publish until
    # every reader has something; none may ever see what came before it existed.
    while not all(task.done() for task in pending):
        await bus.publish("news", {"new": True})
        await asyncio.wait(pending, timeout=0.05)
    for batch in await asyncio.gather(*pending):
        assert batch and all(d.message == {"new": True} for d in batch)
    for reader in readers:
        await reader.aclose()


async def test_history_replays_after_an_offset_and_maxlen_bounds_it(bus: Bus) -> None:
    ids = [await bus.publish("hist", {"n": n}, maxlen=1000) for n in range(5)]
    replay = await bus.history("hist", ids[1], 10)
    assert [d.message["n"] for d in replay] == [2, 3, 4]
    assert [d.id for d in replay] == ids[2:]
    assert [d.message["n"] for d in await bus.history("hist", "0-0", 2)] == [0, 1]
    for n in range(2000):
        await bus.publish("short", {"n": n}, maxlen=100)
    kept = await bus.history("short", "0-0", 5000)
    assert 100 <= len(kept) < 2000 and kept[-1].message == {"n": 1999}


async def test_store_values_claims_and_expiry(bus: Bus) -> None:
    store = bus.store
    assert await store.get("k") is None
    await store.put("k", {"v": 1})
    assert await store.get("k") == {"v": 1}
    assert await store.put_if_absent("k", {"v": 2}) is False
    assert await store.put_if_absent("fresh", {"v": 3}, ttl_ms=100) is True
    assert await store.get_many(["k", "missing", "fresh"]) == [{"v": 1}, None, {"v": 3}]
    await asyncio.sleep(0.25)
    assert await store.get("fresh") is None
    assert await store.delete("k", "missing") == 1


async def test_store_counters_sets_and_schedules(bus: Bus) -> None:
    store = bus.store
    assert await store.incr("c") == 1
    assert await store.incr("c", -3) == -2
    assert await store.counters(["c", "none"]) == [-2, 0]
    await store.add("set", "a", "b")
    await store.remove("set", "a")
    assert await store.members("set") == {"b"}
    await store.schedule("sched", "late", 300)
    await store.schedule("sched", "early", 100)
    await store.schedule("sched", "future", 10_000)
    assert await store.due("sched", 500) == ["early", "late"]
    assert await store.scheduled_count("sched") == 3
    results = await asyncio.gather(*(store.unschedule("sched", "early") for _ in range(5)))
    assert results.count(True) == 1  # exactly one claimant wins
    assert await store.due("sched", 500) == ["late"]


async def test_store_hits_count_in_a_window_that_closes(bus: Bus) -> None:
    store = bus.store
    hits = [await store.hit("rate", 300) for _ in range(3)]
    assert [count for count, _ in hits] == [1, 2, 3]
    assert all(0 < left <= 300 for _, left in hits)
    counts = await asyncio.gather(*(store.hit("busy", 10_000) for _ in range(20)))
    assert sorted(count for count, _ in counts) == list(range(1, 21))  # atomic under load
    await asyncio.sleep(0.4)
    assert (await store.hit("rate", 300))[0] == 1  # a new window
    assert await store.delete("busy") == 1
    assert (await store.hit("busy", 10_000))[0] == 1


async def test_ready(bus: Bus) -> None:
    assert await bus.ready() is True
    assert bus.kind in {"embedded", "redis"}


async def test_redis_bus_reports_not_ready_when_redis_is_unreachable() -> None:
    from tests.conftest import free_port

    unreachable = open_bus(f"redis://127.0.0.1:{free_port()}/0")
    assert await unreachable.ready() is False
    await unreachable.aclose()


def test_open_bus_refuses_unknown_schemes() -> None:
    with pytest.raises(ValueError, match=r"redis\.url"):
        open_bus("http://localhost")
