"""`async for message in hub.subscribe(channel, since=...)`: one channel's messages, in order;
and `hub.watch(session_id)`: the progress and results of a session's commands.

`async with hub.subscribe(...) as messages:` subscribes on entry (so nothing published after it
is missed) and unsubscribes on exit; a bare `async for` subscribes at the first iteration.
Either iteration ends when the `Hub` is closed, and raises the error if the hub refused it for
good.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from semantest.client.feed import Feed
from semantest.client.messages import ChannelMessage, Progress, Result

if TYPE_CHECKING:
    from semantest.client.hub import Hub


class Subscription(Feed[ChannelMessage]):
    def __init__(self, hub: Hub, channel: str, since: str | None) -> None:
        super().__init__()
        self.channel, self.since = channel, since
        self._hub = hub
        self._open = False

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

    async def __anext__(self) -> ChannelMessage:
        await self.open()
        return await super().__anext__()

    def _end(self, error: BaseException | None) -> None:
        self._open = False
        super()._end(error)


class SessionWatch(Feed[Progress | Result]):
    """Every `progress` and `result` of the session's commands this socket receives (it needs
    `read` in the session: join it first). Own commands included."""

    def __init__(self, hub: Hub, session_id: str) -> None:
        super().__init__()
        self.session_id = session_id
        self._hub = hub

    async def __aenter__(self) -> SessionWatch:
        return self

    async def __aexit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        self._hub._unwatch(self)
        self._end(None)
