"""The Redis bus through Sentinels: a failover under a blocking reader, the auto-pipeline and the
ledger's Redis Functions; a dead Sentinel; writes held until a replica has them.

Real processes: a primary, two replicas and three Sentinels (tests/faults/sentinel.py). The
bus and ledger contracts also run over Sentinels as a whole (the `sentinel` bus in conftest).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from semantest import protocol as p
from semantest.bus import open_bus
from semantest.bus.ledger import Policy
from semantest.bus.ledger_redis import LIBRARY
from semantest.bus.redis_streams import NotReplicated, RedisStreamsBus, SentinelTarget
from tests.faults.sentinel import SentinelGroup
from tests.integration.test_ledger import EXT_GW, command, register

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def group(tmp_path: Path) -> Iterator[SentinelGroup]:
    made = SentinelGroup(tmp_path)
    yield made
    made.stop()


@pytest.fixture
async def bus(group: SentinelGroup, redis_prefix: str) -> AsyncIterator[RedisStreamsBus]:
    made = open_bus(group.url, group.env["REDIS_PASSWORD"], redis_prefix)
    assert isinstance(made, RedisStreamsBus)
    yield made
    await made.aclose()


def test_the_sentinel_url_is_read_back_as_it_was_built() -> None:
    target = SentinelTarget.parse("redis+sentinel://:p%40ss%2F@a:26379,[::1]:5/hub%20one")
    assert target == SentinelTarget([("a", 26379), ("::1", 5)], "hub one", "p@ss/")
    assert SentinelTarget.parse("redis+sentinel://s:1/m").password is None


async def test_a_failover_under_load_loses_no_step(group: SentinelGroup,
                                                   bus: RedisStreamsBus) -> None:
    """A blocking group reader and the auto-pipeline carry on on the promoted replica; the
    ledger's functions are there already (replicated), and every write made before the kill
    is on the new primary (each waited for a replica)."""
    got: list[str] = []

    all_read = asyncio.Event()

    async def read() -> None:
        async for batch in bus.consume("s", "g", "c1", start="0"):
            got.extend(delivery.message["n"] for delivery in batch)
            await bus.ack("s", "g", [delivery.id for delivery in batch], delete=True)
            if len(got) >= 100:
                all_read.set()

    reader = asyncio.create_task(read())
    try:
        await failover_under_load(group, bus)
        await asyncio.wait_for(all_read.wait(), 20)
    finally:
        reader.cancel()
        await asyncio.gather(reader, return_exceptions=True)
    assert sorted(got) == sorted([f"a{i}" for i in range(50)] + [f"b{i}" for i in range(50)])


async def failover_under_load(group: SentinelGroup, bus: RedisStreamsBus) -> None:
    ledger = bus.ledger(Policy())
    assert await register(ledger)
    assert (await ledger.accept(command("before"))).outcome == "dispatched"
    written = [await bus.publish("s", {"n": f"a{i}"}) for i in range(50)]
    assert len(written) == 50
    _, new, took = await asyncio.to_thread(group.kill_primary)
    with new.client() as client:  # before any call of ours reached it
        assert LIBRARY.splitlines()[0].split("name=")[1] in str(client.function_list())
    started = time.monotonic()
    after = await asyncio.wait_for(
        asyncio.gather(*(bus.publish("s", {"n": f"b{i}"}) for i in range(50))), 30)
    assert len(after) == 50
    assert (await ledger.accept(command("after"))).outcome == "dispatched"
    assert (await ledger.accept(command("before"))).outcome == "running"  # kept, not re-run
    print(f"promotion visible {took:.1f}s after the kill; writes resumed "
          f"{time.monotonic() - started:.1f}s after it")


async def test_the_old_primary_comes_back_as_a_replica(group: SentinelGroup,
                                                       bus: RedisStreamsBus) -> None:
    await bus.store.put("k", {"v": 1})
    old, new, _ = await asyncio.to_thread(group.kill_primary)
    old.start()
    await asyncio.to_thread(group.wait_replica, old)
    with old.client() as client:
        assert client.info("replication")["master_port"] == new.port
    assert await bus.store.get("k") == {"v": 1}
    await bus.store.put("k", {"v": 2})  # a write confirmed by a replica, maybe the old primary
    assert await bus.store.get("k") == {"v": 2}


async def test_a_dead_sentinel_does_not_slow_the_way_to_the_primary(
        group: SentinelGroup, redis_prefix: str) -> None:
    group.sentinels[0].kill()  # the first one asked
    bus = open_bus(group.url, group.env["REDIS_PASSWORD"], redis_prefix)
    try:
        assert await bus.ready()  # one second at most, around a fresh resolve
        await asyncio.to_thread(group.kill_primary)  # two Sentinels still make a quorum
        await asyncio.wait_for(bus.store.put("k", {"v": 1}), 15)
        assert await bus.ready()
    finally:
        await bus.aclose()


async def test_acknowledged_steps_wait_for_a_replica_and_fail_when_none_confirms(
        group: SentinelGroup, bus: RedisStreamsBus) -> None:
    """Without a replica an acknowledged step would not survive a failover: it fails instead
    of being acknowledged (the caller's client re-sends; the step is idempotent). Other
    writes and reads go on."""
    ledger = bus.ledger(Policy())
    assert await register(ledger)
    for node in group.data[1:]:
        node.kill()
    with pytest.raises(NotReplicated, match="0 of 1 replicas confirmed within 500 ms"):
        await ledger.accept(command("c-1"))
    with pytest.raises(NotReplicated):
        await register(ledger, "e2")
    await bus.store.put("k", {"v": 2})  # not acknowledged to anyone: no wait
    assert await bus.store.get("k") == {"v": 2}
    # the accept did run on the primary: a re-send finds it and does not run it again
    with pytest.raises(NotReplicated):
        await ledger.accept(command("c-1"))
    assert (await bus.redis.hget(bus.prefix + "cmd:t:c-1", "st")) == b"dispatched"
    # a read entry is not handed on either: the reader reads it again until a replica has it
    reads = bus.consume(p.gateway_inbox(EXT_GW), "gw", "me", start="0")
    handed_on = asyncio.ensure_future(anext(reads))
    try:
        done, _ = await asyncio.wait([handed_on], timeout=3)
        assert not done, "an entry was handed on although no replica confirmed its read"
        group.data[1].start()
        await asyncio.to_thread(group.wait_replica, group.data[1])
        batch = await asyncio.wait_for(handed_on, 10)
        assert [d.message["data"]["id"] for d in batch] == ["c-1"]
    finally:
        handed_on.cancel()
        await reads.aclose()
