"""An async iterator fed by Socket.IO handlers: what channel subscriptions and session watches
share. Items arrive with `_deliver`; `_end` finishes the iteration (or makes it raise)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Generic, TypeVar

T = TypeVar("T")


class Feed(AsyncIterator[T], Generic[T]):
    def __init__(self) -> None:
        self._queue: asyncio.Queue[tuple[T] | BaseException | None] = asyncio.Queue()
        self._ended = False

    def __aiter__(self) -> Feed[T]:
        return self

    async def __anext__(self) -> T:
        item = await self._queue.get()
        if isinstance(item, tuple):
            return item[0]
        self._queue.put_nowait(item)  # every later call ends the same way
        if item is None:
            raise StopAsyncIteration
        raise item

    def _deliver(self, item: T) -> None:
        if not self._ended:
            self._queue.put_nowait((item,))

    def _end(self, error: BaseException | None) -> None:
        if not self._ended:
            self._ended = True
            self._queue.put_nowait(error)
