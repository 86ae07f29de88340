"""What a gateway checks before doing any work: rate limits and the per-principal connection cap.

Rate limits (`rateLimiting`) count in the store with `Store.hit`, so every gateway on one Redis
shares them: socket events per principal; connection attempts and HTTP requests per client IP,
since nobody is known yet. A window opens with its first request and lasts `windowMs`. A caller
over the limit is remembered here until its window closes, so a flood costs no store round trips.
Kubernetes probes and the Socket.IO transport are not HTTP requests in this sense: the probes
must never see a 429, and Socket.IO traffic is counted as events and connection attempts.
This module must not name a credential in anything it returns or logs.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from aiohttp import web

from semantest import protocol as p
from semantest.bus.base import Store
from semantest.config import RateLimiting, Settings
from semantest.gateway.connections import Connections
from semantest.protocol import ErrorCode, HubError, Principal

UNLIMITED_PATHS = frozenset({"/health/live", "/health/ready"})
SOCKET_IO_PREFIX = "/socket.io/"


class RateLimited(HubError):
    """RATE_LIMITED with `retryAfter`: milliseconds until the caller's window closes."""

    def __init__(self, message: str, retry_after_ms: int) -> None:
        super().__init__(ErrorCode.RATE_LIMITED, message)
        self.retry_after_ms = retry_after_ms

    def as_dict(self) -> dict[str, Any]:
        return {**super().as_dict(), "retryAfter": self.retry_after_ms}


def client_ip(remote: str | None, forwarded_for: str | None, trust_proxy: int) -> str:
    """The caller's address: the peer's, or with `trust_proxy` hops of proxies in front, the
    address the outermost trusted proxy saw (counted from the right of X-Forwarded-For)."""
    if trust_proxy and forwarded_for:
        hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
        if hops:
            return hops[-min(trust_proxy, len(hops))]
    return remote or "unknown"


class RateLimiter:
    def __init__(self, settings: RateLimiting, store: Store) -> None:
        self.enabled = settings.enabled
        self.window_ms = settings.window_ms
        self.max_requests = settings.max_requests
        self.message = settings.message
        self.store = store
        self._blocked: dict[str, float] = {}
        """Rate key → monotonic time its window closes, for callers already over the limit."""

    async def check(self, bucket: str, who: str) -> None:
        """Count one request; raise RateLimited when `who` is over the limit in `bucket`."""
        if not self.enabled:
            return
        key = p.rate_key(bucket, who)
        now = time.monotonic()
        until = self._blocked.get(key)
        if until is not None:
            if until > now:
                raise RateLimited(self.message, max(math.ceil((until - now) * 1000), 1))
            del self._blocked[key]
        hits, left_ms = await self.store.hit(key, self.window_ms)
        if hits > self.max_requests:
            if len(self._blocked) > 10_000:
                self._blocked = {k: t for k, t in self._blocked.items() if t > now}
            self._blocked[key] = now + left_ms / 1000
            raise RateLimited(self.message, left_ms)


class Limits:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.rate = RateLimiter(settings.rate_limiting, store)
        self.trust_proxy = settings.rate_limiting.trust_proxy
        self.per_principal = settings.server.max_connections_per_principal

    def ip_of(self, request: web.Request) -> str:
        return client_ip(request.remote, request.headers.get("X-Forwarded-For"),
                         self.trust_proxy)

    async def event(self, principal: Principal) -> None:
        """One socket event of `principal`, on any gateway."""
        if self.rate.enabled:  # the hot path stays free when limits are off
            await self.rate.check("event", p.pair(principal.tenant, principal.subject))

    async def connect_attempt(self, environ: dict[str, Any]) -> None:
        """One Socket.IO connection attempt, counted by client IP before any credential."""
        request = environ.get("aiohttp.request")
        ip = self.ip_of(request) if isinstance(request, web.Request) else "unknown"
        await self.rate.check("connect", ip)

    def admit(self, principal: Principal, connections: Connections) -> None:
        """Refuse a connection past `server.maxConnectionsPerPrincipal` on this gateway."""
        if self.per_principal is None:
            return
        mine = sum(1 for c in connections.by_sid.values()
                   if c.principal.subject == principal.subject
                   and c.principal.tenant == principal.tenant)
        if mine >= self.per_principal:
            raise HubError(ErrorCode.TOO_MANY_CONNECTIONS,
                           "this credential is at maxConnectionsPerPrincipal on this gateway")

    @web.middleware
    async def http(self, request: web.Request,
                   handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
                   ) -> web.StreamResponse:
        """Count HTTP requests per client IP; over the limit: 429 with Retry-After."""
        path = request.path
        if self.rate.enabled and path not in UNLIMITED_PATHS and not path.startswith(
                SOCKET_IO_PREFIX):
            try:
                await self.rate.check("http", self.ip_of(request))
            except RateLimited as exc:
                return too_many(exc)
        return await handler(request)


def too_many(exc: RateLimited) -> web.Response:
    """The 429 answer: the configured message, `retryAfter` (ms) and `Retry-After` (s)."""
    return web.Response(
        body=orjson.dumps({"error": exc.as_dict()}), status=429, content_type="application/json",
        headers={"Retry-After": str(max(math.ceil(exc.retry_after_ms / 1000), 1))})
