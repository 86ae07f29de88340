"""`async for message in hub.subscribe(channel, since=...)`: one channel's messages, in order.

`async with hub.subscribe(...) as messages:` subscribes on entry (so nothing published after it
is missed) and unsubscribes on exit; a bare `async for` subscribes at the first iteration.
The iteration ends when the `Hub` is closed, and raises the error if the hub refused it for good.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from semantest.client.messages import ChannelMessage

if TYPE_CHECKING:
    from semantest.client.hub import Hub


class Subscription(AsyncIterator[ChannelMessage]):
    def __init__(self, hub: Hub, channel: str, since: str | None) -> None:
        self.channel, self.since = channel, since
        self._hub = hub
        self._queue: asyncio.Queue[ChannelMessage | BaseException | None] = asyncio.Queue()
        self._open = False
        self._ended = False

    async def __aenter__(self) -> Subscription:
        await self.open()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    async def open(self) -> None:
        if not self._open and not self._ended:
            await self._hub._subscribe(self)
            self._open = True

    async def close(self) -> None:
        if self._open:
            self._open = False
            await self._hub._unsubscribe(self)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> ChannelMessage:
        await self.open()
        message = await self._queue.get()
        if isinstance(message, ChannelMessage):
            return message
        self._queue.put_nowait(message)  # every later call ends the same way
        if message is None:
            raise StopAsyncIteration
        raise message

    def _deliver(self, message: ChannelMessage) -> None:
        self._queue.put_nowait(message)

    def _end(self, error: BaseException | None) -> None:
        self._open, self._ended = False, True
        self._queue.put_nowait(error)
