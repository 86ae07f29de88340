"""How Socket.IO packets are decoded here: orjson, no binary scan, a size and a depth limit.

An event larger than `websocket.maxPayload` is not decoded at all: it arrives as the event
`TOO_LARGE` (keeping its ack id and original name), so the sender gets `PAYLOAD_TOO_LARGE` and
stays connected. Frames far beyond the limit are cut off by the transport itself. An event
nested deeper than `websocket.maxDepth`, or carrying binary attachments, arrives as `REFUSED`
with the reason, so its sender gets `VALIDATION_FAILED` and stays connected too.

Bytes that no Socket.IO client sends are not events: `HubPacket` raises `ProtocolViolation`,
and engine.py closes the connection, as the Node server does.
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
"""An event named like python-socketio's own (`connect`, `disconnect`, `*`) or like one of our
markers: never dispatched to the handler of that name; its sender gets UNKNOWN_EVENT."""
REFUSED = "$payload-refused"
"""An event refused for the `message` it carries (too deep, binary): VALIDATION_FAILED."""
_MARKERS = frozenset({TOO_LARGE, INVALID, RESERVED, REFUSED})
_RESERVED_NAMES = frozenset({"connect", "disconnect", "*"}) | _MARKERS
TRANSPORT_LIMIT_FACTOR = 4
"""The transport closes a connection whose frame exceeds this many times maxPayload."""
BINARY_REFUSED = "binary payloads are not accepted; send JSON"

_EVENT_NAME = re.compile(r'\["((?:[^"\\]|\\.){1,128})"')
_FROM_CLIENTS = frozenset({packet.CONNECT, packet.DISCONNECT, packet.EVENT, packet.ACK,
                           packet.BINARY_EVENT, packet.BINARY_ACK})


class ProtocolViolation(Exception):
    """Bytes no Socket.IO client sends; the message says what, never echoing the bytes."""


class Marker(list[Any]):
    """A marker event made by this codec, never by a client (a client's is RESERVED)."""


def _name(data: str | bytes) -> str | None:
    text = data[:200] if isinstance(data, str) else data[:200].decode(errors="replace")
    name = _EVENT_NAME.match(text)
    return name.group(1) if name else None


def too_deep(value: Any, limit: int) -> bool:
    """Whether `value` nests more than `limit` lists and objects deep (`[]` is 1 deep).

    Breadth-first, one level at a time, so it stops at the first level beyond the limit."""
    level = [value] if isinstance(value, list | dict) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        below = []
        for node in level:
            for child in node.values() if type(node) is dict else node:
                if type(child) is dict or type(child) is list:
                    below.append(child)
        level = below
    return False


class OrjsonCodec:
    """python-socketio's `json` hook: orjson is several times faster than the standard library."""

    max_payload = 1_048_576
    max_depth = 32

    @classmethod
    def dumps(cls, obj: Any, **_: Any) -> str:
        return orjson.dumps(obj).decode()

    @classmethod
    def loads(cls, data: str | bytes, **_: Any) -> Any:
        if len(data) > cls.max_payload:
            return Marker([TOO_LARGE, {"event": _name(data), "size": len(data)}])
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            if "depth" not in str(exc):  # orjson stops at 1024 levels, far beyond max_depth
                return Marker([INVALID, {"event": _name(data)}])
            value = None
        # An event is `[name, payload]`: one level more than its payload. Counting brackets
        # (str.count runs in C) bounds the depth, so a typical payload is never walked.
        limit = cls.max_depth + 1
        brackets = (data.count("[") + data.count("{") if isinstance(data, str)
                    else data.count(b"[") + data.count(b"{"))
        if brackets > limit and (value is None or too_deep(value, limit)):
            return Marker([REFUSED, {"event": _name(data), "message": (
                f"the payload nests deeper than websocket.maxDepth ({cls.max_depth} levels)")}])
        return value


class HubPacket(packet.Packet):
    """We never emit bytes, so the per-packet scan for binary data (~10 µs) is skipped."""

    json = OrjsonCodec

    def __init__(self, packet_type: int = packet.EVENT, data: Any = None,
                 namespace: str | None = None, id: int | None = None,
                 binary: bool | None = None, encoded_packet: Any = None) -> None:
        if encoded_packet is None and binary is None:
            binary = False
        elif encoded_packet is not None and not encoded_packet:  # the library would not decode
            raise ProtocolViolation("an empty message")
        super().__init__(packet_type, data, namespace, id, binary, encoded_packet)

    def decode(self, encoded_packet: Any) -> int:
        """An event must be `[name, ...]` with a name of ours; anything else is renamed to a
        marker event, so a crafted packet reaches a handler that refuses it. A packet that is
        not Socket.IO at all raises ProtocolViolation."""
        if not isinstance(encoded_packet, str):
            raise ProtocolViolation("binary data outside a binary event")
        try:
            attachments = int(super().decode(encoded_packet))
        except ValueError:  # no packet type, a 10-digit attachment count, a 100-digit id
            raise ProtocolViolation("a message that is not a Socket.IO packet") from None
        kind = self.packet_type
        if kind not in _FROM_CLIENTS:
            raise ProtocolViolation(f"Socket.IO packet type {kind}, which clients never send")
        binary = kind in (packet.BINARY_EVENT, packet.BINARY_ACK)
        if binary and attachments < 1:
            raise ProtocolViolation("a binary packet without attachments")
        if kind in (packet.EVENT, packet.BINARY_EVENT):
            data = self.data
            if type(data) is Marker:
                pass
            elif not isinstance(data, list) or not data or not isinstance(data[0], str):
                self.data = Marker([INVALID, {"event": None}])
            elif data[0] in _RESERVED_NAMES:
                self.data = Marker([RESERVED, {"event": data[0]}])
            if kind == packet.BINARY_EVENT:
                name = self.data[0] if type(self.data) is not Marker else self.data[1]["event"]
                self.data = Marker([REFUSED, {"event": name, "message": BINARY_REFUSED}])
        return attachments

    def add_attachment(self, attachment: Any) -> bool:
        """Count an attachment without keeping it (we refuse binary events anyway); text where
        an attachment is due is a protocol violation, as in the Node parser."""
        if not isinstance(attachment, bytes):
            raise ProtocolViolation("text where a binary attachment was due")
        self.attachment_count -= 1
        return self.attachment_count == 0


def packet_class(max_payload: int, max_depth: int = OrjsonCodec.max_depth) -> type[HubPacket]:
    """A packet class whose decoder enforces both limits (python-socketio wants a class)."""
    codec = type("LimitedCodec", (OrjsonCodec,), {"max_payload": max_payload,
                                                  "max_depth": max_depth})
    return type("LimitedHubPacket", (HubPacket,), {"json": codec})
