"""The `status` answer, scoped to the caller's tenant; it names no credential."""

from __future__ import annotations

from semantest import protocol as p
from semantest.bus.base import Message
from semantest.bus.ledger import Ledger
from semantest.gateway.connections import Connections
from semantest.protocol import Role
from semantest.telemetry import uptime


class StatusReport:
    def __init__(self, ledger: Ledger, connections: Connections) -> None:
        self.ledger = ledger
        self.connections = connections

    async def for_tenant(self, tenant: str) -> Message:
        extensions = [
            {"extensionId": r["extensionId"], "name": r.get("name"), "version": r.get("version"),
             "capabilities": r.get("capabilities"), "inFlight": r["inFlight"]}
            for r in await self.ledger.extensions(tenant)
        ]
        in_flight, queued = await self.ledger.counts(tenant)
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
