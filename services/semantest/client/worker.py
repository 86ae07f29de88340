"""`Worker`: the extension side of docs/protocol.md, for commands served by Python code.

    worker = Worker(url, api_key="...", extension_id="playwright-1")

    @worker.handler("NAVIGATE")
    async def navigate(ctx: Context, url: str) -> dict:
        await ctx.progress(50, "loading")
        return {"url": url, "title": "..."}

    await worker.run()

It declares `acks: true` and acknowledges every command, so nothing it may have missed is lost
across a reconnect; it runs each command id once (a `redelivered` repeat is acknowledged and
skipped); a `cancel` (or the hub's TIMEOUT) cancels the handler's task; a handler's exception
becomes an error result; a result is reported again, on the next connection, until a gateway
acknowledges it or the command's deadline and the hub's grace have passed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

from semantest.client import errors
from semantest.client.connection import SOCKET_ERRORS, Connection
from semantest.client.hub import credentials

log = logging.getLogger("semantest.client.worker")

ENVELOPE = frozenset({"id", "type", "target", "options", "timeout", "deadline",
                      "correlationId", "sessionId", "redelivered"})
"""Command fields that are the hub's, not the handler's parameters (still in `ctx.command`)."""
SEEN_IDS = 10_000
"""How many command ids are remembered to run each once (the hub re-sends only recent ones)."""
REPORT_GRACE_S = 15.0
"""How long past a command's deadline its result is still offered (the hub's extensionGrace
is 10 s by default; after it, nobody listens)."""

UNKNOWN_COMMAND = "UNKNOWN_COMMAND"
HANDLER_ERROR = "HANDLER_ERROR"

Handler = Callable[..., Awaitable[Any]]


class CommandError(errors.HubError):
    """Raise it in a handler to fail the command with your own code (and details)."""

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message, code=code, details=details)


class Context:
    """What a handler knows about the command it runs, and how it reports progress."""

    def __init__(self, worker: Worker, command: dict[str, Any]) -> None:
        self.command = command
        self.id: str = command["id"]
        self.type: str = command["type"]
        self.deadline: int | None = command.get("deadline")
        """Epoch ms after which the hub has ended the command with TIMEOUT."""
        self.redelivered = bool(command.get("redelivered"))
        self.cancelled = False
        """True once the hub cancelled the command (its task is cancelled too)."""
        self._worker = worker

    async def progress(self, percent: float, message: str | None = None,
                       data: Any = None) -> None:
        """Report progress (0-100); lost quietly while the worker is between connections."""
        report: dict[str, Any] = {"id": self.id, "percent": percent}
        if message is not None:
            report["message"] = message
        if data is not None:
            report["data"] = data
        with contextlib.suppress(*SOCKET_ERRORS):
            await self._worker._connection.sio.emit("progress", report)


class Worker:
    def __init__(self, url: str, *, api_key: str | None = None, token: str | None = None,
                 capabilities: list[str] | None = None, extension_id: str | None = None,
                 name: str | None = None, version: str | None = None,
                 max_concurrency: int | None = None, connect_timeout: float = 10.0,
                 ack_timeout: float = 10.0, headers: dict[str, str] | None = None,
                 transports: list[str] | None = None) -> None:
        """`capabilities` default to the types with a handler (`"*"` if one handles all)."""
        self.extension_id = extension_id or f"py-worker-{uuid.uuid4().hex[:12]}"
        self.capabilities = capabilities
        auth = {**credentials(api_key, token), "role": "extension",
                "extensionId": self.extension_id, "acks": True}
        for key, value in (("name", name), ("version", version),
                           ("maxConcurrency", max_concurrency)):
            if value is not None:
                auth[key] = value
        self._connection = Connection(url, auth, headers=headers, transports=transports,
                                      connect_timeout=connect_timeout, ack_timeout=ack_timeout)
        self._handlers: dict[str, Handler] = {}
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._running: dict[str, tuple[asyncio.Task[None], Context]] = {}
        self._stopped = asyncio.Event()
        self._connection.on("command", self._on_command)
        self._connection.on("cancel", self._on_cancel)

    def handler(self, command_type: str) -> Callable[[Handler], Handler]:
        """Decorate `async def handler(ctx, **params)` to serve `command_type` (`"*"`: any
        type without its own handler). Parameters are taken by name from the command's
        top-level fields; a missing one fails the command with VALIDATION_FAILED."""

        def register(function: Handler) -> Handler:
            if not inspect.iscoroutinefunction(function):
                raise TypeError(f"the handler for {command_type} must be an async function")
            self._handlers[command_type] = function
            return function

        return register

    async def __aenter__(self) -> Worker:
        self._connection.auth["capabilities"] = self.capabilities or (
            ["*"] if "*" in self._handlers else sorted(self._handlers))
        await self._connection.open()
        return self

    async def __aexit__(self, *_: Any) -> None:
        for task, _context in list(self._running.values()):
            task.cancel()
        await self._connection.close()

    async def run(self) -> None:
        """Connect and serve commands until `stop()` (or cancellation)."""
        async with self:
            await self._stopped.wait()

    def stop(self) -> None:
        self._stopped.set()

    # --- commands ---------------------------------------------------------------------------

    def _on_command(self, command: Any) -> bool:
        command_id = command.get("id") if isinstance(command, dict) else None
        if not isinstance(command_id, str) or command_id in self._seen:
            return True  # acknowledged, not run again
        self._seen[command_id] = None
        while len(self._seen) > SEEN_IDS:
            self._seen.popitem(last=False)
        context = Context(self, command)
        task = asyncio.ensure_future(self._execute(context))
        self._running[command_id] = (task, context)
        task.add_done_callback(lambda _: self._running.pop(command_id, None))
        return True  # the ack `acks: true` promised

    def _on_cancel(self, body: Any) -> None:
        running = self._running.get(body.get("id")) if isinstance(body, dict) else None
        if running is not None:
            task, context = running
            context.cancelled = True
            task.cancel()

    async def _execute(self, context: Context) -> None:
        try:
            outcome = await self._outcome(context)
        except asyncio.CancelledError:
            if context.cancelled:
                return  # the hub already ended it (CANCELLED or TIMEOUT): nobody wants a result
            raise
        await self._report({"id": context.id, **outcome}, context.deadline)

    async def _outcome(self, context: Context) -> dict[str, Any]:
        handler = self._handlers.get(context.type) or self._handlers.get("*")
        if handler is None:
            return failure(UNKNOWN_COMMAND, f"this worker has no handler for {context.type}")
        try:
            arguments = bind(handler, context)
        except TypeError as exc:
            return failure("VALIDATION_FAILED", f"{context.type}: {exc}")
        try:
            data = await handler(context, **arguments)
        except errors.HubError as exc:
            return failure(exc.code, exc.message, exc.details)
        except Exception as exc:
            log.exception("handler for %s failed on %s", context.type, context.id)
            return failure(HANDLER_ERROR, f"{type(exc).__name__}: {exc}")
        return {"success": True} if data is None else {"success": True, "data": data}

    async def _report(self, result: dict[str, Any], deadline: int | None) -> None:
        """Offer the result until a gateway takes it (on this connection or the next)."""
        until = (deadline or time.time() * 1000) / 1000 + REPORT_GRACE_S
        while (left := until - time.time()) > 0:
            try:
                await self._connection.wait_ready(left)
            except errors.HubError:
                break  # not connected again in time, or refused for good
            try:
                await self._connection.call("result", result)
                return
            except errors.HubError as exc:
                log.error("result for %s refused: %s", result["id"], exc)
                return
            except (TimeoutError, *SOCKET_ERRORS):
                continue
        log.warning("result for %s dropped: no gateway took it before the grace ran out",
                    result["id"])


def failure(code: str, message: str, details: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"success": False, "error": error}


def bind(handler: Handler, context: Context) -> dict[str, Any]:
    """The handler's keyword arguments: the command's `options`, then `target`, then its own
    top-level fields, the later winning (as the browser extension reads them). TypeError names
    what is missing. Fields the handler does not name are left out unless it takes `**params`."""
    command = context.command
    params = {**_mapping(command.get("options")), **_mapping(command.get("target")),
              **{k: v for k, v in command.items() if k not in ENVELOPE}}
    signature = inspect.signature(handler)
    if not any(p.kind is p.VAR_KEYWORD for p in signature.parameters.values()):
        params = {k: v for k, v in params.items() if k in signature.parameters}
    signature.bind(context, **params)
    return params


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
