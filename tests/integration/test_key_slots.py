"""Cluster-ready keys: with a hash tag in the key prefix, every key the hub writes (ledger,
streams, store) hashes to one Redis Cluster slot, so no atomic step crosses slots."""

from __future__ import annotations

import uuid

from redis.crc import key_slot

from semantest.bus import open_bus
from semantest.bus.ledger import Policy
from semantest.bus.redis_streams import RedisStreamsBus
from tests.conftest import RedisServer
from tests.integration.test_ledger import command, register


async def test_a_tagged_prefix_puts_every_key_in_one_slot(redis_server: RedisServer) -> None:
    prefix = f"{{hub-{uuid.uuid4().hex[:6]}}}:"
    bus = open_bus(redis_server.url, prefix=prefix)
    assert isinstance(bus, RedisStreamsBus)
    try:
        ledger = bus.ledger(Policy(grace_ms=1))
        assert await register(ledger)
        await ledger.accept(command("c-1", sessionId="s-1"))
        await ledger.accept(command("c-2", type_="NOBODY_RUNS_THIS"))
        await ledger.report("t", "e1", "x1", {"id": "c-1", "success": False,
                                               "error": {"code": "X"}}, 1)
        await ledger.unregister("t", "e1", "x1", 1)
        await ledger.bury(10**13)
        await bus.store.put("session:t:s-1", {"name": "s"})
        await bus.publish("auth:requests", {"r": 1})
        keys = [key async for key in bus.redis.scan_iter(match=f"{prefix}*")]
        assert len(keys) >= 12  # command, schedules, queues, registry, inboxes, store, streams
        assert {key_slot(key) for key in keys} == {key_slot(prefix.encode())}
    finally:
        await bus.aclose()
