"""The command ledger: every state change of a command is one atomic, conditional step.

A command's life is a few domain operations — accept (and place), progress, report, cancel,
expire, the extension registering and leaving, and a gateway handing back what it cannot
deliver. Each checks the state it expects and makes every write and delivery it implies at once:
on Redis one function call (ledger.lua, one round trip), in process one synchronous step. So no
race between two services, no retried write, no slow process can run a command twice or lose
its result: a late or repeated step finds the state moved on and does nothing.

The deliveries each step makes land in gateway inboxes (`protocol.gateway_inbox`), in the shapes
`protocol.DELIVER_*` name. docs/architecture.md states the rules and what they guarantee.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field

from semantest.bus.base import Message

INBOX_GROUP = "gw"
"""Each gateway reads its inbox in this group: its read position tells, after it dies, which
commands it never read (safe to send elsewhere) from those it may have passed on."""
SWEEP_LIMIT = 100
"""Entries one sweep step ends at most (a bounded step; the next tick takes the rest)."""


@dataclass(frozen=True, slots=True)
class Policy:
    """The limits every operation applies (from `commands`, `channels` settings)."""

    retention_ms: int = 600_000
    max_result_bytes: int = 262_144
    channel_history: int = 1000
    grace_ms: int = 10_000
    max_queued: int = 1000
    gateway_dead_after_ms: int = 15_000


@dataclass(frozen=True, slots=True)
class NewCommand:
    """What a gateway accepts: `payload` is the command as the extension will get it."""

    tenant: str
    subject: str
    origin: Message
    payload: Message
    accepted: int
    """When the gateway accepted it (epoch ms): durations count from here."""
    readable_sessions: list[str] = field(default_factory=list)
    """Sessions the sender may read: a re-sent id of their command returns its result."""

    @property
    def target(self) -> str:
        """The extension the command names (`target.extensionId`), or ""."""
        target = self.payload.get("target")
        wanted = target.get("extensionId") if isinstance(target, dict) else None
        return wanted if isinstance(wanted, str) else ""


def names_download(report: Message) -> bool:
    """A successful report whose data names a download goes to the `downloads` channel."""
    data = report.get("data")
    return isinstance(data, dict) and ("download" in data or "downloadUrl" in data)


def outcome(report: Message) -> str:
    """The `outcome` label of an extension's report in `semantest_commands_total`."""
    return "success" if report["success"] else (report.get("error") or {}).get("code", "FAILED")


@dataclass(frozen=True, slots=True)
class Accepted:
    outcome: str
    """`dispatched`, `queued`, `running` / `done` (a re-sent id), `taken` (another principal's
    id) or `full` (the sender's queue is at its cap)."""
    extension: str | None = None


@dataclass(frozen=True, slots=True)
class Ended:
    """A command this step ended: for metrics, and (from a sweep) for its trace and log line."""

    type: str
    outcome: str
    duration_ms: int
    id: str = ""
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Sweep:
    ended: list[Ended]
    unreadable: list[str]
    """Schedule entries that could not be read: dropped, for the caller to log."""


class Ledger(abc.ABC):
    policy: Policy
    observe_call: Callable[[str, float], None] | None = None
    """Told each call's name and seconds, where a call is a round trip (Redis)."""

    @abc.abstractmethod
    async def accept(self, command: NewCommand) -> Accepted: ...

    @abc.abstractmethod
    async def report(self, tenant: str, extension: str, sid: str, report: Message,
                     now: int) -> Ended | None:
        """The extension's result, only from the connection its command was given to."""

    @abc.abstractmethod
    async def progress(self, tenant: str, extension: str, sid: str, command_id: str,
                       event: Message) -> bool:
        """Send `event` (the command's echoed fields are added) to the command's readers."""

    @abc.abstractmethod
    async def cancel(self, tenant: str, subject: str, command_id: str,
                     writable_sessions: list[str], now: int) -> Ended | None:
        """By its sender or a writer of its session; anyone else is told it does not exist."""

    @abc.abstractmethod
    async def register(self, tenant: str, extension: str, owner: str, gateway: str, sid: str,
                       record: Message, now: int) -> bool:
        """False when another principal holds the extension id (live or in its grace)."""

    @abc.abstractmethod
    async def received(self, tenant: str, extension: str, sid: str, command_id: str) -> None:
        """The extension acknowledged a command: it is never sent to it again."""

    @abc.abstractmethod
    async def unregister(self, tenant: str, extension: str, sid: str, now: int) -> None: ...

    @abc.abstractmethod
    async def handback(self, tenant: str, extension: str, command_id: str,
                       gateway: str) -> None:
        """A gateway read a command for an extension that is no longer connected to it."""

    @abc.abstractmethod
    async def expire(self, now: int) -> Sweep:
        """Commands past their deadline: TIMEOUT, or NO_EXTENSION when never placed."""

    @abc.abstractmethod
    async def expire_grace(self, now: int) -> Sweep:
        """Extensions gone past their grace: their commands end EXTENSION_DISCONNECTED."""

    @abc.abstractmethod
    async def heartbeat(self, gateway: str, now: int) -> bool:
        """This gateway lives; False when it was not known (new, or buried while only slow:
        then it registers its extensions again)."""

    @abc.abstractmethod
    async def bury(self, now: int, gateway: str | None = None) -> int:
        """Gateways silent too long (or `gateway`, leaving): their extensions get the grace."""

    @abc.abstractmethod
    async def extensions(self, tenant: str) -> list[Message]:
        """The tenant's registered extensions with their load (`inFlight`)."""

    @abc.abstractmethod
    async def counts(self, tenant: str) -> tuple[int, int]:
        """(commands not ended, commands waiting for an extension) of the tenant."""

    @abc.abstractmethod
    async def queued_by_type(self, tenant: str) -> dict[str, int]:
        """The tenant's commands waiting for any extension that runs their type, per type (the
        capability they need); a command sent to one named extension waits for it, not here."""

