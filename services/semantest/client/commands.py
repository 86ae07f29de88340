"""A sent command until its one result: what `Hub.submit` returns.

It is awaitable (the `Result`, or the typed error the result carries), can be cancelled, and
keeps the payload so the hub can be asked again by the same id after a reconnect.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any

from semantest.client import errors
from semantest.client.messages import Progress, Result

if TYPE_CHECKING:
    from semantest.client.hub import Hub

ProgressCallback = Callable[[Progress], Awaitable[None] | None]


class CommandHandle:
    def __init__(self, hub: Hub, payload: dict[str, Any], wait_s: float,
                 on_progress: ProgressCallback | None) -> None:
        self.payload = payload
        self.id: str = payload["id"]
        self.correlation_id: str | None = payload.get("correlationId")
        self.accepted = False
        """The hub acknowledged it at least once (so a reconnect asks again by id)."""
        self._hub = hub
        self._wait_s = wait_s
        self._on_progress = on_progress
        self._outcome: asyncio.Future[Result] = asyncio.get_running_loop().create_future()

    def __await__(self) -> Generator[Any, None, Result]:
        return self.result().__await__()

    @property
    def done(self) -> bool:
        return self._outcome.done()

    async def result(self) -> Result:
        """The successful `Result`; any other ending raises its `HubError` subclass. Waits at
        most the command's timeout plus the hub's grace (`Hub(result_grace=...)`)."""
        try:
            return await asyncio.wait_for(asyncio.shield(self._outcome), self._wait_s)
        except TimeoutError:
            self._hub._forget(self.id)
            raise errors.CommandTimeout(
                f"no result for {self.id} within {self._wait_s:.1f}s (the hub was unreachable)",
                code="TIMEOUT", details={"local": True}, command_id=self.id) from None

    async def cancel(self) -> bool:
        """Ask the hub to cancel: True if it did (awaiting then raises `Cancelled`), False if
        the command had already ended (its result stands)."""
        if self.done:
            return False
        try:
            await self._hub._connection.call("cancel", {"id": self.id})
        except errors.ValidationFailed:
            return False  # it ended meanwhile: the hub says "no command in flight"
        return True

    def _progress(self, progress: Progress) -> Awaitable[None] | None:
        return None if self._on_progress is None else self._on_progress(progress)

    def _settle(self, result: Result) -> None:
        if self._outcome.done():
            return
        if result.success:
            self._outcome.set_result(result)
        else:
            self._fail(errors.from_wire(
                {**(result.error or {"code": "INTERNAL", "message": "failed without error"}),
                 "id": result.id}, result=result))

    def _fail(self, error: errors.HubError) -> None:
        if not self._outcome.done():
            self._outcome.set_exception(error)
            self._outcome.exception()  # counted as seen: a handle may never be awaited


async def call_back(callback: Awaitable[None] | None) -> None:
    """Await what a user callback returned, if it was a coroutine."""
    if inspect.isawaitable(callback):
        await callback
