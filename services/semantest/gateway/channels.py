"""Pub/sub channels (DESIGN §3.5): subscribe with `since` replay, unsubscribe, publish.

Local subscribers are Socket.IO rooms; the store knows which gateways have subscribers on a
channel, and only those get a publish. A replay reads the channel's stream; live messages that the
replay already covered are skipped for that socket, so `since` gives each missed message once.
"""

from __future__ import annotations

from typing import Annotated, Any

import socketio
from pydantic import Field, StringConstraints

from semantest import protocol as p
from semantest.bus.base import Bus, Message
from semantest.config import Settings
from semantest.gateway import events
from semantest.gateway.connections import Connection
from semantest.outbox import Outbox
from semantest.protocol import ErrorCode, HubError

ChannelName = Annotated[str, StringConstraints(pattern=p.CHANNEL_NAME)]
Offset = Annotated[str, StringConstraints(pattern=r"^\d{1,20}-\d{1,20}$")]
REPLAYING = (2**64, 0)
"""The mark of a replay in progress: every live message waits for the replay to catch up."""


class Subscribe(events.Shape):
    channels: list[ChannelName] = Field(min_length=1)
    since: Offset | None = None


class Unsubscribe(events.Shape):
    channels: list[ChannelName] = Field(min_length=1)


class Publish(events.Shape):
    channel: ChannelName
    message: Any = None


def offset_key(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq)


def room(tenant: str, channel: str) -> str:
    return p.pair("channel", tenant, channel)


class Channels:
    def __init__(self, settings: Settings, bus: Bus, outbox: Outbox, sio: socketio.AsyncServer,
                 gateway_id: str) -> None:
        self.bus = bus
        self.store = bus.store
        self.outbox = outbox
        self.sio = sio
        self.gateway_id = gateway_id
        self.max_subscriptions = settings.websocket.max_subscriptions
        self.history = settings.channels.history
        self.local: dict[tuple[str, str], int] = {}
        """(tenant, channel) → subscribed sockets on this gateway."""
        self.marks: dict[tuple[str, str], dict[str, tuple[int, int]]] = {}
        """(tenant, channel) → {sid: last offset its replay delivered}."""

    async def subscribe(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Subscribe, data)
        wanted = list(dict.fromkeys(request.channels))
        new = [c for c in wanted if c not in connection.channels]
        if len(connection.channels) + len(new) > self.max_subscriptions:
            raise HubError(ErrorCode.VALIDATION_FAILED,
                           f"at most {self.max_subscriptions} subscriptions per connection")
        tenant = connection.principal.tenant
        for channel in new:
            if request.since is not None:
                self.marks.setdefault((tenant, channel), {})[connection.sid] = REPLAYING
            await self._join(connection, channel)
        if request.since is not None:
            for channel in wanted:
                await self._replay(connection, channel, request.since)
        return {"channels": wanted}

    async def unsubscribe(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Unsubscribe, data)
        for channel in dict.fromkeys(request.channels):
            if channel in connection.channels:
                await self._leave(connection, channel)
        return {"channels": request.channels}

    async def publish(self, connection: Connection, data: Any) -> Message:
        request = events.parse(Publish, data)
        if request.channel in p.SYSTEM_CHANNELS:
            raise HubError(ErrorCode.FORBIDDEN, f"only the hub publishes on {request.channel!r}")
        event = await self.outbox.to_channel(connection.principal.tenant, request.channel,
                                             request.message, connection.principal.subject)
        return {"offset": event["offset"]}

    async def leave_all(self, connection: Connection) -> None:
        for channel in list(connection.channels):
            await self._leave(connection, channel)

    async def deliver(self, message: Message) -> None:
        tenant, channel, event = message["tenant"], message["channel"], message["data"]
        if (tenant, channel) not in self.local:
            return
        marks = self.marks.get((tenant, channel))
        skip = []
        if marks:
            offset = offset_key(event["offset"])
            for sid, mark in list(marks.items()):
                if offset <= mark:
                    skip.append(sid)
                elif mark is not REPLAYING:
                    del marks[sid]  # the replay is behind it now
        await self.sio.emit(f"channel:{channel}", event, room=room(tenant, channel),
                            skip_sid=skip or None)

    async def _join(self, connection: Connection, channel: str) -> None:
        tenant = connection.principal.tenant
        connection.channels.add(channel)
        await self.sio.enter_room(connection.sid, room(tenant, channel))
        key = (tenant, channel)
        self.local[key] = self.local.get(key, 0) + 1
        if self.local[key] == 1:
            await self.store.add(p.channel_gateways_key(tenant, channel), self.gateway_id)

    async def _leave(self, connection: Connection, channel: str) -> None:
        tenant = connection.principal.tenant
        connection.channels.discard(channel)
        await self.sio.leave_room(connection.sid, room(tenant, channel))
        self.marks.get((tenant, channel), {}).pop(connection.sid, None)
        key = (tenant, channel)
        self.local[key] -= 1
        if self.local[key] == 0:
            del self.local[key]
            self.marks.pop(key, None)
            await self.store.remove(p.channel_gateways_key(tenant, channel), self.gateway_id)

    async def _replay(self, connection: Connection, channel: str, since: str) -> None:
        """Send what was published after `since`, then let live messages through."""
        tenant = connection.principal.tenant
        stream = p.channel_stream(tenant, channel)
        position = since
        while True:
            batch = await self.bus.history(stream, position, max(self.history, 1))
            if not batch:
                break
            for entry in batch:
                await self.sio.emit(f"channel:{channel}", {**entry.message, "offset": entry.id},
                                    to=connection.sid)
            position = batch[-1].id
        marks = self.marks.get((tenant, channel))
        if marks is not None and connection.sid in marks:
            marks[connection.sid] = offset_key(position)
