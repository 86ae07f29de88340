"""Sending to sockets anywhere: one socket, a session's readers, or a channel's subscribers.

Shared by the router (results, system channels) and the gateway (progress, publishes). Every
delivery is an entry in the inbox stream of the gateway that holds the socket; a channel message
is also kept in the channel's own stream, whose entry id is the message offset.
"""

from __future__ import annotations

import time

from semantest import protocol as p
from semantest.bus.base import Bus, Message


class Outbox:
    def __init__(self, bus: Bus, channel_history: int) -> None:
        self.bus = bus
        self.store = bus.store
        self.channel_history = channel_history

    async def to_socket(self, origin: Message, event: str, data: Message) -> None:
        await self.bus.publish(
            p.gateway_inbox(origin["gw"]),
            {"t": p.DELIVER_TO_SOCKET, "sids": [origin["sid"]], "event": event, "data": data},
        )

    async def to_session(self, tenant: str, session_id: str, event: str, data: Message,
                         skip: Message | None = None) -> None:
        """Every socket attached to the session with `read`, except `skip` (the origin)."""
        entries = await self.store.members(p.session_sockets_key(tenant, session_id))
        for gateway, sids in p.session_readers(entries, skip or {}).items():
            await self.bus.publish(
                p.gateway_inbox(gateway),
                {"t": p.DELIVER_TO_SOCKET, "sids": sids, "event": event, "data": data},
            )

    async def to_channel(self, tenant: str, channel: str, message: object,
                         publisher: str) -> Message:
        """Publish on a channel; returns the event subscribers get, with its offset."""
        timestamp = int(time.time() * 1000)
        kept = {"channel": channel, "message": message, "timestamp": timestamp,
                "publisher": publisher}
        offset = await self.bus.publish(p.channel_stream(tenant, channel), kept,
                                        maxlen=max(self.channel_history, 1))
        event = {**kept, "offset": offset}
        for gateway in await self.store.members(p.channel_gateways_key(tenant, channel)):
            await self.bus.publish(
                p.gateway_inbox(gateway),
                {"t": p.DELIVER_TO_CHANNEL, "tenant": tenant, "channel": channel, "data": event},
            )
        return event
