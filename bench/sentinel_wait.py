"""What waiting for a replica costs: ledger `accept` calls through Sentinels (each waits with
`WAIT 1 500`) against the same calls on the same primary without the wait.

Starts a primary, two replicas and three Sentinels on loopback (tests/faults/sentinel.py), one
registered extension, then per mode: N accepts one after another (latency) and N accepts 64 at
a time (throughput). Prints one line per mode. Run:
`.venv/bin/python -m bench.sentinel_wait [N]` (default 2000; about a minute).
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

from semantest.bus import open_bus
from semantest.bus.ledger import Ledger, Policy
from tests.faults.sentinel import PASSWORD, SentinelGroup
from tests.integration.test_ledger import command, register

CONCURRENCY = 64


async def accepts(ledger: Ledger, n: int, concurrency: int) -> tuple[list[float], float]:
    """(latency of each accept in ms, accepts per second)."""
    latencies: list[float] = []
    ids = iter(f"c-{uuid.uuid4().hex}" for _ in range(n))

    async def worker() -> None:
        for command_id in ids:
            started = time.perf_counter()
            await ledger.accept(command(command_id))
            latencies.append((time.perf_counter() - started) * 1000)

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, n / (time.perf_counter() - started)


def line(mode: str, latencies: list[float], rate: float) -> str:
    q = statistics.quantiles(latencies, n=100)
    return (f"{mode:<44} p50 {q[49]:6.3f} ms  p99 {q[98]:6.3f} ms  {rate:8.0f} accepts/s")


async def main(n: int) -> None:
    with tempfile.TemporaryDirectory() as workdir:
        group = SentinelGroup(Path(workdir))
        try:
            primary = group.primary()
            buses = {"through Sentinels, WAIT 1 (the hub's mode)": open_bus(
                group.url, PASSWORD, f"b{uuid.uuid4().hex[:6]}:"),
                "the same primary directly, no WAIT": open_bus(
                f"redis://127.0.0.1:{primary.port}/0", PASSWORD, f"b{uuid.uuid4().hex[:6]}:")}
            for mode, bus in buses.items():
                ledger = bus.ledger(Policy(max_queued=10**9))
                await register(ledger, maxConcurrency=0)
                await accepts(ledger, 200, 1)  # warm up: functions loaded, connections open
                for concurrency in (1, CONCURRENCY):
                    print(line(f"{mode}, {concurrency} at a time",
                               *await accepts(ledger, n, concurrency)), flush=True)
                await bus.aclose()
        finally:
            group.stop()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000))
