"""`bus`: every integration test runs on both buses, the in-process one and Redis streams."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from semantest.bus import Bus, open_bus
from tests.conftest import RedisServer


@pytest.fixture(params=["memory", "redis"])
async def bus(request: pytest.FixtureRequest, redis_prefix: str) -> AsyncIterator[Bus]:
    if request.param == "memory":
        made = open_bus("memory://")
    else:
        redis: RedisServer = request.getfixturevalue("redis_server")
        made = open_bus(redis.url, prefix=redis_prefix)
    yield made
    await made.aclose()
