"""The `status` answer, scoped to the caller's tenant; it names no credential."""

from __future__ import annotations

from semantest import protocol as p
from semantest.bus.base import Message, Store
from semantest.gateway.connections import Connections
from semantest.protocol import Role
from semantest.telemetry import uptime


class StatusReport:
    def __init__(self, store: Store, connections: Connections) -> None:
        self.store = store
        self.connections = connections

    async def for_tenant(self, tenant: str) -> Message:
        ids = sorted(await self.store.members(p.extensions_index(tenant)))
        records = await self.store.get_many([p.extension_key(tenant, i) for i in ids])
        loads = await self.store.counters([p.extension_load_key(tenant, i) for i in ids])
        extensions = [
            {"extensionId": i, "name": r.get("name"), "version": r.get("version"),
             "capabilities": r.get("capabilities"), "inFlight": load}
            for i, r, load in zip(ids, records, loads, strict=True)
            if r is not None
        ]
        (in_flight,) = await self.store.counters([p.tenant_in_flight_key(tenant)])
        queued = await self.store.scheduled_count(p.queue_key(tenant))
        return {
            "status": "healthy",
            "version": p.VERSION,
            "uptime": uptime(),
            "connections": {
                "clients": self.connections.count(Role.CLIENT, tenant),
                "extensions": len(extensions),
            },
            "extensions": extensions,
            "commands": {"inFlight": in_flight, "queued": queued},
        }
