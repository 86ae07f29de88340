"""`Hub`: the client side of docs/protocol.md — commands, sessions and channels over one socket.

    async with Hub("http://localhost:3000", api_key="...") as hub:
        result = await hub.run("NAVIGATE", url="https://example.com", timeout=10)

After a reconnect (a gateway died or drained) it joins its sessions again, subscribes again from
the last offset it saw, and re-sends every command still without a result under the same id:
the hub never runs an id twice, so each command still ends in exactly one result.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Any

from semantest.client import errors
from semantest.client.commands import CommandHandle, ProgressCallback, call_back
from semantest.client.connection import SOCKET_ERRORS, Connection
from semantest.client.messages import ChannelMessage, Progress, Result, Session
from semantest.client.subscription import SessionWatch, Subscription

log = logging.getLogger("semantest.client")


def credentials(api_key: str | None, token: str | None) -> dict[str, Any]:
    if (api_key is None) == (token is None):
        raise ValueError("give exactly one of api_key= or token=")
    return {"apiKey": api_key} if api_key is not None else {"token": token}


def _offset(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms or 0), int(seq or 0)


class Hub:
    def __init__(self, url: str, *, api_key: str | None = None, token: str | None = None,
                 timeout: float = 30.0, result_grace: float = 15.0, ack_timeout: float = 10.0,
                 connect_timeout: float = 10.0, headers: dict[str, str] | None = None,
                 transports: list[str] | None = None) -> None:
        """`timeout` (seconds) is each command's default; `result_grace` is how much longer a
        command waits for its result when the hub cannot be reached (the hub itself always
        ends a command by its deadline)."""
        self.url = url
        self.timeout, self.result_grace = timeout, result_grace
        self._connection = Connection(url, credentials(api_key, token), headers=headers,
                                      transports=transports, connect_timeout=connect_timeout,
                                      ack_timeout=ack_timeout)
        self._connection.resume = self._resume
        self._connection.on_fatal = self._refused
        self._pending: dict[str, CommandHandle] = {}
        self._sessions: dict[str, str | None] = {}  # id → share token used to join
        self._subscriptions: dict[str, list[Subscription]] = {}
        self._offsets: dict[str, str] = {}  # channel → last offset delivered
        self._watches: dict[str, list[SessionWatch]] = {}
        for event, handler in (("result", self._on_result), ("progress", self._on_progress),
                               ("*", self._on_any)):
            self._connection.on(event, handler)

    async def __aenter__(self) -> Hub:
        await self.connect()
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self.close()

    async def connect(self) -> None:
        """Connect; a refusal raises its typed error (`AuthInvalid`, `Unavailable`, ...)."""
        await self._connection.open()

    @property
    def connected(self) -> bool:
        """True while new commands go out at once: False while reconnecting, or from a
        gateway's `server:draining` until the next connection."""
        return self._connection.ready.is_set()

    async def close(self) -> None:
        await self._connection.close()
        self._fail_all(errors.Unavailable("the hub client was closed", code="UNAVAILABLE"))
        self._end_feeds(None)

    # --- commands ---------------------------------------------------------------------------

    async def run(self, type: str, *, id: str | None = None, timeout: float | None = None,
                  target: dict[str, Any] | str | None = None,
                  correlation_id: str | None = None, session_id: str | None = None,
                  on_progress: ProgressCallback | None = None, **fields: Any) -> Result:
        """Send a command and wait for its result. `timeout` is in seconds; `target` is an
        extensionId or the protocol's `target` object; any other keyword goes into the
        command as a top-level field (`url=...`, `selector=...`). Returns the `Result` on
        success, raises the `HubError` subclass of the error code otherwise."""
        handle = await self.submit(type, id=id, timeout=timeout, target=target,
                                   correlation_id=correlation_id, session_id=session_id,
                                   on_progress=on_progress, **fields)
        return await handle.result()

    async def submit(self, type: str, *, id: str | None = None, timeout: float | None = None,
                     target: dict[str, Any] | str | None = None,
                     correlation_id: str | None = None, session_id: str | None = None,
                     on_progress: ProgressCallback | None = None,
                     **fields: Any) -> CommandHandle:
        """Send a command; return once the hub accepted it. Await the handle for the result,
        or call `await handle.cancel()`. Arguments as for `run`."""
        timeout = self.timeout if timeout is None else timeout
        payload: dict[str, Any] = {**fields, "id": id or str(uuid.uuid4()), "type": type,
                                   "timeout": max(1, round(timeout * 1000))}
        if target is not None:
            payload["target"] = {"extensionId": target} if isinstance(target, str) else target
        if correlation_id is not None:
            payload["correlationId"] = correlation_id
        if session_id is not None:
            payload["sessionId"] = session_id
        if payload["id"] in self._pending:
            raise errors.ValidationFailed(f"command {payload['id']} is already in flight here",
                                          code="VALIDATION_FAILED", command_id=payload["id"])
        handle = CommandHandle(self, payload, timeout + self.result_grace, on_progress)
        self._pending[handle.id] = handle
        try:
            await self._send_until_acked(handle)
        except BaseException:
            self._forget(handle.id)
            raise
        return handle

    async def _send_until_acked(self, handle: CommandHandle) -> None:
        """Send on the current socket; if it goes away first, send again on the next one;
        give up (`Unavailable`) when no ack came within the command's own time bound."""
        loop = asyncio.get_running_loop()
        until = loop.time() + handle._wait_s
        while not handle.accepted and not handle.done:
            if (left := until - loop.time()) <= 0:
                raise errors.Unavailable(f"the hub never acknowledged command {handle.id}",
                                         code="UNAVAILABLE", command_id=handle.id)
            await self._connection.wait_ready(left)
            try:
                await self._connection.call("command", handle.payload)
            except (TimeoutError, *SOCKET_ERRORS):
                continue  # no ack: ask again (same id) once connected
            handle.accepted = True

    def _forget(self, command_id: str) -> None:
        self._pending.pop(command_id, None)

    async def _resend(self, handle: CommandHandle) -> None:
        try:
            await self._connection.call("command", handle.payload)
        except errors.HubError as error:
            self._forget(handle.id)
            handle._fail(error)
        except (TimeoutError, *SOCKET_ERRORS):
            pass  # the next reconnect sends it again

    def _on_result(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        result = Result.from_wire(body)
        handle = self._pending.pop(result.id, None)
        if handle is not None:
            handle._settle(result)
        self._to_watches(result)

    async def _on_progress(self, body: Any) -> None:
        if not isinstance(body, dict):
            return
        progress = Progress.from_wire(body)
        self._to_watches(progress)
        handle = self._pending.get(progress.id)
        if handle is not None:
            await call_back(handle._progress(progress))

    def _to_watches(self, event: Progress | Result) -> None:
        for watch in self._watches.get(event.session_id or "", []):
            watch._deliver(event)

    def _fail_all(self, error: errors.HubError) -> None:
        pending, self._pending = self._pending, {}
        for handle in pending.values():
            handle._fail(error)

    def _end_feeds(self, error: errors.HubError | None) -> None:
        feeds = [*self._subscriptions.values(), *self._watches.values()]
        self._subscriptions, self._watches = {}, {}
        for readers in feeds:
            for feed in readers:
                feed._end(error)

    def _refused(self, error: errors.HubError) -> None:
        self._fail_all(error)
        self._end_feeds(error)

    # --- sessions ---------------------------------------------------------------------------

    async def create_session(self, name: str, *, persistent: bool = False) -> Session:
        session = Session.from_wire(await self._connection.call(
            "session:create", {"name": name, "persistent": persistent}))
        self._sessions[session.id] = None
        return session

    async def join_session(self, session_id: str, share_token: str | None = None) -> Session:
        request = {"sessionId": session_id}
        if share_token is not None:
            request["shareToken"] = share_token
        session = Session.from_wire(await self._connection.call("session:join", request))
        self._sessions[session_id] = share_token
        return session

    async def share_session(self, session_id: str, permissions: list[str] | tuple[str, ...] = (
            "read",), *, expires_in: int | None = None) -> str:
        """A signed token another principal passes to `join_session` (`expires_in` seconds)."""
        request: dict[str, Any] = {"sessionId": session_id, "permissions": list(permissions)}
        if expires_in is not None:
            request["expiresIn"] = expires_in
        return (await self._connection.call("session:share", request))["shareToken"]

    def watch(self, session_id: str) -> SessionWatch:
        """The `Progress` and `Result` of every command in the session, as an async iterator
        (needs `read`: create or join the session first). `close()` it, or use `with`."""
        watch = SessionWatch(self, session_id)
        self._watches.setdefault(session_id, []).append(watch)
        return watch

    def _unwatch(self, watch: SessionWatch) -> None:
        watches = self._watches.get(watch.session_id, [])
        if watch in watches:
            watches.remove(watch)

    async def leave_session(self, session_id: str) -> None:
        await self._connection.call("session:leave", {"sessionId": session_id})
        self._sessions.pop(session_id, None)

    # --- channels ---------------------------------------------------------------------------

    def subscribe(self, channel: str, *, since: str | None = None) -> Subscription:
        """Messages of `channel` (after offset `since`, when given) as an async iterator."""
        return Subscription(self, channel, since)

    async def publish(self, channel: str, message: Any) -> str:
        """Publish; returns the message's offset."""
        return (await self._connection.call("publish", {"channel": channel,
                                                        "message": message}))["offset"]

    async def _subscribe(self, subscription: Subscription) -> None:
        channel = subscription.channel
        request: dict[str, Any] = {"channels": [channel]}
        if subscription.since is not None:
            request["since"] = subscription.since
            if channel in self._offsets and _offset(subscription.since) < _offset(
                    self._offsets[channel]):
                self._offsets[channel] = subscription.since  # replay what came after it again
        # Listening before asking: the replay of `since` may come before the ack.
        self._subscriptions.setdefault(channel, []).append(subscription)
        try:
            await self._connection.call("subscribe", request)
        except BaseException:
            self._subscriptions[channel].remove(subscription)
            raise

    async def _unsubscribe(self, subscription: Subscription) -> None:
        readers = self._subscriptions.get(subscription.channel, [])
        if subscription in readers:
            readers.remove(subscription)
        if not readers:
            self._subscriptions.pop(subscription.channel, None)
            self._offsets.pop(subscription.channel, None)
            await self._connection.call("unsubscribe", {"channels": [subscription.channel]})

    def _on_any(self, event: str, body: Any = None) -> None:
        if not event.startswith("channel:") or not isinstance(body, dict):
            return
        message = ChannelMessage.from_wire(body)
        seen = self._offsets.get(message.channel)
        if seen is not None and _offset(message.offset) <= _offset(seen):
            return  # already delivered before a reconnect's replay
        self._offsets[message.channel] = message.offset
        for subscription in self._subscriptions.get(message.channel, []):
            subscription._deliver(message)

    # --- status -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The hub's status for this tenant: extensions, commands in flight and queued."""
        return await self._connection.call("status", None)

    # --- after a reconnect --------------------------------------------------------------------

    async def _resume(self) -> None:
        for session_id, share_token in list(self._sessions.items()):
            try:
                await self.join_session(session_id, share_token)
            except errors.HubError as error:
                log.warning("session %s not joined again after a reconnect: %s", session_id,
                            error)
                self._sessions.pop(session_id, None)
        for channel in list(self._subscriptions):
            request: dict[str, Any] = {"channels": [channel]}
            if channel in self._offsets:
                request["since"] = self._offsets[channel]
            await self._connection.call("subscribe", request)
        await asyncio.gather(*(self._resend(handle) for handle in list(self._pending.values())
                               if handle.accepted))
