"""The command ledger in process: the same operations as ledger.lua, each one synchronous step.

Nothing here awaits between reading a command's state and writing it, so on one event loop every
operation is as atomic as a Redis function. Read ledger.lua for the rules; this file follows it
function by function (what Redis expires by itself is pruned in `bury`) and passes objects, not
bytes.
"""

from __future__ import annotations

import heapq
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from semantest import protocol as p
from semantest.bus.base import Message, entry_key
from semantest.bus.ledger import (
    INBOX_GROUP,
    SWEEP_LIMIT,
    Accepted,
    Ended,
    Ledger,
    NewCommand,
    Policy,
    Sweep,
    names_download,
    outcome,
)

if TYPE_CHECKING:
    from semantest.bus.memory import InProcessBus

PULL_ON_REGISTER = 100
TARGETED_SCAN = 100
AFFINITY_MS = 86_400_000


@dataclass(slots=True)
class _Command:
    tenant: str
    id: str
    subject: str
    type: str
    session: str
    origin: Message
    accepted: int
    deadline: int
    payload: Message | None
    target: str = ""
    status: str = "new"
    extension: str = ""
    gateway: str = ""
    entry: str = ""
    received: bool = False
    result: Message | None = None


@dataclass(slots=True)
class _Extension:
    gateway: str
    sid: str
    owner: str
    limit: int
    capabilities: frozenset[str]
    record: Message
    running: set[str] = field(default_factory=set)

    def can_take(self, command_type: str) -> bool:
        capable = "*" in self.capabilities or command_type in self.capabilities
        return capable and not (self.limit and len(self.running) >= self.limit)


class MemoryLedger(Ledger):
    def __init__(self, bus: InProcessBus, policy: Policy) -> None:
        self.policy = policy
        self._bus = bus
        self._commands: dict[tuple[str, str], _Command] = {}
        self._ended: OrderedDict[tuple[str, str], int] = OrderedDict()
        """Ended commands by the time they are forgotten (retention is one constant)."""
        self._deadlines: list[tuple[int, str, str]] = []
        self._extensions: dict[tuple[str, str], _Extension] = {}
        self._running: dict[tuple[str, str], set[str]] = defaultdict(set)
        self._owners: dict[tuple[str, str], tuple[str, int | None]] = {}
        self._grace: dict[tuple[str, str], int] = {}
        self._queues: dict[str, dict[str, OrderedDict[str, None]]] = defaultdict(dict)
        self._waiting_for: dict[tuple[str, str], OrderedDict[str, None]] = {}
        self._queued_by: dict[tuple[str, str], int] = defaultdict(int)
        self._stats: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        self._affinity: dict[tuple[str, str], tuple[str, int]] = {}
        self._gateways: dict[str, int] = {}
        self._gateway_extensions: dict[str, set[tuple[str, str]]] = defaultdict(set)
        self._now = 0

    # --- deliveries ---------------------------------------------------------------------------

    def _deliver(self, gateway: str, message: Message) -> str:
        return self._bus.append(p.gateway_inbox(gateway), message)

    def _to_socket(self, origin: Message, event: str, data: Message) -> None:
        self._deliver(origin["gw"], {"t": p.DELIVER_TO_SOCKET, "sids": [origin["sid"]],
                                     "event": event, "data": data})

    def _to_session(self, tenant: str, session: str, skip: Message, event: str,
                    data: Message) -> None:
        if not session:
            return
        entries = self._bus.store.members_now(p.session_sockets_key(tenant, session))
        for gateway, sids in p.session_readers(entries, skip).items():
            self._deliver(gateway, {"t": p.DELIVER_TO_SOCKET, "sids": sids, "event": event,
                                    "data": data})

    def _to_channel(self, tenant: str, channel: str, message: Message, now: int) -> None:
        kept = {"channel": channel, "message": message, "timestamp": now,
                "publisher": p.SYSTEM_PUBLISHER}
        offset = self._bus.append(p.channel_stream(tenant, channel), kept,
                                  max(self.policy.channel_history, 1))
        event = {**kept, "offset": offset}
        for gateway in sorted(self._bus.store.members_now(p.channel_gateways_key(tenant,
                                                                                 channel))):
            self._deliver(gateway, {"t": p.DELIVER_TO_CHANNEL, "tenant": tenant,
                                    "channel": channel, "data": event})

    def _send_command(self, command: _Command, gateway: str, again: bool = False) -> None:
        assert command.payload is not None
        command.gateway = gateway
        data = {**command.payload, "redelivered": True} if again else command.payload
        command.entry = self._deliver(gateway, {
            "t": p.DELIVER_TO_EXTENSION, "tenant": command.tenant, "ext": command.extension,
            "event": "command", "data": data, "origin": command.origin})

    # --- placement ----------------------------------------------------------------------------

    def _dispatch(self, command: _Command, extension_id: str, extension: _Extension) -> None:
        command.status, command.extension = "dispatched", extension_id
        extension.running.add(command.id)
        self._running[(command.tenant, extension_id)] = extension.running
        if command.session:
            self._affinity[(command.tenant, command.session)] = (extension_id,
                                                                 self._now + AFFINITY_MS)
        self._send_command(command, extension.gateway)

    def _taker(self, tenant: str, extension_id: str, command_type: str) -> _Extension | None:
        extension = self._extensions.get((tenant, extension_id))
        return extension if extension is not None and extension.can_take(command_type) else None

    def _place(self, command: _Command, target: str) -> tuple[str, _Extension] | None:
        tenant = command.tenant
        if command.session:
            sticky = self._affinity.get((tenant, command.session))
            if sticky is not None and sticky[1] > self._now:
                extension = self._taker(tenant, sticky[0], command.type)
                if extension is not None:
                    return sticky[0], extension
        if target:
            extension = self._taker(tenant, target, command.type)
            return (target, extension) if extension is not None else None
        best: tuple[int, str, _Extension] | None = None
        for (owner_tenant, extension_id), extension in self._extensions.items():
            if owner_tenant == tenant and extension.can_take(command.type):
                candidate = (len(extension.running), extension_id, extension)
                if best is None or candidate[:2] < best[:2]:  # least load, then lowest id
                    best = candidate
        return (best[1], best[2]) if best else None

    def _dequeue(self, command: _Command) -> None:
        queues: dict[Any, OrderedDict[str, None]] = self._queues[command.tenant]
        name: Any = command.type
        if command.target:
            queues, name = self._waiting_for, (command.tenant, command.target)
        queue = queues.get(name)
        if queue is not None:
            queue.pop(command.id, None)
            if not queue:
                del queues[name]
        key = (command.tenant, command.subject)
        self._queued_by[key] -= 1
        if self._queued_by[key] <= 0:
            del self._queued_by[key]
        self._stats[command.tenant][1] -= 1

    def _pull(self, tenant: str, extension_id: str, most: int) -> int:
        extension = self._extensions.get((tenant, extension_id))
        taken = 0
        if extension is None:
            return taken
        for command_id in list(self._waiting_for.get((tenant, extension_id), ()))[:TARGETED_SCAN]:
            command = self._commands[(tenant, command_id)]
            if taken < most and extension.can_take(command.type):
                self._dequeue(command)
                self._dispatch(command, extension_id, extension)
                taken += 1
        for command_type in sorted(self._queues[tenant]):
            queue = self._queues[tenant].get(command_type)
            while taken < most and queue and extension.can_take(command_type):
                command = self._commands.get((tenant, next(iter(queue))))
                if command is None or command.status != "queued":
                    queue.popitem(last=False)
                    if not queue:
                        del self._queues[tenant][command_type]
                    continue
                self._dequeue(command)
                self._dispatch(command, extension_id, extension)
                taken += 1
        return taken

    # --- ending -------------------------------------------------------------------------------

    def _finish(self, command: _Command, now: int, success: bool, *, data: Any = None,
                error: Message | None = None, download: bool = False,
                tell_extension: bool = False) -> int:
        duration = now - command.accepted
        result: Message = {"id": command.id, "success": success}
        if data is not None:
            result["data"] = data
        if error is not None:
            result["error"] = error
        assert command.payload is not None
        result.update(p.echo(command.payload))
        metadata = {"duration": duration, "timestamp": now, "extension": command.extension}
        result["metadata"] = metadata
        kept = result
        if self._size(result) > self.policy.max_result_bytes:
            kept = {key: value for key, value in result.items() if key not in ("data", "error")}
            kept["metadata"] = {**metadata, "dataDropped": True}
        previous, tenant = command.status, command.tenant
        command.status, command.result, command.payload = "done", kept, None
        key = (tenant, command.id)
        self._ended[key] = now + self.policy.retention_ms
        self._stats[tenant][0] -= 1
        if previous == "queued":
            self._dequeue(command)
        elif command.extension:
            running = self._running.get((tenant, command.extension))
            if running is not None:
                running.discard(command.id)
            extension = self._extensions.get((tenant, command.extension))
            if tell_extension and extension is not None:
                self._deliver(extension.gateway, {
                    "t": p.DELIVER_TO_EXTENSION, "tenant": tenant, "ext": command.extension,
                    "event": "cancel", "data": {"id": command.id}})
        self._to_socket(command.origin, "result", result)
        self._to_session(tenant, command.session, command.origin, "result", result)
        channel = None
        if not success:
            channel = "errors"
        elif command.type == "DOWNLOAD_IMAGE" or download:
            channel = "downloads"
        if channel is not None:
            self._to_channel(tenant, channel, {"type": command.type, **result}, now)
        if command.extension and previous == "dispatched":
            self._pull(tenant, command.extension, 1)
        return duration

    def _size(self, result: Message) -> int:
        return len(self._bus.encoded(result))

    def _forget_ended(self, now: int) -> None:
        while self._ended:
            key, until = next(iter(self._ended.items()))
            if until > now:
                return
            self._ended.popitem(last=False)
            self._commands.pop(key, None)

    # --- operations ---------------------------------------------------------------------------

    async def accept(self, command: NewCommand) -> Accepted:
        payload, tenant = command.payload, command.tenant
        self._now = now = command.accepted
        known = self._commands.get((tenant, payload["id"]))
        if known is not None:
            if known.subject != command.subject and known.session not in [
                    s for s in command.readable_sessions if s]:
                return Accepted("taken")
            if known.status == "done":
                assert known.result is not None
                self._to_socket(command.origin, "result", known.result)
                return Accepted("done")
            known.origin = command.origin
            return Accepted("running")
        state = _Command(tenant, payload["id"], command.subject, payload["type"],
                         payload.get("sessionId") or "", command.origin, now,
                         payload["deadline"], payload, target=command.target)
        choice = self._place(state, state.target)
        if choice is None and self._queued_by[(tenant, command.subject)] >= \
                self.policy.max_queued:
            return Accepted("full")
        self._commands[(tenant, state.id)] = state
        heapq.heappush(self._deadlines, (state.deadline, tenant, state.id))
        self._stats[tenant][0] += 1
        if choice is not None:
            self._dispatch(state, *choice)
            return Accepted("dispatched", choice[0])
        state.status = "queued"
        if state.target:
            self._waiting_for.setdefault((tenant, state.target), OrderedDict())[state.id] = None
        else:
            self._queues[tenant].setdefault(state.type, OrderedDict())[state.id] = None
        self._queued_by[(tenant, command.subject)] += 1
        self._stats[tenant][1] += 1
        return Accepted("queued")

    def _held(self, tenant: str, extension_id: str, sid: str, command_id: str) -> _Command | None:
        command = self._commands.get((tenant, command_id))
        extension = self._extensions.get((tenant, extension_id))
        if (command is None or command.status != "dispatched"
                or command.extension != extension_id or extension is None
                or extension.sid != sid):
            return None
        return command

    async def report(self, tenant: str, extension: str, sid: str, report: Message,
                     now: int) -> Ended | None:
        command = self._held(tenant, extension, sid, report["id"])
        if command is None:
            return None
        self._now = now
        duration = self._finish(command, now, bool(report["success"]), data=report.get("data"),
                                error=report.get("error"), download=names_download(report))
        return Ended(command.type, outcome(report), duration)

    async def progress(self, tenant: str, extension: str, sid: str, command_id: str,
                       event: Message) -> bool:
        command = self._held(tenant, extension, sid, command_id)
        if command is None:
            return False
        assert command.payload is not None
        event = {**event, **p.echo(command.payload)}
        self._to_socket(command.origin, "progress", event)
        self._to_session(tenant, command.session, command.origin, "progress", event)
        return True

    async def cancel(self, tenant: str, subject: str, command_id: str,
                     writable_sessions: list[str], now: int) -> Ended | None:
        command = self._commands.get((tenant, command_id))
        if command is None or command.status == "done":
            return None
        if command.subject != subject and command.session not in [
                s for s in writable_sessions if s]:
            return None
        self._now = now
        code = p.ErrorCode.CANCELLED.value
        duration = self._finish(command, now, False, tell_extension=True,
                                error={"code": code, "message": "cancelled by the client"})
        return Ended(command.type, code, duration)

    def _redeliver(self, tenant: str, extension_id: str, gateway: str, acks: bool) -> int:
        """ledger.lua `redeliver`: what may never have reached the extension, sent again."""
        count = 0
        for command_id in sorted(self._running[(tenant, extension_id)]):
            command = self._commands.get((tenant, command_id))
            if (command is None or command.status != "dispatched"
                    or command.extension != extension_id or command.received):
                continue
            send = again = False
            inbox = p.gateway_inbox(command.gateway)
            if not command.gateway:
                send = True
            elif entry_key(command.entry) > self._bus.read_position(inbox, INBOX_GROUP):
                self._bus.remove(inbox, command.entry)
                send = True
            else:
                send, again = acks, True
            if send:
                self._send_command(command, gateway, again)
                count += 1
        return count

    async def received(self, tenant: str, extension: str, sid: str, command_id: str) -> None:
        command = self._held(tenant, extension, sid, command_id)
        if command is not None:
            command.received = True

    async def register(self, tenant: str, extension: str, owner: str, gateway: str, sid: str,
                       record: Message, now: int) -> bool:
        key = (tenant, extension)
        holder = self._owners.get(key)
        if holder is not None and holder[0] != owner and (holder[1] is None or holder[1] > now):
            return False
        self._now = now
        previous = self._extensions.get(key)
        if previous is not None:
            self._gateway_extensions[previous.gateway].discard(key)
        self._extensions[key] = _Extension(
            gateway, sid, owner, record.get("maxConcurrency") or 0,
            frozenset(record.get("capabilities") or ["*"]), record, self._running[key])
        self._gateway_extensions[gateway].add(key)
        self._owners[key] = (owner, None)
        self._grace.pop(key, None)
        self._redeliver(tenant, extension, gateway, bool(record.get("acks")))
        self._pull(tenant, extension, PULL_ON_REGISTER)
        return True

    def _drop_registration(self, key: tuple[str, str], now: int) -> None:
        extension = self._extensions.pop(key)
        self._gateway_extensions[extension.gateway].discard(key)
        grace = self.policy.grace_ms
        self._owners[key] = (extension.owner, now + max(grace, 1))
        if self._running[key]:
            self._grace[key] = now + grace
        else:
            del self._running[key]

    async def unregister(self, tenant: str, extension: str, sid: str, now: int) -> None:
        found = self._extensions.get((tenant, extension))
        if found is not None and found.sid == sid:
            self._drop_registration((tenant, extension), now)

    async def handback(self, tenant: str, extension: str, command_id: str,
                       gateway: str) -> None:
        command = self._commands.get((tenant, command_id))
        if (command is None or command.status != "dispatched" or command.extension != extension
                or command.gateway != gateway):
            return
        holder = self._extensions.get((tenant, extension))
        if holder is not None and holder.gateway != gateway:
            self._send_command(command, holder.gateway)
        else:
            command.gateway = ""

    @staticmethod
    def _swept(command_id: str, command: _Command, code: str, duration: int) -> Ended:
        """What a sweep tells of a command it ended (its trace context is in the result)."""
        traceparent = (command.result or {}).get("traceparent")
        return Ended(command.type, code, duration, command_id,
                     traceparent if isinstance(traceparent, str) else None)

    async def expire(self, now: int) -> Sweep:
        self._now = now
        self._forget_ended(now)
        ended = []
        while self._deadlines and self._deadlines[0][0] <= now and len(ended) < SWEEP_LIMIT:
            deadline, tenant, command_id = heapq.heappop(self._deadlines)
            command = self._commands.get((tenant, command_id))
            if command is None or command.status == "done" or command.deadline != deadline:
                continue  # ended already, or an old entry of a forgotten id used again
            if command.status == "dispatched":
                code, text = p.ErrorCode.TIMEOUT.value, "the command timed out"
            else:
                code = p.ErrorCode.NO_EXTENSION.value
                text = "no capable extension connected before the deadline"
            duration = self._finish(command, now, False, tell_extension=True,
                                    error={"code": code, "message": text})
            ended.append(self._swept(command_id, command, code, duration))
        return Sweep(ended, [])

    async def expire_grace(self, now: int) -> Sweep:
        self._now = now
        ended = []
        code = p.ErrorCode.EXTENSION_DISCONNECTED.value
        for key in [k for k, at in self._grace.items() if at <= now][:SWEEP_LIMIT]:
            del self._grace[key]
            if key in self._extensions:
                continue
            tenant, extension_id = key
            for command_id in sorted(self._running.pop(key, set())):
                command = self._commands.get((tenant, command_id))
                if command is not None and command.status == "dispatched" \
                        and command.extension == extension_id:
                    duration = self._finish(command, now, False, error={
                        "code": code,
                        "message": "the extension disconnected and did not come back"})
                    ended.append(self._swept(command_id, command, code, duration))
        return Sweep(ended, [])

    async def heartbeat(self, gateway: str, now: int) -> bool:
        known = gateway in self._gateways
        self._gateways[gateway] = now
        return known

    async def bury(self, now: int, gateway: str | None = None) -> int:
        # What Redis lets expire: owners past their grace, session affinities past a day.
        self._owners = {k: o for k, o in self._owners.items() if o[1] is None or o[1] > now}
        self._affinity = {k: a for k, a in self._affinity.items() if a[1] > now}
        if gateway is not None:
            self._gateways[gateway] = 0
        dead_before = now - self.policy.gateway_dead_after_ms
        dead = [gw for gw, seen in self._gateways.items() if seen <= dead_before]
        for gw in dead:
            for key in sorted(self._gateway_extensions.pop(gw, set())):
                extension = self._extensions.get(key)
                if extension is not None and extension.gateway == gw:
                    self._drop_registration(key, now)
            del self._gateways[gw]
        return len(dead)

    async def extensions(self, tenant: str) -> list[Message]:
        return [{**extension.record, "inFlight": len(extension.running)}
                for (owner, _), extension in sorted(self._extensions.items()) if owner == tenant]

    async def counts(self, tenant: str) -> tuple[int, int]:
        in_flight, queued = self._stats.get(tenant, (0, 0))
        return in_flight, queued

    async def queued_by_type(self, tenant: str) -> dict[str, int]:
        queues = self._queues.get(tenant, {})
        return {command_type: len(queue) for command_type, queue in queues.items()}
