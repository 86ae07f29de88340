"""The same `Hub` for scripts without asyncio: `semantest.client.sync.Hub`.

    from semantest.client.sync import Hub

    with Hub("http://localhost:3000", api_key="...") as hub:
        page = hub.run("NAVIGATE", url="https://example.com")

Every call runs the async `Hub`'s coroutine on one event loop in a background thread and waits
for it: there is no second implementation of the protocol here, only the hand-over. Callbacks
(`on_progress`) run on that background thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from semantest.client import hub as async_hub
from semantest.client.commands import CommandHandle
from semantest.client.feed import Feed
from semantest.client.messages import ChannelMessage, Progress, Result, Session

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread; `call` runs a coroutine there and waits."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="semantest-client",
                                       daemon=True)
        self.thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if not self.loop.is_running():
            coroutine.close()
            raise RuntimeError("this Hub is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


class Handle:
    """A submitted command: `result()` waits for it, `cancel()` asks the hub to cancel it."""

    def __init__(self, handle: CommandHandle, thread: LoopThread) -> None:
        self.id, self.correlation_id = handle.id, handle.correlation_id
        self._handle, self._thread = handle, thread

    def result(self) -> Result:
        return self._thread.call(self._handle.result())

    def cancel(self) -> bool:
        return self._thread.call(self._handle.cancel())


class Hub:
    """Blocking twin of `semantest.client.Hub`: same arguments, same results and errors."""

    def __init__(self, url: str, **options: Any) -> None:
        self._thread = LoopThread()
        try:
            self._hub = self._thread.call(_build(url, options))
            self._thread.call(self._hub.connect())
        except BaseException:
            self._thread.stop()
            raise

    def __enter__(self) -> Hub:
        return self

    def __exit__(self, *_: Any) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._thread.call(self._hub.close())
        finally:
            self._thread.stop()

    def run(self, type: str, **arguments: Any) -> Result:
        return self._thread.call(self._hub.run(type, **arguments))

    def submit(self, type: str, **arguments: Any) -> Handle:
        return Handle(self._thread.call(self._hub.submit(type, **arguments)), self._thread)

    def create_session(self, name: str, *, persistent: bool = False) -> Session:
        return self._thread.call(self._hub.create_session(name, persistent=persistent))

    def join_session(self, session_id: str, share_token: str | None = None) -> Session:
        return self._thread.call(self._hub.join_session(session_id, share_token))

    def share_session(self, session_id: str, permissions: list[str] | tuple[str, ...] = (
            "read",), *, expires_in: int | None = None) -> str:
        return self._thread.call(self._hub.share_session(session_id, permissions,
                                                         expires_in=expires_in))

    def leave_session(self, session_id: str) -> None:
        self._thread.call(self._hub.leave_session(session_id))

    def publish(self, channel: str, message: Any) -> str:
        return self._thread.call(self._hub.publish(channel, message))

    def status(self) -> dict[str, Any]:
        return self._thread.call(self._hub.status())

    def subscribe(self, channel: str, *, since: str | None = None) -> Iterator[ChannelMessage]:
        """Subscribes now; iterate for the messages (closing the iterator unsubscribes)."""
        subscription = self._hub.subscribe(channel, since=since)
        self._thread.call(subscription.open())
        return self._iterate(subscription, subscription.close)

    def watch(self, session_id: str) -> Iterator[Progress | Result]:
        """The session's progress and results (closing the iterator stops watching)."""
        watch = self._thread.call(_on_loop(self._hub.watch, session_id))
        return self._iterate(watch, lambda: _on_loop(watch.close))

    def _iterate(self, feed: Feed[T], close: Callable[[], Coroutine[Any, Any, Any]]
                 ) -> Iterator[T]:
        try:
            while True:
                yield self._thread.call(feed.__anext__())
        except StopAsyncIteration:
            return
        finally:
            if self._thread.loop.is_running():  # not after the Hub closed
                self._thread.call(close())


async def _build(url: str, options: dict[str, Any]) -> async_hub.Hub:
    return async_hub.Hub(url, **options)  # made on the loop that will run it


async def _on_loop(function: Callable[..., T], *arguments: Any) -> T:
    """Run a plain function on the loop's thread (it touches the Hub's state)."""
    return function(*arguments)
