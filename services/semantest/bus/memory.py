"""The in-process bus: the all-in-one default, with the same semantics as Redis streams.

Everything lives in this process's memory, so there are no dead consumers to claim from; an
unacked entry is handed out again only when its consumer's iterator is closed. Messages pass as
objects: nothing on the hot path is encoded. `memory://?codec=1` encodes and decodes every
message as the Redis bus does, so a test can show that everything sent survives the wire.
"""

from __future__ import annotations

import asyncio
import bisect
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field

from semantest.bus.base import (
    MAXLEN,
    Bus,
    Delivery,
    Message,
    Store,
    decode,
    encode,
    entry_key,
)
from semantest.bus.ledger import Ledger, Policy

READ_BATCH = 256


@dataclass
class _Group:
    last: tuple[int, int] = (0, 0)
    pending: dict[str, object] = field(default_factory=dict)
    returned: deque[tuple[str, object]] = field(default_factory=deque)


@dataclass
class _Stream:
    keys: list[tuple[int, int]] = field(default_factory=list)
    datas: list[object] = field(default_factory=list)
    last: tuple[int, int] = (0, 0)
    groups: dict[str, _Group] = field(default_factory=dict)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def append(self, data: object, maxlen: int) -> str:
        ms = int(time.time() * 1000)
        key = (ms, 0) if ms > self.last[0] else (self.last[0], self.last[1] + 1)
        self.last = key
        self.keys.append(key)
        self.datas.append(data)
        # Trim in chunks, like Redis's approximate MAXLEN, so appends stay O(1) amortised.
        excess = len(self.keys) - maxlen
        if excess > maxlen // 10:
            del self.keys[:excess]
            del self.datas[:excess]
        self.changed.set()
        self.changed = asyncio.Event()
        return f"{key[0]}-{key[1]}"

    def delete(self, keys: set[tuple[int, int]]) -> None:
        # An inbox is read in order: what is deleted is almost always its oldest entries.
        end = bisect.bisect_right(self.keys, max(keys))
        if all(key in keys for key in self.keys[:end]):
            del self.keys[:end]
            del self.datas[:end]
            return
        kept = [(k, d) for k, d in zip(self.keys, self.datas, strict=True) if k not in keys]
        self.keys = [k for k, _ in kept]
        self.datas = [d for _, d in kept]

    def after(self, key: tuple[int, int], count: int) -> list[tuple[str, object]]:
        start = bisect.bisect_right(self.keys, key)
        return [
            (f"{k[0]}-{k[1]}", data)
            for k, data in zip(
                self.keys[start : start + count], self.datas[start : start + count], strict=True
            )
        ]


class InProcessStore(Store):
    def __init__(self) -> None:
        self._values: dict[str, bytes] = {}
        self._expiry: dict[str, float] = {}
        self._counters: dict[str, int] = {}
        self._sets: dict[str, set[str]] = {}
        self._schedules: dict[str, dict[str, float]] = {}
        self._windows: dict[str, tuple[int, float]] = {}

    def _live(self, key: str) -> bytes | None:
        expires = self._expiry.get(key)
        if expires is not None and expires <= time.monotonic():
            self._values.pop(key, None)
            self._expiry.pop(key, None)
        return self._values.get(key)

    async def get(self, key: str) -> Message | None:
        data = self._live(key)
        return None if data is None else decode(data)

    async def get_many(self, keys: list[str]) -> list[Message | None]:
        return [await self.get(key) for key in keys]

    async def put(self, key: str, value: Message, ttl_ms: int | None = None) -> None:
        self._values[key] = encode(value)
        if ttl_ms is None:
            self._expiry.pop(key, None)
        else:
            self._expiry[key] = time.monotonic() + ttl_ms / 1000

    async def put_if_absent(self, key: str, value: Message, ttl_ms: int | None = None) -> bool:
        if self._live(key) is not None:
            return False
        await self.put(key, value, ttl_ms)
        return True

    async def delete(self, *keys: str) -> int:
        removed = 0
        for key in keys:
            found = self._live(key) is not None or key in self._counters or key in self._sets
            removed += found
            self._values.pop(key, None)
            self._expiry.pop(key, None)
            self._counters.pop(key, None)
            self._sets.pop(key, None)
            self._schedules.pop(key, None)
            removed += self._windows.pop(key, None) is not None
        return removed

    async def incr(self, key: str, delta: int = 1) -> int:
        self._counters[key] = self._counters.get(key, 0) + delta
        return self._counters[key]

    async def counters(self, keys: list[str]) -> list[int]:
        return [self._counters.get(key, 0) for key in keys]

    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        now = time.monotonic()
        hits, ends = self._windows.get(key, (0, 0.0))
        if ends <= now:
            hits, ends = 0, now + window_ms / 1000
            if len(self._windows) > 10_000:  # forget closed windows now and then
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
        self._windows[key] = (hits + 1, ends)
        return hits + 1, max(int((ends - now) * 1000), 1)

    async def add(self, key: str, *members: str) -> None:
        self._sets.setdefault(key, set()).update(members)

    async def remove(self, key: str, *members: str) -> None:
        self._sets.get(key, set()).difference_update(members)

    async def members(self, key: str) -> set[str]:
        return self.members_now(key)

    def members_now(self, key: str) -> set[str]:
        """`members`, for the ledger's synchronous steps."""
        return set(self._sets.get(key, ()))

    async def schedule(self, key: str, member: str, at: float, keep: bool = False) -> None:
        schedule = self._schedules.setdefault(key, {})
        if not (keep and member in schedule):
            schedule[member] = at

    async def unschedule(self, key: str, member: str) -> bool:
        return self._schedules.get(key, {}).pop(member, None) is not None

    async def due(self, key: str, until: float, limit: int = 100) -> list[str]:
        items = sorted(self._schedules.get(key, {}).items(), key=lambda item: item[1])
        return [member for member, at in items if at <= until][:limit]

    async def scheduled_count(self, key: str) -> int:
        return len(self._schedules.get(key, {}))


class InProcessBus(Bus):
    def __init__(self, codec: bool = False) -> None:
        self.store = InProcessStore()
        self._streams: dict[str, _Stream] = {}
        self._closed = False
        self._codec = codec

    def ledger(self, policy: Policy) -> Ledger:
        from semantest.bus.ledger_memory import MemoryLedger

        return MemoryLedger(self, policy)

    def encoded(self, message: Message) -> bytes:
        return encode(message)

    def append(self, stream: str, message: Message, maxlen: int = MAXLEN) -> str:
        """`publish`, for the ledger's synchronous steps."""
        return self._stream(stream).append(encode(message) if self._codec else message, maxlen)

    def _message(self, data: object) -> Message:
        return decode(data) if self._codec else data  # type: ignore[arg-type, return-value]

    def remove(self, stream: str, entry_id: str) -> None:
        """XDEL, for the ledger's synchronous steps."""
        self._stream(stream).delete({entry_key(entry_id)})

    def read_position(self, stream: str, group: str) -> tuple[int, int]:
        """The last entry the group was given (Redis' last-delivered-id)."""
        members = self._stream(stream).groups.get(group)
        return members.last if members is not None else (0, 0)

    def _stream(self, name: str) -> _Stream:
        return self._streams.setdefault(name, _Stream())

    @property
    def kind(self) -> str:
        return "embedded"

    async def publish(self, stream: str, message: Message, maxlen: int = MAXLEN) -> str:
        return self.append(stream, message, maxlen)

    async def consume(
        self, stream: str, group: str, consumer: str, start: str = "$",
        claim_idle_ms: int = 5000,
    ) -> AsyncIterator[list[Delivery]]:
        state = self._stream(stream)
        members = state.groups.setdefault(
            group, _Group(last=state.last if start == "$" else entry_key(start)))
        mine: set[str] = set()
        try:
            while not self._closed:
                batch: list[tuple[str, object]] = []
                while members.returned and len(batch) < READ_BATCH:
                    batch.append(members.returned.popleft())
                if not batch:
                    waiter = state.changed
                    batch = state.after(members.last, READ_BATCH)
                    if batch:
                        members.last = entry_key(batch[-1][0])
                    else:
                        await waiter.wait()
                        continue
                for entry_id, data in batch:
                    members.pending[entry_id] = data
                    mine.add(entry_id)
                yield [Delivery(stream, entry_id, self._message(data)) for entry_id, data in batch]
                mine.intersection_update(members.pending)
        finally:
            # Hand what this consumer never acked to the rest of its group.
            for entry_id in sorted(mine & members.pending.keys(), key=entry_key):
                members.returned.append((entry_id, members.pending[entry_id]))
            if mine:
                state.changed.set()
                state.changed = asyncio.Event()

    async def tail(self, stream: str, after: str = "$") -> AsyncIterator[list[Delivery]]:
        state = self._stream(stream)
        position = state.last if after == "$" else entry_key(after)
        while not self._closed:
            waiter = state.changed
            batch = state.after(position, READ_BATCH)
            if not batch:
                await waiter.wait()
                continue
            position = entry_key(batch[-1][0])
            yield [Delivery(stream, entry_id, self._message(data)) for entry_id, data in batch]

    async def ack(self, stream: str, group: str, ids: Iterable[str], delete: bool = False) -> None:
        state = self._stream(stream)
        members = state.groups.get(group)
        ids = list(ids)
        if members is not None:
            for entry_id in ids:
                members.pending.pop(entry_id, None)
        if delete and ids:
            state.delete({entry_key(entry_id) for entry_id in ids})

    async def history(self, stream: str, after: str, count: int) -> list[Delivery]:
        state = self._stream(stream)
        return [
            Delivery(stream, entry_id, self._message(data))
            for entry_id, data in state.after(entry_key(after), count)
        ]

    async def ready(self) -> bool:
        return not self._closed

    async def aclose(self) -> None:
        self._closed = True
        for state in self._streams.values():
            state.changed.set()
