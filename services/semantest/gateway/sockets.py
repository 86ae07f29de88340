"""Socket.IO for clients and extensions: authenticate, validate, and hand work to the ledger.

Every event handler answers a bad input with an `error` event (and the ack, when one was asked
for) and never closes the connection. A command, a result, a cancel is one ledger operation each
(semantest.bus.ledger); what they deliver, to sockets here or on other gateways, arrives in this
gateway's inbox.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import socketio
from aiohttp.web import WebSocketResponse
from engineio.async_drivers.aiohttp import WebSocket

from semantest import protocol as p
from semantest.bus.base import Bus, Delivery, Message
from semantest.bus.ledger import Ended, Ledger, NewCommand
from semantest.config import Settings
from semantest.credentials import Verifier
from semantest.gateway import codec, engine, events, limits, revocations
from semantest.gateway.channels import Channels
from semantest.gateway.connections import Connection, Connections
from semantest.gateway.sessions import Sessions
from semantest.gateway.status import StatusReport
from semantest.outbox import Outbox
from semantest.protocol import ErrorCode, HubError, Role, Scope
from semantest.telemetry import Metrics, command_fields
from semantest.tracing import CLIENT, CONSUMER, SERVER

log = logging.getLogger("semantest.gateway")

INBOUND = {"direction": "inbound"}
OUTBOUND = {"direction": "outbound"}
DRAIN_POLL_S = 0.05
CLOSE_WAIT_S = 1.0
CONNECT_POLL_S = 0.005
CONNECT_SETTLE_S = 5.0
"""How long work for a just-registered extension waits for its CONNECT to go out (it takes
a loop turn or two; a register reply delayed by Redis can make it longer)."""


class UncompressedWebSocket(WebSocket):
    """engineio's aiohttp WebSocket without permessage-deflate (~90 KB less per connection)."""

    async def __call__(self, environ: dict[str, Any]) -> WebSocketResponse:
        request = environ["aiohttp.request"]
        self._sock = WebSocketResponse(
            max_msg_size=self.server.max_http_buffer_size, compress=False
        )
        await self._sock.prepare(request)
        self.environ = environ
        await self.handler(self)
        return self._sock


def _header(environ: dict[str, Any], name: str) -> str | None:
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


Handler = Callable[[Connection, Any], Awaitable[Any]]


class GatewaySockets:
    def __init__(self, settings: Settings, bus: Bus, ledger: Ledger, metrics: Metrics,
                 gateway_id: str) -> None:
        self.settings = settings
        self.bus = bus
        self.ledger = ledger
        self.metrics = metrics
        self.gateway_id = gateway_id
        self.inbox = p.gateway_inbox(gateway_id)
        self.span_attributes = {"semantest.gateway.id": gateway_id}
        """On every span this gateway makes: which gateway took the event."""
        self.verifier = Verifier(settings, bus.store)
        self.limits = limits.Limits(settings, bus.store)
        self.revocations = revocations.Revocations()
        self.connections = Connections()
        # Commands given to this gateway's extensions: (origin, command, extension socket).
        # Progress goes straight to the origin's inbox (no ledger call); the result goes through
        # the ledger, which ends the command.
        self.running: dict[tuple[str, str, str], tuple[Message, Message, str]] = {}
        self._early: set[asyncio.Task[None]] = set()
        self._closing: dict[str, asyncio.Task[None]] = {}
        self.draining = False
        self.status = StatusReport(ledger, self.connections)
        cors = settings.effective_cors
        self.sio = engine.HubServer(
            settings,
            async_mode="aiohttp",
            serializer=codec.packet_class(settings.websocket.max_payload,
                                          settings.websocket.max_depth),
            cors_allowed_origins=(cors.origin if cors else "*"),
            cors_credentials=bool(cors and cors.credentials),
            ping_interval=settings.websocket.ping_interval / 1000,
            ping_timeout=settings.websocket.ping_timeout / 1000,
            max_http_buffer_size=settings.websocket.max_payload * codec.TRANSPORT_LIMIT_FACTOR,
            http_compression=False,
            # Handlers run in the socket's read loop: no task per event, and one socket's
            # events are handled in the order they were sent (progress before result).
            async_handlers=False,
        )
        self.sio.eio._async = {**self.sio.eio._async, "websocket": UncompressedWebSocket}
        self.outbox = Outbox(bus, settings.channels.history)
        self.sessions = Sessions(settings, bus, gateway_id)
        self.channels = Channels(settings, bus, self.outbox, self.sio, gateway_id)
        self.sio.on("connect", self.on_connect)
        self.sio.on("disconnect", self.on_disconnect)
        self.sio.on("*", self.on_unknown)
        # event → (who may send it, handler, the event that carries the answer besides the ack)
        handlers: dict[str, tuple[Role | None, Handler, str | None]] = {
            "command": (Role.CLIENT, self.command, None),
            "cancel": (Role.CLIENT, self.cancel, None),
            "status": (Role.CLIENT, self.report_status, "status"),
            "ping": (None, self.ping, "pong"),
            "session:create": (Role.CLIENT, self.sessions.create, "session:created"),
            "session:join": (Role.CLIENT, self.sessions.join, "session:joined"),
            "session:share": (Role.CLIENT, self.sessions.share, "session:shared"),
            "session:leave": (Role.CLIENT, self.sessions.leave, "session:left"),
            "subscribe": (Role.CLIENT, self.channels.subscribe, "subscribed"),
            "unsubscribe": (Role.CLIENT, self.channels.unsubscribe, "unsubscribed"),
            "publish": (Role.CLIENT, self.channels.publish, None),
            "progress": (Role.EXTENSION, self.progress, None),
            "result": (Role.EXTENSION, self.result, None),
        }
        for event, (role, handler, reply) in handlers.items():
            self.sio.on(event, self._guarded(event, role, handler, reply))
        self.sio.on(codec.TOO_LARGE, self.on_too_large)
        self.sio.on(codec.INVALID, self.on_invalid)
        self.sio.on(codec.RESERVED, self.on_reserved)

    # --- connecting ------------------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth: Any) -> None:
        try:
            connection = await self._admit(sid, environ, auth if isinstance(auth, dict) else {})
        except HubError as exc:
            refusal = socketio.exceptions.ConnectionRefusedError(exc.code.value, exc.as_dict())
            raise refusal from None
        # Known here before the ledger can send it work (or the work would be handed back).
        holder = self.connections.extension_sid(connection.principal.tenant,
                                                connection.extension_id or "")
        self.connections.add(connection)
        if connection.role is Role.EXTENSION:
            try:
                registered = await self._register(connection)
            except Exception:
                self.connections.remove(sid, restore=holder)
                log.exception("cannot register extension %s", connection.extension_id)
                refusal = HubError(ErrorCode.UNAVAILABLE, "cannot register the extension now")
                raise socketio.exceptions.ConnectionRefusedError(
                    refusal.code.value, refusal.as_dict()) from None
            if not registered:
                self.connections.remove(sid, restore=holder)
                raise socketio.exceptions.ConnectionRefusedError(ErrorCode.FORBIDDEN.value, {
                    "code": ErrorCode.FORBIDDEN.value,
                    "message": "this extensionId is registered by another credential"})
        kind = {"type": connection.role.value}
        self.metrics.connections.add(1, kind)
        self.metrics.connections_active.add(1, {**kind, "gateway": self.gateway_id})

    async def _admit(self, sid: str, environ: dict[str, Any], auth: dict[str, Any]) -> Connection:
        if self.draining:
            raise HubError(ErrorCode.UNAVAILABLE, "this gateway is shutting down; connect again")
        await self.limits.connect_attempt(environ)
        handshake = events.parse(events.Handshake, auth)
        others = len(self.sio.admission.ip_of) - 1  # every open socket but this one counts
        if others >= self.settings.server.max_connections:
            raise HubError(ErrorCode.TOO_MANY_CONNECTIONS, "this gateway is at MAX_CONNECTIONS")
        authorization = _header(environ, "Authorization") or ""
        token = handshake.token or (
            authorization[7:].strip() if authorization[:7].lower() == "bearer " else None
        )
        api_key = handshake.api_key or _header(environ, self.settings.auth.api_keys.header)
        principal = await self.verifier.resolve(token, api_key)
        self.revocations.check(principal)  # no await from here to connections.add
        self.limits.admit(principal, self.connections)
        role = Role(handshake.role)
        if not principal.allows(Scope(role.value)):
            raise HubError(ErrorCode.FORBIDDEN, f"this credential may not connect as {role.value}")
        if role is Role.CLIENT:
            return Connection(sid, principal, role)
        extension_id = handshake.extension_id or f"ext-{sid}"
        record = {
            "gw": self.gateway_id, "sid": sid, "extensionId": extension_id,
            "name": handshake.name or extension_id, "version": handshake.version,
            "capabilities": handshake.capabilities,
            "maxConcurrency": handshake.max_concurrency, "acks": handshake.acks,
            "connectedAt": p.now_ms(),
        }
        return Connection(sid, principal, role, extension_id, record)

    async def register_again(self) -> None:
        """After this gateway was given up for dead: its extensions take their ids again, or
        are let go (another principal took the id meanwhile)."""
        for sid, connection in list(self.connections.by_sid.items()):
            if connection.role is Role.EXTENSION and not await self._register(connection):
                self.close_transport(sid)

    async def _register(self, connection: Connection) -> bool:
        """Take the extension id for this connection: False when another principal holds it."""
        principal, extension_id = connection.principal, connection.extension_id
        assert extension_id is not None
        return await self.ledger.register(principal.tenant, extension_id, principal.subject,
                                          self.gateway_id, connection.sid, connection.record,
                                          p.now_ms())

    async def on_disconnect(self, sid: str, *_: Any) -> None:
        connection = self.connections.remove(sid)
        if connection is None:
            return
        self.metrics.connections_active.add(-1, {"type": connection.role.value,
                                                 "gateway": self.gateway_id})
        await self.channels.leave_all(connection)
        for session_id in list(connection.sessions):
            await self.sessions.detach(connection, session_id)
        if connection.role is Role.EXTENSION and connection.extension_id is not None:
            tenant = connection.principal.tenant
            await self.ledger.unregister(tenant, connection.extension_id, sid, p.now_ms())
            for key in [k for k, v in self.running.items() if v[2] == sid]:
                del self.running[key]

    # --- events ------------------------------------------------------------------------------

    def _guarded(self, event: str, role: Role | None, handler: Handler,
                 reply: str | None) -> Callable[..., Any]:
        async def guarded(sid: str, data: Any = None, *_: Any) -> Any:
            self.metrics.messages.add(1, INBOUND)
            connection = self.connections.by_sid.get(sid)
            tracing = self.metrics.tracing
            parent = self._trace_parent(event, connection, data) if tracing.enabled else None
            with tracing.span(event, kind=SERVER, parent=parent, attributes=self.span_attributes):
                try:
                    if connection is None:
                        raise HubError(ErrorCode.AUTH_REQUIRED, "not connected")
                    await self.limits.event(connection.principal)
                    if role is not None and connection.role is not role:
                        raise HubError(ErrorCode.FORBIDDEN, f"{event!r} is for {role.value}s")
                    answer = await handler(connection, data)
                    if reply is not None:
                        await self.sio.emit(reply, answer, to=sid)
                    return answer
                except HubError as exc:
                    tracing.annotate(error=exc.code.value)
                    return await self.refuse(sid, event, exc, data)
                except Exception:
                    log.exception("event %s from %s failed", event, sid)
                    return await self.refuse(sid, event, HubError(ErrorCode.INTERNAL,
                                                                  "internal error"), data)

        return guarded

    def _trace_parent(self, event: str, connection: Connection | None, data: Any) -> str | None:
        """The trace an event continues: a command its caller's `traceparent`; an extension's
        result or progress the trace of the command as it was given to the extension."""
        if not isinstance(data, dict):
            return None
        if event in ("result", "progress") and connection is not None:
            running = self.running.get(self._running_key(connection, str(data.get("id"))))
            if running is not None:
                return running[1].get("traceparent")
        parent = data.get("traceparent")
        return parent if isinstance(parent, str) else None

    async def refuse(self, sid: str, event: str, exc: HubError, data: Any) -> Message:
        body: Message = {**exc.as_dict(), "event": event}
        if isinstance(data, dict):
            for field in ("id", "correlationId"):
                if isinstance(data.get(field), str):
                    body[field] = data[field]
        await self.sio.emit("error", body, to=sid)
        return {"accepted": False, "error": body}

    async def on_unknown(self, event: str, sid: str, data: Any = None, *_: Any) -> Message:
        connection = self.connections.by_sid.get(sid)
        try:  # unknown events count against the rate limit like any other
            if connection is not None:
                await self.limits.event(connection.principal)
        except HubError as exc:
            return await self.refuse(sid, event, exc, data)
        return await self.refuse(
            sid, event, HubError(ErrorCode.UNKNOWN_EVENT, f"unknown event {event!r}"), data
        )

    async def on_reserved(self, sid: str, data: Any = None, *_: Any) -> Message:
        event = data.get("event") if isinstance(data, dict) else None
        return await self.on_unknown(str(event), sid, None)

    async def on_invalid(self, sid: str, data: Any = None, *_: Any) -> Message:
        event = data.get("event") if isinstance(data, dict) else None
        return await self.refuse(sid, event if isinstance(event, str) else "unknown", HubError(
            ErrorCode.VALIDATION_FAILED, "the payload is not JSON (NaN and Infinity are not)"),
            None)

    async def on_too_large(self, sid: str, data: Any = None, *_: Any) -> Message:
        if not isinstance(data, dict) or not isinstance(data.get("size"), int):
            return await self.on_unknown(codec.TOO_LARGE, sid, data)  # sent by a client
        event = data.get("event") or "unknown"
        limit = self.settings.websocket.max_payload
        return await self.refuse(sid, event, HubError(
            ErrorCode.PAYLOAD_TOO_LARGE,
            f"{event!r} payload is {data['size']} bytes; websocket.maxPayload is {limit}"), None)

    async def command(self, connection: Connection, data: Any) -> Message:
        command = events.parse(events.Command, data)
        if command.session_id is not None:
            held = await self.sessions.permissions(connection, command.session_id)
            if p.WRITE not in held:
                raise HubError(ErrorCode.FORBIDDEN, "sending in this session needs 'write'")
        limits = self.settings.commands
        timeout = min(command.timeout or limits.timeout, limits.max_timeout)
        payload = dict(data)
        payload["id"] = command.id or str(uuid.uuid4())
        payload["timeout"] = timeout
        accepted = p.now_ms()
        payload["deadline"] = accepted + timeout
        principal = connection.principal
        tracing = self.metrics.tracing
        if tracing.enabled:  # the command travels in this trace (the caller's, when it sent one)
            payload["traceparent"] = tracing.traceparent()
        with tracing.span("ledger accept", kind=CLIENT):
            answer = await self.ledger.accept(NewCommand(
                principal.tenant, principal.subject,
                {"gw": self.gateway_id, "sid": connection.sid},
                payload, accepted, self._sessions_with(connection, p.READ)))
        tracing.annotate(**{"command.id": payload["id"], "command.type": command.type,
                            "command.outcome": answer.outcome, "extension.id": answer.extension})
        log.debug("command %s (%s) %s%s", payload["id"], command.type, answer.outcome,
                  f" to {answer.extension}" if answer.extension else "",
                  extra=command_fields(payload["id"], payload.get("traceparent")))
        if answer.outcome == "taken":
            raise HubError(ErrorCode.VALIDATION_FAILED,
                           "this command id is in use by another sender; use a fresh id")
        if answer.outcome == "full":
            raise HubError(ErrorCode.RATE_LIMITED,
                           f"you have {limits.max_queued_per_principal} commands waiting for an "
                           "extension (commands.maxQueuedPerPrincipal)")
        if answer.outcome in ("dispatched", "queued"):
            self.metrics.commands_in_flight.add(1)
        if answer.outcome != "done":
            connection.awaiting.add(payload["id"])
        return {"id": payload["id"], "accepted": True}

    @staticmethod
    def _sessions_with(connection: Connection, permission: str) -> list[str]:
        return [session_id for session_id, (_, held) in connection.sessions.items()
                if permission in held]

    def _ended(self, ended: Ended | None) -> None:
        if ended is not None:
            self.metrics.command_ended(ended.type, ended.outcome, ended.duration_ms)

    async def cancel(self, connection: Connection, data: Any) -> Message:
        cancel = events.parse(events.Cancel, data)
        principal = connection.principal
        ended = await self.ledger.cancel(principal.tenant, principal.subject, cancel.id,
                                         self._sessions_with(connection, p.WRITE), p.now_ms())
        if ended is None:  # the same answer whether it never existed or is not yours
            raise HubError(ErrorCode.VALIDATION_FAILED, "no command with this id is in flight")
        self._ended(ended)
        return {"id": cancel.id, "accepted": True}

    def _running_key(self, connection: Connection, command_id: str) -> tuple[str, str, str]:
        return (connection.principal.tenant, connection.extension_id or "", command_id)

    async def progress(self, connection: Connection, data: Any) -> Message:
        report = events.parse(events.Progress, data).model_dump(exclude_none=True)
        running = self.running.get(self._running_key(connection, report["id"]))
        if running is None or running[2] != connection.sid:  # the ledger knows the origin
            await self.ledger.progress(connection.principal.tenant, connection.extension_id or "",
                                       connection.sid, report["id"],
                                       p.progress_event(report, report))
            return {"id": report["id"], "accepted": True}
        origin, command, _ = running
        event = p.progress_event(command, report)
        await self.outbox.to_socket(origin, "progress", event)
        if command.get("sessionId"):
            await self.outbox.to_session(connection.principal.tenant, command["sessionId"],
                                         "progress", event, skip=origin)
        return {"id": report["id"], "accepted": True}

    async def result(self, connection: Connection, data: Any) -> Message:
        report = events.parse(events.Result, data).model_dump(exclude_none=True)
        running = self.running.pop(self._running_key(connection, report["id"]), None)
        log.debug("command %s result from %s: %s", report["id"], connection.extension_id,
                  "success" if report["success"] else "failure",
                  extra=command_fields(report["id"], running and running[1].get("traceparent")))
        with self.metrics.tracing.span("ledger report", kind=CLIENT):
            self._ended(await self.ledger.report(connection.principal.tenant,
                                                 connection.extension_id or "", connection.sid,
                                                 report, p.now_ms()))
        return {"id": report["id"], "accepted": True}

    async def ping(self, connection: Connection, data: Any) -> Message:
        sent = data.get("timestamp") if isinstance(data, dict) else data
        return {"timestamp": sent if isinstance(sent, int | float | str) else None,
                "serverTime": p.now_ms()}

    async def report_status(self, connection: Connection, _: Any) -> Message:
        return await self.status.for_tenant(connection.principal.tenant)

    # --- draining ----------------------------------------------------------------------------

    async def drain(self, timeout_s: float) -> None:
        """Refuse new connections; tell every socket (`server:draining`); let extensions go at
        once (they reconnect elsewhere, their work follows them); let each client go when
        nothing it sent waits for a result here, or when the time is up. Closing the transport
        (not a Socket.IO disconnect) makes the official client reconnect by itself."""
        self.draining = True
        notice = {"reconnect": True, "timeout": int(timeout_s * 1000)}
        for sid in list(self.connections.by_sid):
            await self.sio.emit("server:draining", notice, to=sid)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self.connections.by_sid:
            for sid, connection in list(self.connections.by_sid.items()):
                if connection.role is Role.EXTENSION or not connection.awaiting \
                        or loop.time() >= deadline:
                    self.close_transport(sid)
            await asyncio.sleep(DRAIN_POLL_S)
        await self.closed()

    def close_transport(self, sid: str) -> None:
        """Close a socket's transport in the background: a peer that no longer reads must not
        hold up the others (engineio waits for its queue to drain)."""
        if sid in self._closing:
            return
        eio_sid = self.sio.manager.eio_sid_from_sid(sid, "/")
        if eio_sid is None:
            self.connections.remove(sid)
            return
        task = asyncio.create_task(self.sio.eio.disconnect(eio_sid))
        self._closing[sid] = task
        task.add_done_callback(lambda _: self._closing.pop(sid, None))

    async def close_all(self) -> None:
        for sid in list(self.connections.by_sid):
            self.close_transport(sid)
        await self.closed()

    async def closed(self) -> None:
        """Wait (a bounded time) for the transports being closed."""
        if self._closing:
            await asyncio.wait(list(self._closing.values()), timeout=CLOSE_WAIT_S)

    # --- deliveries from the bus --------------------------------------------------------------

    async def deliver(self, delivery: Delivery) -> None:
        message = delivery.message
        kind = message.get("t")
        if kind == p.DELIVER_TO_CHANNEL:
            await self.channels.deliver(message)
            return
        if kind == p.DELIVER_TO_SOCKET:
            await self._to_sockets(message)
        elif kind == p.DELIVER_TO_EXTENSION:
            await self._to_extension(message)

    async def _to_sockets(self, message: Message) -> None:
        data = message["data"]
        result = data["id"] if message["event"] == "result" else None
        if result is not None:
            log.debug("command %s result to %d socket(s)", result, len(message["sids"]),
                      extra=command_fields(result, data.get("traceparent")))
        with self.metrics.tracing.continued(f"{message['event']} deliver",
                                            data.get("traceparent"), kind=CONSUMER,
                                            attributes=self.span_attributes):
            for sid in message["sids"]:
                connection = self.connections.by_sid.get(sid)
                if connection is not None:
                    connection.awaiting.discard(result)
                    self.metrics.messages.add(1, OUTBOUND)
                    await self.sio.emit(message["event"], data, to=sid)

    async def _to_extension(self, message: Message) -> None:
        tenant, extension_id = message["tenant"], message["ext"]
        sid = self.connections.extension_sid(tenant, extension_id)
        key = (tenant, extension_id, message["data"]["id"])
        if message["event"] == "cancel":
            self.running.pop(key, None)
        if sid is None:
            if message["event"] == "command":  # it left or moved: the ledger sends it on
                traceparent = message["data"].get("traceparent")
                log.debug("command %s handed back: %s is not here", key[2], extension_id,
                          extra=command_fields(key[2], traceparent))
                with self.metrics.tracing.continued("command handback", traceparent,
                                                    kind=CLIENT):
                    await self.ledger.handback(tenant, extension_id, key[2], self.gateway_id)
            return
        if not self.sio.manager.is_connected(sid, "/"):
            # Work sent the moment it registered, before its CONNECT went out (or for a
            # newcomer about to be refused): deliver once that is settled.
            task = asyncio.create_task(self._when_connected(sid, message))
            self._early.add(task)
            task.add_done_callback(self._early.discard)
            return
        callback = None
        data = message["data"]
        tracing = self.metrics.tracing
        with tracing.continued(f"{message['event']} deliver", data.get("traceparent"),
                               kind=CONSUMER, attributes=self.span_attributes):
            if message["event"] == "command":
                if tracing.enabled:  # the extension continues the trace from here
                    data = {**data, "traceparent": tracing.traceparent()}
                self._sending(extension_id, data)
                self.running[key] = (message["origin"], data, sid)
                if self.connections.by_sid[sid].record.get("acks"):
                    callback = functools.partial(self._received, tenant, extension_id, sid,
                                                 key[2])
            self.metrics.messages.add(1, OUTBOUND)
            await self.sio.emit(message["event"], data, to=sid, callback=callback)

    def _sending(self, extension_id: str, command: Message) -> None:
        """A command goes to its extension now: how long it waited since its acceptance."""
        waited_s = (p.now_ms() - (command["deadline"] - command["timeout"])) / 1000
        self.metrics.queue_wait.labels(command["type"]).observe(max(waited_s, 0.0))
        self.metrics.tracing.annotate(**{"command.id": command["id"],
                                         "command.type": command["type"],
                                         "extension.id": extension_id})
        log.debug("command %s sent to %s after %.0f ms", command["id"], extension_id,
                  waited_s * 1000, extra=command_fields(command["id"],
                                                        command.get("traceparent")))

    async def _when_connected(self, sid: str, message: Message) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + CONNECT_SETTLE_S
        while sid in self.connections.by_sid and not self.sio.manager.is_connected(sid, "/"):
            if loop.time() >= deadline:
                log.warning("%s never completed its connect: giving its work back", sid)
                self.close_transport(sid)
                break
            await asyncio.sleep(CONNECT_POLL_S)
        if self.sio.manager.is_connected(sid, "/") or message["event"] == "command":
            await self._to_extension(message)  # to whoever holds the extension now

    async def _received(self, tenant: str, extension_id: str, sid: str, command_id: str,
                        *_: Any) -> None:
        """The extension's ack of a command (whatever it carries)."""
        await self.ledger.received(tenant, extension_id, sid, command_id)

