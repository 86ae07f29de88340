"""What the hub sends back, as typed objects built from the wire dicts of docs/protocol.md.

Each keeps the dict it came from in `raw`, so a field the hub adds later is never lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Result:
    """A command's one result: `data` on success, `error` (`{code, message, details?}`) if not."""

    id: str
    success: bool
    data: Any = None
    error: dict[str, Any] | None = None
    correlation_id: str | None = None
    session_id: str | None = None
    extension: str | None = None
    """The extensionId that ran it (None when none did: NO_EXTENSION, a queue TIMEOUT)."""
    duration_ms: float | None = None
    timestamp: int | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Result:
        meta = body.get("metadata") or {}
        return cls(id=body["id"], success=bool(body.get("success")), data=body.get("data"),
                   error=body.get("error"), correlation_id=body.get("correlationId"),
                   session_id=body.get("sessionId"), extension=meta.get("extension"),
                   duration_ms=meta.get("duration"), timestamp=meta.get("timestamp"), raw=body)


@dataclass(frozen=True)
class Progress:
    id: str
    percent: float
    message: str | None = None
    data: Any = None
    correlation_id: str | None = None
    session_id: str | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Progress:
        return cls(id=body["id"], percent=body.get("percent", 0), message=body.get("message"),
                   data=body.get("data"), correlation_id=body.get("correlationId"),
                   session_id=body.get("sessionId"))


@dataclass(frozen=True)
class ChannelMessage:
    channel: str
    message: Any
    offset: str
    """Pass it as `since` to replay what came after this message."""
    timestamp: int | None = None
    publisher: str | None = None

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> ChannelMessage:
        return cls(channel=body["channel"], message=body.get("message"), offset=body["offset"],
                   timestamp=body.get("timestamp"), publisher=body.get("publisher"))


@dataclass(frozen=True)
class Session:
    id: str
    name: str
    permissions: tuple[str, ...]
    persistent: bool | None = None
    """Known when this socket created it; None after a join (the hub does not say)."""

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> Session:
        return cls(id=body["sessionId"], name=body.get("name", ""),
                   permissions=tuple(body.get("permissions") or ()),
                   persistent=body.get("persistent"))
