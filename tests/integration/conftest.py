"""`bus`: every integration test runs on both buses, the in-process one and Redis streams (to
one Redis, and to a primary found through Sentinels)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import pytest

from semantest.bus import Bus, open_bus
from tests.conftest import RedisServer
from tests.faults.sentinel import SentinelGroup


@pytest.fixture(scope="session")
def sentinel_group(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SentinelGroup]:
    """A primary, two replicas, three Sentinels: the contracts hold through Sentinels too
    (every write waits for a replica there)."""
    group = SentinelGroup(tmp_path_factory.mktemp("sentinel"))
    yield group
    group.stop()


@pytest.fixture(params=["memory", "redis", "sentinel"])
async def bus(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Bus]:
    if request.param == "memory":
        made = open_bus("memory://")
    elif request.param == "sentinel":
        group: SentinelGroup = request.getfixturevalue("sentinel_group")
        made = open_bus(group.url, group.env["REDIS_PASSWORD"], redis_prefix)
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        made = open_bus(redis.url, prefix=redis_prefix)
    yield made
    await made.aclose()
