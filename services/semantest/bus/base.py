"""The bus contract: streams of messages between services, the shared state store, and the
command ledger (semantest.bus.ledger), whose operations are atomic on every backend.

A backend only does I/O. On Redis a message is a dict encoded once with orjson into one field;
in process it passes as the object itself (or through the codec, in the test mode).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson

if TYPE_CHECKING:
    from semantest.bus.ledger import Ledger, Policy

Message = dict[str, Any]

MAXLEN = 100_000
"""Default bound of every stream: old entries are trimmed approximately past it."""


def encode(message: Message) -> bytes:
    return orjson.dumps(message)


def decode(data: bytes | str) -> Message:
    value = orjson.loads(data)
    if not isinstance(value, dict):
        raise ValueError("bus message is not an object")
    return value


def entry_key(entry_id: str) -> tuple[int, int]:
    """A stream entry id (`<ms>-<seq>`) as a comparable pair."""
    ms, _, seq = entry_id.partition("-")
    return int(ms or 0), int(seq or 0)


@dataclass(frozen=True, slots=True)
class Delivery:
    """One message read from a stream; `id` is the stream entry id (`<ms>-<seq>`)."""

    stream: str
    id: str
    message: Message


class Store(abc.ABC):
    """Shared state: JSON values, counters, sets and schedules, all under the key prefix."""

    @abc.abstractmethod
    async def get(self, key: str) -> Message | None: ...

    @abc.abstractmethod
    async def get_many(self, keys: list[str]) -> list[Message | None]: ...

    @abc.abstractmethod
    async def put(self, key: str, value: Message, ttl_ms: int | None = None) -> None: ...

    @abc.abstractmethod
    async def put_if_absent(self, key: str, value: Message, ttl_ms: int | None = None) -> bool:
        """Store only when the key is free; True when this call stored it (an atomic claim)."""

    @abc.abstractmethod
    async def delete(self, *keys: str) -> int: ...

    @abc.abstractmethod
    async def incr(self, key: str, delta: int = 1) -> int: ...

    @abc.abstractmethod
    async def counters(self, keys: list[str]) -> list[int]: ...

    @abc.abstractmethod
    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        """Count one hit in the window opened by the key's first hit: (hits so far, ms left).

        The window closes `window_ms` after its first hit and the count starts again (a rate
        limit shared by every process on the store).
        """

    @abc.abstractmethod
    async def add(self, key: str, *members: str) -> None: ...

    @abc.abstractmethod
    async def remove(self, key: str, *members: str) -> None: ...

    @abc.abstractmethod
    async def members(self, key: str) -> set[str]: ...

    @abc.abstractmethod
    async def schedule(self, key: str, member: str, at: float, keep: bool = False) -> None:
        """Put `member` in the schedule `key` at `at` (epoch ms); `keep` leaves a set time."""

    @abc.abstractmethod
    async def unschedule(self, key: str, member: str) -> bool:
        """Take `member` out; True only for the caller that removed it (an atomic claim)."""

    @abc.abstractmethod
    async def due(self, key: str, until: float, limit: int = 100) -> list[str]:
        """Members scheduled at or before `until`, oldest first."""

    @abc.abstractmethod
    async def scheduled_count(self, key: str) -> int: ...


class Bus(abc.ABC):
    """Streams between services. `consume` shares work in a group; `tail` gives every reader all."""

    store: Store

    @abc.abstractmethod
    async def publish(self, stream: str, message: Message, maxlen: int = MAXLEN) -> str:
        """Append and return the entry id; `maxlen` trims the stream approximately."""

    @abc.abstractmethod
    def consume(self, stream: str, group: str, consumer: str, start: str = "$",
                claim_idle_ms: int = 5000) -> AsyncIterator[list[Delivery]]:
        """Work queue: each entry goes to one consumer of the group; entries unacknowledged for
        `claim_idle_ms` come back (to any consumer of the group, this one included).

        A group made by this call starts after `start` (`$`: only new entries)."""

    @abc.abstractmethod
    def ledger(self, policy: Policy) -> Ledger:
        """The command ledger on this bus (semantest.bus.ledger)."""

    @abc.abstractmethod
    def tail(self, stream: str, after: str = "$") -> AsyncIterator[list[Delivery]]:
        """Fan-out: every tailing reader sees every entry appended after `after`."""

    @abc.abstractmethod
    async def ack(self, stream: str, group: str, ids: Iterable[str], delete: bool = False) -> None:
        """Done with these entries; `delete` also removes them from the stream (an inbox:
        nobody else reads it, and a delivered entry only holds memory)."""

    @abc.abstractmethod
    async def history(self, stream: str, after: str, count: int) -> list[Delivery]:
        """Entries strictly after `after` (oldest first), at most `count`."""

    @abc.abstractmethod
    async def ready(self) -> bool: ...

    @abc.abstractmethod
    async def aclose(self) -> None: ...

    @property
    @abc.abstractmethod
    def kind(self) -> str:
        """`embedded` or `redis`, as `/health` reports it."""
