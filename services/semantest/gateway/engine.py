"""The gateway's Engine.IO and Socket.IO servers: python-socketio, strict about the transport.

The libraries forgive bytes that no client sends (a traceback and a connection left open, or
a packet taken for something else). Here such a protocol violation closes the offending
connection with one warning line, as the Node server does:

- a websocket frame or a polling body that is no Engine.IO packet (an unknown type, nothing,
  bad base64), and on polling the packet types only a server sends;
- an Engine.IO message that is no Socket.IO packet, a Socket.IO packet type clients never
  send, binary data outside a binary event, text where an attachment is due (codec.py);
- an event or an ack outside a Socket.IO connection (before the CONNECT, after a refused one).

Bad *events* are not violations: codec.py and the handlers answer them with an `error` event and
the ack, and the sender stays (DESIGN §3.3). Binary events are answered that way too.

Anonymous state is bounded: every open Engine.IO socket counts against `server.maxConnections`
plus a small headroom (a handshake beyond it gets 503; a CONNECT beyond maxConnections gets the
contract's `connect_error` TOO_MANY_CONNECTIONS), at most `server.maxHandshakesPerIp` sockets
per client IP may wait for their CONNECT (429), and a socket without a CONNECT after
`server.connectTimeout` ms is closed. A polling POST larger than the transport limit gets 413
(411 without a length). Every such answer is `{error: {code, message}}`.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import engineio
import orjson
import socketio
from aiohttp import web
from engineio import packet as eio_packet
from engineio import payload as eio_payload

from semantest.config import Settings
from semantest.gateway import codec, limits
from semantest.protocol import ErrorCode, HubError

log = logging.getLogger("semantest.gateway")

BODY = "semantest.engineio.body"
"""Where a polling POST body read (and checked) here waits for engineio to read it."""
HEADROOM_MIN = 16
"""Open sockets allowed beyond maxConnections (at least this, or a tenth): room to answer a
CONNECT over the limit with `connect_error`, bounded."""
_ENGINEIO_TYPES = frozenset("0123456")
_POLLING_FROM_CLIENTS = frozenset({eio_packet.CLOSE, eio_packet.PONG, eio_packet.MESSAGE,
                                   eio_packet.UPGRADE})
_BINARY_BEFORE_CONNECT = "Unexpected binary packet"
"""What python-socketio raises for a binary event outside a connection (pinned by a test)."""


class Admission:
    """The Engine.IO sockets open on this gateway, and those still waiting for a CONNECT."""

    def __init__(self, settings: Settings) -> None:
        self.max_connections = settings.server.max_connections
        self.headroom = max(HEADROOM_MIN, self.max_connections // 10)
        self.max_waiting_per_ip = settings.server.max_handshakes_per_ip
        self.trust_proxy = settings.rate_limiting.trust_proxy
        self.ip_of: dict[str, str] = {}
        """Every open Engine.IO socket → its client IP."""
        self.waiting: dict[str, asyncio.TimerHandle] = {}
        """Sockets without a Socket.IO connection yet → their connect timeout."""
        self.waiting_per_ip: Counter[str] = Counter()

    def ip(self, request: Any) -> str:
        if not isinstance(request, web.BaseRequest):
            return "unknown"
        return limits.client_ip(request.remote, request.headers.get("X-Forwarded-For"),
                                self.trust_proxy)

    def refusal(self, request: web.BaseRequest) -> tuple[int, HubError] | None:
        """Why a new handshake from this request must be refused, if it must. Connected
        sockets are held to maxConnections at the Socket.IO CONNECT, where a client gets the
        contract's `connect_error` TOO_MANY_CONNECTIONS; open sockets, connected or not, may
        exceed it only by the headroom that lets that refusal be said."""
        if len(self.ip_of) >= self.max_connections + self.headroom:
            return 503, HubError(ErrorCode.TOO_MANY_CONNECTIONS,
                                 "this gateway is at MAX_CONNECTIONS")
        if self.waiting_per_ip[self.ip(request)] >= self.max_waiting_per_ip:
            return 429, HubError(ErrorCode.TOO_MANY_CONNECTIONS,
                                 "too many connections from this address have not connected "
                                 "yet (server.maxHandshakesPerIp)")
        return None

    def opened(self, sid: str, ip: str, timer: asyncio.TimerHandle) -> None:
        self.ip_of[sid] = ip
        self.waiting[sid] = timer
        self.waiting_per_ip[ip] += 1

    def connected(self, sid: str) -> None:
        timer = self.waiting.pop(sid, None)
        if timer is not None:
            timer.cancel()
            self._leave(self.ip_of.get(sid, "unknown"))

    def closed(self, sid: str) -> None:
        self.connected(sid)
        self.ip_of.pop(sid, None)

    def _leave(self, ip: str) -> None:
        self.waiting_per_ip[ip] -= 1
        if self.waiting_per_ip[ip] <= 0:
            del self.waiting_per_ip[ip]


def is_engineio_packet(frame: str) -> bool:
    """Whether engineio can decode this text frame into a packet it knows."""
    if not frame:
        return False
    if frame[0] in _ENGINEIO_TYPES:
        return True
    if frame[0] != "b":
        return False
    try:
        base64.b64decode(frame[1:])
    except (binascii.Error, ValueError):
        return False
    return True


def polling_problem(body: bytes) -> str | None:
    """What is wrong with a polling POST body, decoded by engineio's own Payload, if anything."""
    try:
        packets = eio_payload.Payload(encoded_payload=body.decode()).packets
    except (ValueError, KeyError, IndexError):  # not UTF-8, no type, bad base64, bad `d=`
        return "a polling body that is not an Engine.IO payload"
    for pkt in packets:
        if pkt.packet_type not in _POLLING_FROM_CLIENTS:
            return f"Engine.IO packet type {pkt.packet_type} in a polling body"
    return None


class _Body:
    """A polling body already read, read again by engineio (`environ['wsgi.input']`)."""

    def __init__(self, body: bytes) -> None:
        self.body = body

    async def read(self, _: int = -1) -> bytes:
        body, self.body = self.body, b""
        return body


@functools.cache
def checked_websocket(base: type[Any]) -> type[Any]:
    """`base` (engineio's websocket driver, or one derived from it) whose `wait` closes the
    connection on a frame that is no Engine.IO packet, instead of raising out of engineio."""

    class CheckedWebSocket(base):  # type: ignore[valid-type,misc]
        checked = True

        async def wait(self) -> Any:
            frame = await super().wait()
            if isinstance(frame, str) and not is_engineio_packet(frame):
                socket = getattr(self.handler, "__self__", None)
                if socket is not None:
                    await self.server.abort(socket.sid, "a frame that is no Engine.IO packet")
                return None  # engineio's read loop ends as if the client had left
            return frame

    CheckedWebSocket.__name__ = f"Checked{base.__name__}"
    return CheckedWebSocket


def _checked_translate(translate: Callable[[Any], dict[str, Any]]
                       ) -> Callable[[Any], dict[str, Any]]:
    def translate_request(request: Any) -> dict[str, Any]:
        environ = translate(request)
        body = request.get(BODY) if isinstance(request, web.BaseRequest) else None
        if body is not None:
            environ["wsgi.input"] = _Body(body)
        return environ

    return translate_request


class HubEngine(engineio.AsyncServer):
    """engineio's server with admission, polling POST limits and checked websocket frames."""

    def __init__(self, *, admission: Admission, **options: Any) -> None:
        self.admission = admission
        super().__init__(**options)

    @property  # type: ignore[override]
    def _async(self) -> dict[str, Any] | None:
        return self._drivers

    @_async.setter
    def _async(self, drivers: dict[str, Any] | None) -> None:
        """engineio keeps its transport drivers here (and a caller may swap the websocket
        one, as sockets.py does): whichever is set, frames and bodies pass our checks."""
        websocket = drivers.get("websocket") if drivers is not None else None
        if websocket is not None and not getattr(websocket, "checked", False):
            drivers = {**drivers, "websocket": checked_websocket(websocket)}
        if drivers is not None and not getattr(drivers["translate_request"], "checked", False):
            translate = _checked_translate(drivers["translate_request"])
            translate.checked = True  # type: ignore[attr-defined]
            drivers = {**drivers, "translate_request": translate}
        self._drivers = drivers

    async def handle_request(self, request: web.Request) -> web.StreamResponse:
        query = request.query
        if request.method == "GET" and "sid" not in query:
            refusal = self.admission.refusal(request)
            if refusal is not None:
                log.info("refused a handshake from %s: %s", self.admission.ip(request),
                         refusal[1].message)
                return await self._error(request, *refusal)
        elif request.method == "POST" and "sid" in query:
            socket = self.sockets.get(query["sid"])
            if socket is not None and not socket.closing and not socket.upgraded:
                refusal = await self._read_post(request, socket.sid)
                if refusal is not None:
                    return await self._error(request, *refusal)
        response: web.StreamResponse = await super().handle_request(request)
        return response

    async def _read_post(self, request: web.Request, sid: str) -> tuple[int, HubError] | None:
        """Read and check a polling body before engineio does (engineio would answer an
        oversized one only after the client polls again, and log a traceback for garbage)."""
        length = request.content_length
        if length is None:
            await self.abort(sid, "a polling POST without Content-Length")
            return 411, HubError(ErrorCode.VALIDATION_FAILED, "Content-Length is required")
        if length > self.max_http_buffer_size:
            await self.abort(sid, f"a polling POST of {length} bytes", warn=False)
            return 413, HubError(ErrorCode.PAYLOAD_TOO_LARGE,
                                 f"the body is {length} bytes; the limit is "
                                 f"{self.max_http_buffer_size} (websocket.maxPayload x "
                                 f"{codec.TRANSPORT_LIMIT_FACTOR})")
        try:
            body = await request.content.readexactly(length)
        except asyncio.IncompleteReadError:
            await self.abort(sid, "a polling POST shorter than its Content-Length", warn=False)
            return 400, HubError(ErrorCode.VALIDATION_FAILED, "the body ended early")
        problem = polling_problem(body)
        if problem is not None:
            await self.abort(sid, problem)
            return 400, HubError(ErrorCode.VALIDATION_FAILED, "not an Engine.IO payload")
        request[BODY] = body
        return None

    async def _error(self, request: web.Request, status: int, error: HubError
                     ) -> web.StreamResponse:
        """An error answer made by engineio's own response maker (so CORS headers apply)."""
        environ = self._async["translate_request"](request)  # type: ignore[index]
        response: web.StreamResponse = await self._make_response({
            "status": f"{status} {error.code.value}",
            "headers": [("Content-Type", "application/json"), ("Connection", "close")],
            "response": orjson.dumps({"error": error.as_dict()})}, environ)
        return response

    async def abort(self, sid: str, reason: str, *, warn: bool = True) -> None:
        """Close an Engine.IO socket now, whatever its transport, and say why (once)."""
        socket = self.sockets.get(sid)
        if socket is None or socket.closing:
            return
        ip = self.admission.ip_of.get(sid, "unknown")
        (log.warning if warn else log.info)("closing connection %s from %s: %s", sid, ip, reason)
        await socket.close(wait=False, abort=False, reason=self.reason.SERVER_DISCONNECT)
        # The end-of-queue mark engineio itself uses: the websocket writer sends what is
        # queued (the CLOSE packet), then closes the websocket, which ends the read loop; a
        # pending long-poll returns the CLOSE packet.
        await socket.queue.put(None)


class HubServer(socketio.AsyncServer):
    """python-socketio's server on HubEngine: protocol violations close the connection, and a
    connection that does not CONNECT in time is closed."""

    def __init__(self, settings: Settings, **options: Any) -> None:
        self.admission = Admission(settings)
        self.connect_timeout = settings.server.connect_timeout / 1000
        self._expiring: set[asyncio.Task[None]] = set()
        super().__init__(admission=self.admission, **options)
        self.eio: HubEngine
        self.on(codec.REFUSED, self._on_refused)

    def _engineio_server_class(self) -> type[HubEngine]:
        return HubEngine

    # --- Engine.IO socket lifetime ---------------------------------------------------------

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> None:
        await super()._handle_eio_connect(eio_sid, environ)
        timer = asyncio.get_running_loop().call_later(self.connect_timeout, self._expire,
                                                      eio_sid)
        self.admission.opened(eio_sid, self.admission.ip(environ.get("aiohttp.request")), timer)

    def _expire(self, eio_sid: str) -> None:
        if eio_sid not in self.admission.waiting:
            return
        task = asyncio.ensure_future(self.eio.abort(
            eio_sid, "no Socket.IO CONNECT within server.connectTimeout", warn=False))
        self._expiring.add(task)
        task.add_done_callback(self._expiring.discard)

    async def _handle_connect(self, eio_sid: str, namespace: str | None, data: Any) -> None:
        await super()._handle_connect(eio_sid, namespace, data)
        if eio_sid in self.admission.waiting and self._connected(eio_sid, namespace):
            self.admission.connected(eio_sid)

    async def _handle_eio_disconnect(self, eio_sid: str, reason: Any = None) -> None:
        try:
            await super()._handle_eio_disconnect(eio_sid, reason)
        finally:
            self.admission.closed(eio_sid)

    # --- protocol violations ---------------------------------------------------------------

    def _connected(self, eio_sid: str, namespace: str | None) -> bool:
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        return sid is not None and bool(self.manager.is_connected(sid, namespace))

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        socket = self.eio.sockets.get(eio_sid)
        if socket is None or socket.closing:
            return  # being closed: nothing it sends counts any more
        try:
            await super()._handle_eio_message(eio_sid, data)
        except codec.ProtocolViolation as exc:
            await self.eio.abort(eio_sid, str(exc))
        except ValueError as exc:
            if str(exc) != _BINARY_BEFORE_CONNECT:
                raise
            await self.eio.abort(eio_sid, "a binary event outside a Socket.IO connection")

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: int | None,
                            data: Any) -> None:
        if not self._connected(eio_sid, namespace):
            raise codec.ProtocolViolation(
                f"an event outside a Socket.IO connection to {namespace or '/'}")
        await super()._handle_event(eio_sid, namespace, id, data)

    async def _handle_ack(self, eio_sid: str, namespace: str | None, id: int | None,
                          data: Any) -> None:
        if not self._connected(eio_sid, namespace):
            raise codec.ProtocolViolation(
                f"an ack outside a Socket.IO connection to {namespace or '/'}")
        await super()._handle_ack(eio_sid, namespace, id, data)

    async def _on_refused(self, sid: str, data: Any = None, *_: Any) -> dict[str, Any]:
        """An event codec.py refused (too deep, binary): VALIDATION_FAILED with the reason,
        as an `error` event and in the ack; the sender stays connected."""
        marked = data if isinstance(data, dict) else {}
        body = {**HubError(ErrorCode.VALIDATION_FAILED, str(marked.get("message"))).as_dict(),
                "event": marked.get("event") or "unknown"}
        await self.emit("error", body, to=sid)
        return {"accepted": False, "error": body}
