"""The Redis backend: streams with consumer groups, and the store as plain Redis keys.

Commands from one event-loop tick go out in one pipeline; every blocking read has a connection of
its own (a cancelled blocking read must never poison a pooled connection). A reader lives as long
as it is iterated: a read that fails (a lost connection, a failover, a reply that never came)
starts again on a new connection, its own unacknowledged entries first. A consumer that dies
leaves its entries pending; the group's other consumers claim them once they are idle long enough.
Retries use redis-py's own `Retry` and back-off.

With Sentinels (`redis+sentinel://` bus URLs, built from `redis.sentinels`) every connection
asks the Sentinels for the primary each time it (re)connects, and every step whose effect leaves
Redis waits until a replica has it (`WAIT`): docs/architecture.md, "Failover".
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import aclosing
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import hiredis
from redis import asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel, SentinelConnectionPool, SentinelManagedConnection
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from semantest.bus.base import MAXLEN, Bus, Delivery, Message, Store, decode, encode
from semantest.bus.ledger import Ledger, Policy

log = logging.getLogger("semantest.bus")

READ_BATCH = 256
BLOCK_MS = 1000
CLAIM_IDLE_MS = 5000
"""An entry unacked this long is taken over from its (presumably dead) consumer."""
CLAIM_EVERY_S = 1.0
READ_TIMEOUT_S = BLOCK_MS / 1000 + 5
"""A blocking read with no reply this long is on a dead or silent connection: read again on a
new one (a reader once waited forever on a connection made during a failover)."""
CONNECT_TIMEOUT_S = 2.0
"""A dial to a gone pod's address can hang for minutes; fail it and ask again."""
_RETRYABLE = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
_Queued = tuple[str, tuple[Any, ...], dict[str, Any], "asyncio.Future[Any]"]
"""A command waiting for the next round trip: name, arguments, options, its reply's future."""
REPLICA_ACKS = 1
"""With Sentinels: replicas that must hold a step before it is acknowledged (`WAIT`)."""
REPLICA_ACK_TIMEOUT_MS = 500
"""... and how long a step waits for them before it fails as not yet safe."""
SENTINEL_CONNECT_TIMEOUT_S = 0.25
SENTINEL_TIMEOUT_S = 0.5
"""One Sentinel answers within this or the next is asked (loopback or one cluster network)."""


class NotReplicated(RedisConnectionError):
    """A step reached the primary but no replica confirmed it in time: a failover now could
    undo it, so its effect is not announced (the caller retries, as after a lost reply)."""


@dataclass(frozen=True, slots=True)
class SentinelTarget:
    """Where the primary is found: `redis+sentinel://[:password@]host:port,.../<master>`."""

    sentinels: list[tuple[str, int]]
    master: str
    password: str | None

    @classmethod
    def parse(cls, url: str) -> SentinelTarget:
        parts = urlsplit(url)
        userinfo, _, hosts = parts.netloc.rpartition("@")
        sentinels = []
        for address in hosts.split(","):
            host, _, port = address.rpartition(":")
            sentinels.append((host.strip("[]"), int(port)))
        password = unquote(userinfo.partition(":")[2]) if userinfo else None
        return cls(sentinels, unquote(parts.path.lstrip("/")), password or None)


class _HiredisPacking:
    """redis-py's asyncio connections pack every command in Python; hiredis packs them in C
    (10.7 µs → 1.9 µs for a 360-byte XADD; docs/performance.md)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        if isinstance(args[0], str) and " " in args[0]:  # "XINFO STREAM": one word per argument
            args = (*args[0].split(), *args[1:])
        return [hiredis.pack_command(args)]


class _Connection(_HiredisPacking, aioredis.Connection):
    pass


class _SSLConnection(_HiredisPacking, aioredis.SSLConnection):
    pass


class _SentinelConnection(_HiredisPacking, SentinelManagedConnection):
    """Asks the Sentinels for the primary on every (re)connect.

    redis-py 8.1 re-resolves only in `connect()`; a command whose connection dropped reconnects
    through `connect_check_health`, to the address it had, retrying the dead primary for as long
    as the retry policy allows (measured: 64-80 commands lost per failover; research note
    shared/research/redis-sentinel.md). A failed dial here fails the attempt instead, and the
    command's retry asks the Sentinels again.
    """

    async def connect_check_health(self, check_health: bool = True,
                                   retry_socket_connect: bool = True) -> None:
        if self.is_connected:
            return
        self.host, self.port = await self.connection_pool.get_master_address()
        await super().connect_check_health(check_health=check_health,
                                           retry_socket_connect=False)

    async def _connect_retry(self) -> None:
        await self.connect_check_health(check_health=self.connection_pool.check_connection)


def _backoff() -> ExponentialBackoff:
    """50 ms doubling up to 0.5 s apart: a Redis back from a restart, or a promoted replica, is
    found within half a second (a 2 s cap cost up to 2 s more after a failover)."""
    return ExponentialBackoff(cap=0.5, base=0.05)


def _retry() -> Retry:
    return Retry(_backoff(), retries=-1, supported_errors=_RETRYABLE)


def _honour_cancellation() -> None:
    """Raise `CancelledError` when the current task is being cancelled. A reader cancelled
    around a failover was seen to carry on reading (redis-py lost the `CancelledError` on the
    way, 1 run in 5); a read loop checks at each turn, so it ends within one `BLOCK_MS`."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


class AutoPipeline:
    """Every command issued during one event-loop tick goes to Redis in one pipeline.

    Callers just await their command; concurrent work (a router handling a batch of messages,
    a gateway serving many sockets) shares round trips without knowing about it.
    """

    def __init__(self, client: aioredis.Redis, replica_acks: int = 0) -> None:
        self.redis = client
        self._replica_acks = replica_acks
        self._queued: list[_Queued] = []
        self._replicated: set[asyncio.Future[Any]] = set()
        self._flusher: asyncio.Task[None] | None = None

    def call(self, command: str, *args: Any, **options: Any) -> asyncio.Future[Any]:
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queued.append((command, args, options, future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return future

    def call_replicated(self, command: str, *args: Any) -> asyncio.Future[Any]:
        """As `call`, for a write the caller acknowledges to someone outside Redis: with
        Sentinels its reply waits until a replica has it, or fails (`NotReplicated`)."""
        future = self.call(command, *args)
        if self._replica_acks:
            self._replicated.add(future)
        return future

    async def _flush(self) -> None:
        queued: list[_Queued] = []
        replies: list[Any] = []
        try:
            await asyncio.sleep(0)  # this loop tick's commands join the pipeline
            queued, replicated = self._take()
            replies = await self._round_trip(queued, replicated)
        finally:  # also when the round trip was cancelled: no caller waits for good
            if not queued:
                queued, _ = self._take()
            self._settle(queued, replies)

    def _take(self) -> tuple[list[_Queued], set[asyncio.Future[Any]]]:
        queued, self._queued, self._flusher = self._queued, [], None
        replicated, self._replicated = self._replicated, set()
        return queued, replicated

    async def _round_trip(self, queued: list[_Queued],
                          replicated: set[asyncio.Future[Any]]) -> list[Any]:
        try:
            async with self.redis.pipeline(transaction=False) as pipe:
                for command, args, options, _ in queued:
                    getattr(pipe, command)(*args, **options)
                if replicated:  # on the same connection: covers every write before it
                    pipe.execute_command("WAIT", self._replica_acks, REPLICA_ACK_TIMEOUT_MS)
                replies = list(await pipe.execute(raise_on_error=False))
        except (RedisError, OSError) as exc:
            return [exc] * len(queued)
        except Exception as exc:
            log.exception("a pipeline of %d commands failed", len(queued))
            return [exc] * len(queued)
        if replicated:
            acked = replies.pop()
            if not isinstance(acked, int) or acked < self._replica_acks:
                unsafe = NotReplicated(f"{acked} of {self._replica_acks} replicas confirmed "
                                       f"within {REPLICA_ACK_TIMEOUT_MS} ms")
                replies = [unsafe if future in replicated else reply
                           for (*_, future), reply in zip(queued, replies, strict=True)]
        return replies

    @staticmethod
    def _settle(queued: list[_Queued], replies: list[Any]) -> None:
        """Each caller gets its reply; missing replies (the round trip was cancelled, e.g. a
        CancelledError escaping redis-py during a failover) fail as a lost connection."""
        lost = RedisConnectionError("the round trip to Redis was interrupted")
        for (*_, future), reply in itertools.zip_longest(queued, replies, fillvalue=lost):
            if future.done():
                continue
            if isinstance(reply, BaseException):
                future.set_exception(reply)
            else:
                future.set_result(reply)


class RedisStore(Store):
    def __init__(self, client: aioredis.Redis, pipeline: AutoPipeline, prefix: str) -> None:
        self.redis = client
        self._call = pipeline.call
        self._prefix = prefix

    def _k(self, key: str) -> str:
        return self._prefix + key

    async def get(self, key: str) -> Message | None:
        data = await self._call("get", self._k(key))
        return None if data is None else decode(data)

    async def get_many(self, keys: list[str]) -> list[Message | None]:
        if not keys:
            return []
        values = await self._call("mget", [self._k(key) for key in keys])
        return [None if data is None else decode(data) for data in values]

    async def put(self, key: str, value: Message, ttl_ms: int | None = None) -> None:
        await self._call("set", self._k(key), encode(value), px=ttl_ms)

    async def put_if_absent(self, key: str, value: Message, ttl_ms: int | None = None) -> bool:
        return bool(await self._call("set", self._k(key), encode(value), px=ttl_ms, nx=True))

    async def delete(self, *keys: str) -> int:
        return int(await self._call("delete", *(self._k(key) for key in keys))) if keys else 0

    async def incr(self, key: str, delta: int = 1) -> int:
        return int(await self._call("incrby", self._k(key), delta))

    async def counters(self, keys: list[str]) -> list[int]:
        if not keys:
            return []
        values = await self._call("mget", [self._k(key) for key in keys])
        return [int(value or 0) for value in values]

    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        name = self._k(key)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.set(name, 0, px=window_ms, nx=True)  # opens the window with its expiry
            pipe.incr(name)
            pipe.pttl(name)
            _, hits, left = await pipe.execute()
        return int(hits), max(int(left), 1)

    async def add(self, key: str, *members: str) -> None:
        if members:
            await self._call("sadd", self._k(key), *members)

    async def remove(self, key: str, *members: str) -> None:
        if members:
            await self._call("srem", self._k(key), *members)

    async def members(self, key: str) -> set[str]:
        return {member.decode() for member in await self._call("smembers", self._k(key))}

    async def schedule(self, key: str, member: str, at: float, keep: bool = False) -> None:
        await self._call("zadd", self._k(key), {member: at}, nx=keep)

    async def unschedule(self, key: str, member: str) -> bool:
        return bool(await self._call("zrem", self._k(key), member))

    async def due(self, key: str, until: float, limit: int = 100) -> list[str]:
        found = await self._call("zrangebyscore", self._k(key), "-inf", until, start=0,
                                 num=limit)
        return [member.decode() for member in found]

    async def scheduled_count(self, key: str) -> int:
        return int(await self._call("zcard", self._k(key)))


class RedisStreamsBus(Bus):
    def __init__(self, url: str, password: str | None = None, prefix: str = "semantest:") -> None:
        self._url = url
        self._password = password
        self.prefix = prefix
        self._sentinel: Sentinel | None = None
        self._master = ""
        if url.startswith("redis+sentinel://"):
            target = SentinelTarget.parse(url)
            self._master = target.master
            # One quick question per Sentinel, no retries: redis-py's default retries a refused
            # Sentinel 10 times with back-off, so a dead first Sentinel outlasted every health
            # check around a reconnect (research note).
            self._sentinel = Sentinel(target.sentinels, sentinel_kwargs={
                "password": target.password, "retry": Retry(NoBackoff(), 0),
                "socket_connect_timeout": SENTINEL_CONNECT_TIMEOUT_S,
                "socket_timeout": SENTINEL_TIMEOUT_S})
        self.redis = self._client()
        self._pipeline = AutoPipeline(self.redis, REPLICA_ACKS if self._sentinel else 0)
        self.call = self._pipeline.call
        """Any Redis command, sent with the others of this loop tick in one round trip."""
        self.call_replicated = self._pipeline.call_replicated
        self.store = RedisStore(self.redis, self._pipeline, prefix)
        self._readers: set[aioredis.Redis] = set()

    def ledger(self, policy: Policy) -> Ledger:
        from semantest.bus.ledger_redis import RedisLedger

        return RedisLedger(self, policy)

    def _client(self, reader: bool = False) -> aioredis.Redis:
        """The shared client (redis-py retries its commands forever), or a reader's: one
        connection, no retries of its own (`_reading` starts it again), a bound on each reply."""
        options: dict[str, Any] = {
            "password": self._password, "health_check_interval": 30,
            "socket_connect_timeout": CONNECT_TIMEOUT_S}
        if reader:
            options.update(retry=Retry(NoBackoff(), 0), socket_timeout=READ_TIMEOUT_S)
        else:
            options.update(retry=_retry(), retry_on_error=list(_RETRYABLE))
        if self._sentinel is None:
            return aioredis.Redis.from_url(
                self._url, single_connection_client=reader,
                connection_class=_SSLConnection if self._url.startswith("rediss://")
                else _Connection, **options)
        pool = SentinelConnectionPool(self._master, self._sentinel, is_master=True,
                                      connection_class=_SentinelConnection, **options)
        client = aioredis.Redis(connection_pool=pool, single_connection_client=reader)
        client.auto_close_connection_pool = True  # the client owns its pool, as from_url's
        return client

    async def _replicated(self, reader: aioredis.Redis) -> None:
        """Entries just read are handed on only once a replica holds them (and the read), so a
        failover cannot bring back as unsent what was already sent."""
        if self._sentinel is None:
            return
        acked = await reader.execute_command("WAIT", REPLICA_ACKS, REPLICA_ACK_TIMEOUT_MS)
        if acked < REPLICA_ACKS:
            raise NotReplicated(f"read entries: {acked} of {REPLICA_ACKS} replicas confirmed "
                                f"within {REPLICA_ACK_TIMEOUT_MS} ms")

    def _k(self, stream: str) -> str:
        return self.prefix + stream

    @property
    def kind(self) -> str:
        return "redis"

    async def publish(self, stream: str, message: Message, maxlen: int = MAXLEN) -> str:
        entry_id = await self._pipeline.call("xadd", self._k(stream), {"d": encode(message)},
                                             maxlen=maxlen, approximate=True)
        return entry_id.decode()

    def _deliveries(self, stream: str, entries: list[Any]) -> list[Delivery]:
        out = []
        for entry_id, fields in entries:
            if fields is None:  # trimmed away while pending
                continue
            try:
                out.append(Delivery(stream, entry_id.decode(), decode(fields[b"d"])))
            except (KeyError, ValueError):
                log.warning("dropping malformed entry %s on %s", entry_id, stream)
        return out

    async def _reading(
        self, what: str, read: Callable[[aioredis.Redis], AsyncIterator[list[Delivery]]],
    ) -> AsyncIterator[list[Delivery]]:
        """`read`'s batches for as long as they are wanted, whatever Redis does meanwhile: a
        read that fails starts again on a new connection (so, through Sentinels, at the current
        primary), after a back-off."""
        backoff, failures = _backoff(), 0
        while True:
            reader = self._client(reader=True)
            self._readers.add(reader)
            try:
                async with aclosing(read(reader)) as batches:
                    async for batch in batches:
                        failures = 0
                        yield batch
            except (*_RETRYABLE, ResponseError) as exc:
                # NOGROUP: Redis came back without its data (no persistence); `read` makes the
                # group again
                if isinstance(exc, ResponseError) and "NOGROUP" not in str(exc):
                    raise
                _honour_cancellation()
                failures += 1
                (log.warning if failures == 1 else log.debug)(
                    "reading %s failed (%s: %s); reading again", what, type(exc).__name__, exc)
            finally:
                self._readers.discard(reader)
                await reader.aclose()
            await asyncio.sleep(backoff.compute(failures))

    def consume(
        self, stream: str, group: str, consumer: str, start: str = "$",
        claim_idle_ms: int = CLAIM_IDLE_MS,
    ) -> AsyncIterator[list[Delivery]]:
        key = self._k(stream)

        async def read(reader: aioredis.Redis) -> AsyncIterator[list[Delivery]]:
            try:
                await reader.xgroup_create(key, group, id=start, mkstream=True)
            except ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
            loop = asyncio.get_running_loop()
            next_claim = 0.0
            position = "0"  # this consumer's own pending entries first: read, not acknowledged
            while True:
                _honour_cancellation()
                if loop.time() >= next_claim:
                    next_claim = loop.time() + CLAIM_EVERY_S
                    _, claimed, *_ = await reader.xautoclaim(
                        key, group, consumer, claim_idle_ms, "0-0", count=READ_BATCH
                    )
                    if batch := self._deliveries(stream, claimed):
                        await self._replicated(reader)
                        yield batch
                reply = await reader.xreadgroup(
                    group, consumer, {key: position}, count=READ_BATCH,
                    block=BLOCK_MS if position == ">" else None)
                entries = [entry for _, found in reply or () for entry in found]
                if position != ">":
                    position = entries[-1][0].decode() if len(entries) == READ_BATCH else ">"
                if entries:
                    await self._replicated(reader)
                if batch := self._deliveries(stream, entries):
                    yield batch

        return self._reading(stream, read)

    def tail(self, stream: str, after: str = "$") -> AsyncIterator[list[Delivery]]:
        key = self._k(stream)
        position = after

        async def read(reader: aioredis.Redis) -> AsyncIterator[list[Delivery]]:
            nonlocal position
            if position == "$":
                info = await reader.xinfo_stream(key) if await reader.exists(key) else None
                position = info["last-generated-id"].decode() if info else "0-0"
            while True:
                _honour_cancellation()
                reply = await reader.xread({key: position}, count=READ_BATCH, block=BLOCK_MS)
                for _, entries in reply or ():
                    position = entries[-1][0].decode()
                    if batch := self._deliveries(stream, entries):
                        yield batch

        return self._reading(stream, read)

    async def ack(self, stream: str, group: str, ids: Iterable[str], delete: bool = False) -> None:
        ids = list(ids)
        if ids:
            acked = self._pipeline.call("xack", self._k(stream), group, *ids)
            if delete:  # same loop tick: one round trip for both
                await self._pipeline.call("xdel", self._k(stream), *ids)
            await acked

    async def history(self, stream: str, after: str, count: int) -> list[Delivery]:
        entries = await self.redis.xrange(self._k(stream), min=f"({after}", count=count)
        return self._deliveries(stream, entries)

    async def ready(self) -> bool:
        try:
            return bool(await asyncio.wait_for(self.redis.ping(), timeout=1.0))
        except (RedisError, OSError, TimeoutError):
            return False

    async def aclose(self) -> None:
        for reader in list(self._readers):
            await reader.aclose()
        await self.redis.aclose()
        if self._sentinel is not None:
            await self._sentinel.aclose()
