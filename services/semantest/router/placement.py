"""Which extension runs a command: named target, else the capable one with the least work.

Only extensions of the command's tenant are ever looked at: the registry is keyed by tenant.
"""

from __future__ import annotations

from typing import Any

from semantest import protocol as p
from semantest.bus.base import Store


def capable(record: dict[str, Any], command_type: str) -> bool:
    capabilities = record.get("capabilities") or ["*"]
    return "*" in capabilities or command_type in capabilities


class Placement:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def pick(self, tenant: str, command: dict[str, Any]) -> str | None:
        target = command.get("target")
        wanted = target.get("extensionId") if isinstance(target, dict) else None
        if isinstance(wanted, str) and wanted:
            candidates = [wanted]
        else:
            candidates = sorted(await self.store.members(p.extensions_index(tenant)))
        if not candidates:
            return None
        records = await self.store.get_many([p.extension_key(tenant, c) for c in candidates])
        loads = await self.store.counters([p.extension_load_key(tenant, c) for c in candidates])
        best: tuple[int, str] | None = None
        gone = []
        for extension_id, record, load in zip(candidates, records, loads, strict=True):
            if record is None:
                gone.append(extension_id)
                continue
            limit = record.get("maxConcurrency")
            if not capable(record, command["type"]) or (limit and load >= limit):
                continue
            if best is None or load < best[0]:
                best = (load, extension_id)
        if gone and not wanted:
            await self.store.remove(p.extensions_index(tenant), *gone)
        return best[1] if best else None
