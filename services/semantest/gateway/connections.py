"""The sockets of this gateway: who is connected, in which role, for which principal."""

from __future__ import annotations

from dataclasses import dataclass, field

from semantest.protocol import Principal, Role


@dataclass(slots=True)
class Connection:
    sid: str
    principal: Principal
    role: Role
    extension_id: str | None = None
    record: dict[str, object] = field(default_factory=dict)
    sessions: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    """Session id → (its entry in the session's socket set, this socket's permissions)."""
    channels: set[str] = field(default_factory=set)
    awaiting: set[str] = field(default_factory=set)
    """Commands this client sent whose result has not reached it here (drain waits for them)."""


class Connections:
    def __init__(self) -> None:
        self.by_sid: dict[str, Connection] = {}
        self.extensions: dict[tuple[str, str], str] = {}
        """(tenant, extension id) → sid."""

    def __len__(self) -> int:
        return len(self.by_sid)

    def add(self, connection: Connection) -> None:
        self.by_sid[connection.sid] = connection
        if connection.extension_id is not None:
            key = (connection.principal.tenant, connection.extension_id)
            self.extensions[key] = connection.sid

    def remove(self, sid: str, restore: str | None = None) -> Connection | None:
        """Forget a socket; `restore` gives its extension id back to the socket that held it
        before (a refused takeover)."""
        connection = self.by_sid.pop(sid, None)
        if connection is not None and connection.extension_id is not None:
            key = (connection.principal.tenant, connection.extension_id)
            if self.extensions.get(key) == sid:
                del self.extensions[key]
                if restore is not None and restore in self.by_sid:
                    self.extensions[key] = restore
        return connection

    def extension_sid(self, tenant: str, extension_id: str) -> str | None:
        return self.extensions.get((tenant, extension_id))

    def count(self, role: Role, tenant: str | None = None) -> int:
        return sum(
            1
            for c in self.by_sid.values()
            if c.role is role and (tenant is None or c.principal.tenant == tenant)
        )
