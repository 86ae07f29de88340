"""The router role: the clock of the command path.

Gateways place commands and record results through the ledger themselves (one atomic step each,
no hop through a router). What needs a clock runs here: deadlines (TIMEOUT, NO_EXTENSION),
extensions gone past their grace period (EXTENSION_DISCONNECTED), and gateways that stopped
beating (their extensions get the grace period of a clean disconnect). Each sweep step is one
atomic ledger operation, so any number of routers sweep side by side: an entry is ended by
exactly one of them, and a router that stalls or dies mid-sweep leaves nothing half done.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from semantest import protocol as p
from semantest.bus.ledger import SWEEP_LIMIT, Ledger, Sweep
from semantest.telemetry import Metrics, command_fields

log = logging.getLogger("semantest.router")

TICK_S = 0.1
BURY_EVERY_TICKS = 20
MAX_REMEMBERED_UNREADABLE = 1000



class Router:
    def __init__(self, ledger: Ledger, metrics: Metrics) -> None:
        self.ledger = ledger
        self.metrics = metrics
        metrics.bus_errors.add(0, {"stream": "schedules"})  # a series from the start, for rate()
        self._unreadable: set[str] = set()
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()

    def record(self, sweep: Sweep, started_ns: int) -> None:
        for ended in sweep.ended:
            self.metrics.command_ended(ended.type, ended.outcome, ended.duration_ms)
            log.debug("command %s ended %s after %d ms", ended.id, ended.outcome,
                      ended.duration_ms, extra=command_fields(ended.id, ended.traceparent))
        self.metrics.tracing.record_each(  # in each ended command's trace
            "command expire", started_ns, [e.traceparent for e in sweep.ended],
            [{"semantest.command.id": e.id, "semantest.command.type": e.type,
              "semantest.command.outcome": e.outcome} for e in sweep.ended])
        for entry in sweep.unreadable:  # dropped by the sweep; said once, not every tick
            if entry not in self._unreadable and len(self._unreadable) < MAX_REMEMBERED_UNREADABLE:
                self._unreadable.add(entry)
                log.warning("dropped an unreadable schedule entry %r", entry[:200])

    async def sweep(self, ticks: int) -> None:
        now = p.now_ms()
        for step in (self.ledger.expire, self.ledger.expire_grace):
            while True:  # a full batch means more may be due
                started_ns = time.time_ns()
                sweep = await step(now)
                self.record(sweep, started_ns)
                if len(sweep.ended) + len(sweep.unreadable) < SWEEP_LIMIT:
                    break
        if ticks % BURY_EVERY_TICKS == 0:
            await self.ledger.bury(now)

    async def run(self) -> None:
        ticks = 0
        while not self._stopping.is_set():
            try:
                await self.sweep(ticks)
            except Exception:
                self.metrics.bus_errors.add(1, {"stream": "schedules"})
                log.exception("schedule sweep failed")
            ticks += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), TICK_S)
        self._stopped.set()

    async def stop(self) -> None:
        """Drain: finish the sweep under way (each step is atomic anyway), then stop."""
        self._stopping.set()
        await self._stopped.wait()


@contextlib.asynccontextmanager
async def component(router: Router) -> AsyncIterator[Router]:
    """Run a router for as long as the context is open."""
    task = asyncio.create_task(router.run())
    log.info("router sweeping deadlines every %.1f s", TICK_S)
    try:
        yield router
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
