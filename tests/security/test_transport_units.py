"""Unit checks behind test_transport.py: the depth limit, frame checks, and library pins."""

from __future__ import annotations

import inspect
from typing import Any

import orjson
import pytest
import socketio

from semantest.config import Websocket
from semantest.gateway import codec, engine


def nested(depth: int) -> Any:
    value: Any = 0
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


def test_depth_counts_lists_and_objects() -> None:
    assert [codec.too_deep(v, 1) for v in (0, "[[[", [], {}, [1, "x"])] == [False] * 5
    assert codec.too_deep([[]], 1) and not codec.too_deep([[]], 2)
    for depth in (1, 5, 32, 200):
        assert not codec.too_deep(nested(depth), depth) and codec.too_deep(nested(depth), depth - 1)
    assert codec.too_deep([1, {"a": [2, {"b": [[3]]}]}, 4], 5)  # the deepest branch counts


@pytest.mark.parametrize("limit", [1, 32, 200])
def test_the_codec_refuses_payloads_deeper_than_max_depth(limit: int) -> None:
    loads = codec.packet_class(1 << 24, limit).json.loads
    at_limit = orjson.dumps(["command", nested(limit)]).decode()
    assert loads(at_limit) == ["command", nested(limit)]
    for frame in (orjson.dumps(["command", nested(limit + 1)]).decode(),
                  '["command",' + "[" * 3000 + "]" * 3000 + "]"):  # beyond orjson's own limit
        marker = loads(frame)
        assert type(marker) is codec.Marker and marker[0] == codec.REFUSED
        assert marker[1]["event"] == "command"
        assert f"websocket.maxDepth ({limit} levels)" in marker[1]["message"]
    # Brackets inside strings are not nesting.
    assert loads('["command",{"text":"' + "[{" * 500 + '"}]') == ["command", {"text": "[{" * 500}]


def test_whatever_the_parser_accepts_the_bus_can_encode() -> None:
    """orjson refuses to encode more than 254 levels; the deepest payload the config allows,
    wrapped in far more envelope levels than the bus and the ledger add, still encodes."""
    deepest = Websocket.model_fields["max_depth"].metadata
    limit = next(m.le for m in deepest if hasattr(m, "le"))
    message: Any = {"type": "X", "data": nested(limit - 1)}
    for _ in range(20):
        message = {"envelope": message}
    assert orjson.loads(orjson.dumps(message)) == message


def test_binary_events_are_refused_without_keeping_their_attachments() -> None:
    packet = codec.packet_class(1 << 20)(encoded_packet='52-3["upload",{"_placeholder":true,'
                                                       '"num":0},{"_placeholder":true,"num":1}]')
    assert packet.attachment_count == 2 and packet.data[0] == codec.REFUSED
    assert packet.data[1] == {"event": "upload", "message": codec.BINARY_REFUSED}
    assert packet.add_attachment(b"a") is False and packet.add_attachment(b"b") is True
    assert packet.attachments == []
    with pytest.raises(codec.ProtocolViolation):
        codec.packet_class(1 << 20)(encoded_packet='51-["x"]').add_attachment('42["ping"]')


@pytest.mark.parametrize("packet", [b"\x00", "", "x", "9[]", "7", '4{"a":1}', '5["x"]',
                                    "2" + "1" * 101 + '["x"]'])
def test_packets_no_client_sends_are_protocol_violations(packet: Any) -> None:
    """Socket.IO packets (the Engine.IO type already removed): binary outside a binary event,
    empty, no type, an unknown type, CONNECT_ERROR, a binary event without attachments, an
    ack id of over 100 digits."""
    with pytest.raises(codec.ProtocolViolation):
        codec.packet_class(1 << 20)(encoded_packet=packet)


def test_bad_events_are_markers_not_violations() -> None:
    make = codec.packet_class(1 << 20)
    assert make(encoded_packet='2["ping",NaN]').data[0] == codec.INVALID
    assert make(encoded_packet='2{"a":1}').data[0] == codec.INVALID
    for forged in (codec.TOO_LARGE, codec.REFUSED, codec.INVALID, "connect"):
        assert make(encoded_packet=f'2["{forged}",{{"message":"x"}}]').data[0] == codec.RESERVED


def test_engineio_frame_and_polling_body_checks() -> None:
    assert all(map(engine.is_engineio_packet, ["0", "3", "4hello", "6", "baGk="]))
    assert not any(map(engine.is_engineio_packet, ["", "7", "x", "ba"]))
    assert engine.polling_problem(b'42["ping"]\x1e3') is None
    for body in (b"\xff", b"x", b"9", b"0", b"2", b"6", b'42["a"]\x1e', b"ba"):
        assert engine.polling_problem(body) is not None, body


def test_the_library_message_engine_relies_on_is_still_there() -> None:
    source = inspect.getsource(socketio.AsyncServer._handle_eio_message)
    assert f"raise ValueError('{engine._BINARY_BEFORE_CONNECT}')" in source
