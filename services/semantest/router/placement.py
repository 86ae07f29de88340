"""Which extension runs a command: named target, else the capable one with the least work.

Only extensions of the command's tenant are ever looked at: the registry is keyed by tenant.
"""

from __future__ import annotations

import asyncio
from typing import Any

from semantest import protocol as p
from semantest.bus.base import Store

Choice = tuple[str, dict[str, Any]]
"""The chosen extension's id and its registry record."""

AFFINITY_TTL_MS = 86_400_000
"""A session's extension is forgotten a day after its last command was placed."""


def capable(record: dict[str, Any], command_type: str) -> bool:
    capabilities = record.get("capabilities") or ["*"]
    return "*" in capabilities or command_type in capabilities


class Placement:
    def __init__(self, store: Store) -> None:
        self.store = store

    async def pick(self, tenant: str, command: dict[str, Any]) -> Choice | None:
        """Session affinity first, then a named target, then the least loaded capable one."""
        session_id = command.get("sessionId")
        if session_id:
            affinity = await self.store.get(p.session_affinity_key(tenant, session_id))
            if affinity is not None:
                chosen = await self._choose(tenant, command, [affinity["ext"]], prune=False)
                if chosen is not None:
                    return chosen
        target = command.get("target")
        wanted = target.get("extensionId") if isinstance(target, dict) else None
        if isinstance(wanted, str) and wanted:
            chosen = await self._choose(tenant, command, [wanted], prune=False)
        else:
            everyone = sorted(await self.store.members(p.extensions_index(tenant)))
            chosen = await self._choose(tenant, command, everyone, prune=True)
        if chosen is not None and session_id:
            await self.store.put(p.session_affinity_key(tenant, session_id), {"ext": chosen[0]},
                                 ttl_ms=AFFINITY_TTL_MS)
        return chosen

    async def _choose(self, tenant: str, command: dict[str, Any], candidates: list[str],
                      prune: bool) -> Choice | None:
        if not candidates:
            return None
        records, loads = await asyncio.gather(
            self.store.get_many([p.extension_key(tenant, c) for c in candidates]),
            self.store.counters([p.extension_load_key(tenant, c) for c in candidates]),
        )
        best: tuple[int, str, dict[str, Any]] | None = None
        gone = []
        for extension_id, record, load in zip(candidates, records, loads, strict=True):
            if record is None:
                gone.append(extension_id)
                continue
            limit = record.get("maxConcurrency")
            if not capable(record, command["type"]) or (limit and load >= limit):
                continue
            if best is None or load < best[0]:
                best = (load, extension_id, record)
        if gone and prune:
            await self.store.remove(p.extensions_index(tenant), *gone)
        return (best[1], best[2]) if best else None
