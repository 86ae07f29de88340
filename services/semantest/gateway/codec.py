"""How Socket.IO packets are encoded here: orjson, no binary scan, and a payload limit.

An event larger than `websocket.maxPayload` is not decoded at all: it arrives as the event
`TOO_LARGE` (keeping its ack id and original name), so the sender gets `PAYLOAD_TOO_LARGE` and
stays connected. Frames far beyond the limit are cut off by the transport itself.
"""

from __future__ import annotations

import re
from typing import Any

import orjson
from socketio import packet

TOO_LARGE = "$payload-too-large"
INVALID = "$payload-invalid"
"""An event whose payload is not JSON (say `NaN` or `Infinity`, which Python's serializer
writes) or not `[name, ...]`: its sender gets VALIDATION_FAILED, like any other bad payload."""
RESERVED = "$reserved-name"
"""An event named like python-socketio's own (`connect`, `disconnect`, `*`): never dispatched
to the handler of that name; its sender gets UNKNOWN_EVENT."""
_RESERVED_NAMES = frozenset({"connect", "disconnect", "*"})
TRANSPORT_LIMIT_FACTOR = 4
"""The transport closes a connection whose frame exceeds this many times maxPayload."""

_EVENT_NAME = re.compile(r'\["((?:[^"\\]|\\.){1,128})"')


class OrjsonCodec:
    """python-socketio's `json` hook: orjson is several times faster than the standard library."""

    max_payload = 1_048_576

    @classmethod
    def dumps(cls, obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @classmethod
    def loads(cls, data: str | bytes, **_: Any) -> Any:
        if len(data) > cls.max_payload:
            text = data[:200] if isinstance(data, str) else data[:200].decode(errors="replace")
            name = _EVENT_NAME.match(text)
            return [TOO_LARGE, {"event": name.group(1) if name else None, "size": len(data)}]
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            text = data[:200] if isinstance(data, str) else data[:200].decode(errors="replace")
            name = _EVENT_NAME.match(text)
            return [INVALID, {"event": name.group(1) if name else None}]


class HubPacket(packet.Packet):
    """We never emit bytes, so the per-packet scan for binary data (~10 µs) is skipped."""

    json = OrjsonCodec

    def __init__(self, packet_type: int = packet.EVENT, data: Any = None,
                 namespace: str | None = None, id: int | None = None,
                 binary: bool | None = None, encoded_packet: Any = None) -> None:
        if encoded_packet is None and binary is None:
            binary = False
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def decode(self, encoded_packet: Any) -> int:
        """An event must be `[name, ...]` with a name of ours; anything else is renamed to a
        marker event, so a crafted packet reaches a handler that refuses it."""
        attachments = int(super().decode(encoded_packet))
        if self.packet_type in (packet.EVENT, packet.BINARY_EVENT):
            data = self.data
            if not isinstance(data, list) or not data or not isinstance(data[0], str):
                self.data = [INVALID, {"event": None}]
            elif data[0] in _RESERVED_NAMES:
                self.data = [RESERVED, {"event": data[0]}]
        return attachments


def packet_class(max_payload: int) -> type[HubPacket]:
    """A packet class whose decoder enforces `max_payload` (python-socketio wants a class)."""
    codec = type("LimitedCodec", (OrjsonCodec,), {"max_payload": max_payload})
    return type("LimitedHubPacket", (HubPacket,), {"json": codec})
