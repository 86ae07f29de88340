"""The command life cycle: accept, dispatch, progress, result, cancel, timeout, lost extension.

All state lives in the store, so any router can carry on where a dead one stopped. Ending a
command is claimed atomically (`SET NX` of its end record, which holds the result), so exactly
one result is decided, whichever of result, cancel, timeout or disconnect comes first; if the
router that decided it dies before sending it, the next router to touch the command (a
redelivered report, or the deadline sweep) finishes the job with the recorded result.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from semantest import protocol as p
from semantest.bus.base import Bus, Message
from semantest.config import Settings
from semantest.outbox import Outbox
from semantest.router.placement import Placement
from semantest.telemetry import Metrics

log = logging.getLogger("semantest.router")

ABANDONED_AFTER_MS = 2000
"""An ended command whose state is still not done after this long lost its router mid-way."""
RETAIN_MS = 3_600_000
"""How long an ended command is remembered, so a re-sent id returns the result again."""


def now_ms() -> int:
    return int(time.time() * 1000)


class CommandRouter:
    def __init__(self, settings: Settings, bus: Bus, metrics: Metrics) -> None:
        self.bus = bus
        self.store = bus.store
        self.metrics = metrics
        self.grace_ms = settings.commands.extension_grace
        self.placement = Placement(self.store)
        self.outbox = Outbox(bus, settings.channels.history)

    # --- delivery ------------------------------------------------------------------------

    async def to_origin_and_session(self, state: Message, event: str, data: Message) -> None:
        """The client that sent the command, and every reader of its session."""
        await self.outbox.to_socket(state["origin"], event, data)
        session_id = state["cmd"].get("sessionId")
        if session_id:
            await self.outbox.to_session(state["tenant"], session_id, event, data,
                                         skip=state["origin"])

    async def to_extension(self, tenant: str, extension_id: str, event: str, data: Message,
                           origin: Message | None = None, record: Message | None = None) -> None:
        """Deliver to an extension; with `origin`, its gateway may route progress straight back."""
        record = record or await self.store.get(p.extension_key(tenant, extension_id))
        if record is None:
            return
        delivery = {"t": p.DELIVER_TO_EXTENSION, "tenant": tenant, "ext": extension_id,
                    "event": event, "data": data}
        if origin is not None:
            delivery["origin"] = origin
        await self.bus.publish(p.gateway_inbox(record["gw"]), delivery)

    async def refuse(self, origin: Message, code: p.ErrorCode, message: str, **extra: Any) -> None:
        await self.outbox.to_socket(origin, "error",
                                    {"code": code.value, "message": message, **extra})

    # --- handlers, one per message kind --------------------------------------------------

    async def on_command(self, entry_id: str, message: Message) -> None:
        tenant, command = message["tenant"], message["cmd"]
        key = p.command_key(tenant, command["id"])
        state = {
            "id": command["id"], "tenant": tenant, "type": command["type"],
            "subject": message["subject"], "origin": message["origin"], "entry": entry_id,
            "status": "new", "ext": None, "deadline": command["deadline"],
            "accepted": message.get("accepted", now_ms()), "cmd": command,
        }
        ttl = max(command["deadline"] - now_ms(), 0) + RETAIN_MS
        if not await self.store.put_if_absent(key, state, ttl_ms=ttl):
            existing = await self.store.get(key)
            if existing is None:
                return
            if existing.get("entry") != entry_id:
                await self._repeat(existing, message["origin"])
                return
            if existing["status"] != "new":
                return  # a redelivery of work another router already did
            state = existing
            await self.store.schedule(p.DEADLINES, p.pair(tenant, command["id"]),
                                      command["deadline"])
        else:
            self.metrics.commands_in_flight.add(1)
            await asyncio.gather(
                self.store.incr(p.tenant_in_flight_key(tenant)),
                self.store.schedule(p.DEADLINES, p.pair(tenant, command["id"]),
                                    command["deadline"]),
            )
        await self.dispatch(state)

    async def _repeat(self, state: Message, origin: Message) -> None:
        """A command id used again is never run twice: the sender gets the result when there is
        one, else the result goes to the new sender (a client that reconnected elsewhere)."""
        if state.get("result") is not None:
            await self.outbox.to_socket(origin, "result", state["result"])
            return
        state["origin"] = origin
        await self.store.put(p.command_key(state["tenant"], state["id"]), state,
                             ttl_ms=self._ttl(state))

    async def dispatch(self, state: Message) -> None:
        tenant, command = state["tenant"], state["cmd"]
        choice = await self.placement.pick(tenant, command)
        key = p.command_key(tenant, state["id"])
        if choice is None:
            state["status"] = "queued"
            await self.store.put(key, state, ttl_ms=self._ttl(state))
            await self.store.schedule(p.queue_key(tenant), state["id"], state["accepted"])
            return
        extension_id, record = choice
        state["status"], state["ext"] = "dispatched", extension_id
        # One round trip (the store pipelines a tick's commands, in order): the state is
        # written before the extension can possibly see the command.
        await asyncio.gather(
            self.store.put(key, state, ttl_ms=self._ttl(state)),
            self.store.incr(p.extension_load_key(tenant, extension_id)),
            self.store.add(p.extension_commands_key(tenant, extension_id), state["id"]),
            self.store.add(p.BUSY_EXTENSIONS, p.pair(tenant, extension_id)),
        )
        await self.to_extension(tenant, extension_id, "command", command, state["origin"], record)

    @staticmethod
    def _ttl(state: Message) -> int:
        return max(state["deadline"] - now_ms(), 0) + RETAIN_MS

    async def on_progress(self, message: Message) -> None:
        state = await self._assigned(message)
        if state is None:
            return
        await self.to_origin_and_session(state, "progress",
                                         p.progress_event(state["cmd"], message["data"]))

    async def on_result(self, message: Message) -> None:
        state = await self._assigned(message)
        if state is None:
            return
        report = message["data"]
        await self.finish(state, bool(report["success"]), data=report.get("data"),
                          error=report.get("error"))

    async def _assigned(self, message: Message) -> Message | None:
        """The command an extension reports on, only if it is that extension's and still open."""
        state = await self.store.get(p.command_key(message["tenant"], message["data"]["id"]))
        if state is None or state["status"] != "dispatched" or state["ext"] != message["ext"]:
            return None
        return state

    async def on_cancel(self, message: Message) -> None:
        tenant, command_id = message["tenant"], message["id"]
        state = await self.store.get(p.command_key(tenant, command_id))
        if state is None or state["status"] == "done":
            await self.refuse(message["origin"], p.ErrorCode.VALIDATION_FAILED,
                              "no command with this id is in flight", event="cancel",
                              id=command_id)
            return
        await self.end(state, p.ErrorCode.CANCELLED, "cancelled by the client")

    async def on_extension_up(self, message: Message) -> None:
        """An extension (re)connected: it may take queued work."""
        await self.drain_queue(message["tenant"])

    async def on_extension_down(self, message: Message) -> None:
        await self.store.schedule(
            p.GRACE, p.pair(message["tenant"], message["ext"]), now_ms() + self.grace_ms
        )

    # --- ending ----------------------------------------------------------------------------

    async def end(self, state: Message, code: p.ErrorCode, message: str) -> None:
        """End a command with an error; the extension, if any, is told to stop."""
        if await self.finish(state, False, error={"code": code.value, "message": message}):
            if state.get("ext") and code in (p.ErrorCode.CANCELLED, p.ErrorCode.TIMEOUT):
                await self.to_extension(state["tenant"], state["ext"], "cancel",
                                        {"id": state["id"]})

    async def finish(self, state: Message, success: bool, *, data: Any = None,
                     error: Message | None = None) -> bool:
        tenant, command_id = state["tenant"], state["id"]
        finished = now_ms()
        result: Message = {"id": command_id, "success": success}
        if data is not None:
            result["data"] = data
        if error is not None:
            result["error"] = error
        result.update(p.echo(state["cmd"]))
        result["metadata"] = {"duration": finished - state["accepted"], "timestamp": finished,
                              "extension": state.get("ext") or ""}
        end_key = p.command_end_key(tenant, command_id)
        if not await self.store.put_if_absent(end_key, result, ttl_ms=RETAIN_MS):
            # Ended already. If the router that ended it died before finishing the job (the
            # state is still not done long after), finish it with the result it recorded.
            recorded, current = await asyncio.gather(
                self.store.get(end_key), self.store.get(p.command_key(tenant, command_id)))
            if (recorded is None or current is None or current["status"] == "done"
                    or finished - recorded["metadata"]["timestamp"] < ABANDONED_AFTER_MS):
                return False
            result, state = recorded, current
        previous = state["status"]
        state.update(status="done", result=result)
        steps = [  # in this order, in one round trip: the result is stored before it is sent
            self.store.unschedule(p.DEADLINES, p.pair(tenant, command_id)),
            self.store.put(p.command_key(tenant, command_id), state, ttl_ms=RETAIN_MS),
            self.store.incr(p.tenant_in_flight_key(tenant), -1),
        ]
        if previous == "queued":
            steps.append(self.store.unschedule(p.queue_key(tenant), command_id))
        elif state.get("ext"):
            steps += [
                self.store.incr(p.extension_load_key(tenant, state["ext"]), -1),
                self.store.remove(p.extension_commands_key(tenant, state["ext"]), command_id),
            ]
        steps += [self.to_origin_and_session(state, "result", result),
                  self.announce(state, result)]
        await asyncio.gather(*steps)
        outcome = "success" if success else (error or {}).get("code", "FAILED")
        self.metrics.commands_in_flight.add(-1)
        self.metrics.commands.add(1, {"type": state["type"], "outcome": outcome})
        self.metrics.command_duration.record((finished - state["accepted"]) / 1000)
        if previous == "dispatched" and await self.store.scheduled_count(p.queue_key(tenant)):
            await self.drain_queue(tenant)
        return True

    async def announce(self, state: Message, result: Message) -> None:
        """Failures go to the `errors` channel, downloads to `downloads`."""
        data = result.get("data")
        names_download = isinstance(data, dict) and ("download" in data or "downloadUrl" in data)
        if not result["success"]:
            channel = "errors"
        elif state["type"] == "DOWNLOAD_IMAGE" or names_download:
            channel = "downloads"
        else:
            return
        await self.outbox.to_channel(state["tenant"], channel,
                                     {"type": state["type"], **result}, p.SYSTEM_PUBLISHER)

    # --- schedules ---------------------------------------------------------------------------

    async def drain_queue(self, tenant: str) -> None:
        for command_id in await self.store.due(p.queue_key(tenant), float("inf")):
            if not await self.store.unschedule(p.queue_key(tenant), command_id):
                continue
            state = await self.store.get(p.command_key(tenant, command_id))
            if state is None or state["status"] != "queued":
                continue
            await self.dispatch(state)
            if state["status"] == "queued":
                break  # nobody can take more now

    async def expire_deadlines(self) -> None:
        for member in await self.store.due(p.DEADLINES, now_ms()):
            tenant, command_id = p.unpair(member)
            state = await self.store.get(p.command_key(tenant, command_id))
            if state is None or state["status"] == "done":
                await self.store.unschedule(p.DEADLINES, member)
            elif state["status"] in ("queued", "new"):
                await self.end(state, p.ErrorCode.NO_EXTENSION,
                               "no capable extension connected before the deadline")
            else:
                await self.end(state, p.ErrorCode.TIMEOUT, "the command timed out")

    async def expire_grace(self) -> None:
        for member in await self.store.due(p.GRACE, now_ms()):
            if not await self.store.unschedule(p.GRACE, member):
                continue
            tenant, extension_id = p.unpair(member)
            if await self.store.get(p.extension_key(tenant, extension_id)) is not None:
                continue  # it came back in time
            commands_key = p.extension_commands_key(tenant, extension_id)
            for command_id in await self.store.members(commands_key):
                state = await self.store.get(p.command_key(tenant, command_id))
                if state is not None and state["status"] == "dispatched":
                    await self.end(state, p.ErrorCode.EXTENSION_DISCONNECTED,
                                   "the extension disconnected and did not come back")

    async def sweep_vanished_extensions(self) -> None:
        """Extensions whose gateway died never say goodbye: their registry record expires.
        Give them the same grace period as a clean disconnect."""
        for member in await self.store.members(p.BUSY_EXTENSIONS):
            tenant, extension_id = p.unpair(member)
            if not await self.store.members(p.extension_commands_key(tenant, extension_id)):
                await self.store.remove(p.BUSY_EXTENSIONS, member)
            elif await self.store.get(p.extension_key(tenant, extension_id)) is None:
                await self.store.schedule(p.GRACE, member, now_ms() + self.grace_ms, keep=True)
