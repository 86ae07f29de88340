"""Composition and console scripts: each role alone, or all three in one process.

`compose` is the only place where roles meet: it builds one aiohttp application, gives every role
the same bus, and adds the health and metrics routes every process serves. The console scripts
`semantest-server`, `-auth`, `-gateway` and `-router` differ only in the roles they compose.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import os
import secrets
import signal
import ssl
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Collection

import aiohttp_cors
import orjson
import uvloop
from aiohttp import web

from semantest import protocol as p
from semantest.auth import app as auth_app
from semantest.auth.passwords import hash_password
from semantest.bus import Bus, Policy, open_bus
from semantest.config import ConfigError, Cors, Settings, load_settings, masked
from semantest.gateway import app as gateway_app
from semantest.router import app as router_app
from semantest.telemetry import Metrics, configure_logging, create_metrics, uptime
from semantest.tracing import Tracing, create_tracing

log = logging.getLogger("semantest")
SHUTDOWN_TIMEOUT_S = 2.0
"""After the drain (or on SIGINT) aiohttp waits this long for open requests, not its 60 s: a
socket whose peer stopped answering must not hold the exit (the fault tier saw one)."""

ALL_ROLES = frozenset({"auth", "gateway", "router"})
BUS: web.AppKey[Bus] = web.AppKey("bus", Bus)


def _json(data: object, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, content_type="application/json")


class Health:
    """`/health`, `/health/live`, `/health/ready` for whatever roles this process runs."""

    def __init__(self, bus: Bus, connections: Callable[[], dict[str, int]] | None) -> None:
        self.bus = bus
        self.connections = connections
        self.draining = False

    async def live(self, _: web.Request) -> web.Response:
        return _json({"status": "alive"})

    async def ready(self, _: web.Request) -> web.Response:
        if self.draining:  # Kubernetes stops sending new connections here
            return _json({"status": "draining"}, 503)
        ready = await self.bus.ready()
        return _json({"status": "ready" if ready else "unavailable"}, 200 if ready else 503)

    async def health(self, _: web.Request) -> web.Response:
        reachable = await self.bus.ready()
        redis = "embedded" if self.bus.kind == "embedded" else (
            "connected" if reachable else "disconnected")
        body = {
            "status": "healthy" if reachable else "unhealthy",
            "uptime": uptime(),
            "connections": self.connections() if self.connections else
            {"clients": 0, "extensions": 0},
            "redis": redis,
            "version": p.VERSION,
        }
        return _json(body, 200 if reachable else 503)


def ledger_policy(settings: Settings) -> Policy:
    commands = settings.commands
    return Policy(retention_ms=commands.retention, max_result_bytes=commands.max_result_bytes,
                  channel_history=settings.channels.history, grace_ms=commands.extension_grace,
                  max_queued=commands.max_queued_per_principal)


def service_name(roles: Collection[str]) -> str:
    """The default OTEL_SERVICE_NAME: `semantest-server` all in one, else the role's."""
    return "semantest-server" if set(roles) == ALL_ROLES else "semantest-" + "-".join(
        sorted(roles))


def compose(roles: Collection[str], settings: Settings, bus: Bus,
            tracing: Tracing | None = None) -> web.Application:
    """One application running `roles` over `bus` (traced by `tracing`, off when None)."""
    metrics: Metrics = create_metrics()
    metrics.tracing = tracing or Tracing()

    async def flush_spans(_: web.Application) -> None:  # bounded: the collector may be gone
        await asyncio.to_thread(metrics.tracing.flush)
    app = web.Application(client_max_size=settings.websocket.max_payload)
    app[BUS] = bus

    async def close_bus(_: web.Application) -> AsyncIterator[None]:
        yield
        await bus.aclose()

    app.cleanup_ctx.append(close_bus)  # first in, last out: the bus outlives every role
    app.on_cleanup.append(flush_spans)
    ledger = bus.ledger(ledger_policy(settings))
    ledger.observe_call = metrics.redis_call
    gateway = None
    drains: list[Callable[[], Awaitable[None]]] = []
    if "gateway" in roles:
        gateway = gateway_app.Gateway(settings, bus, ledger, metrics)
        gateway.routes(app)
        app.cleanup_ctx.append(lambda _: gateway_app.component(settings, bus, metrics, gateway))
        drains.append(lambda: gateway.drain(settings.server.drain_timeout / 1000))
    if "router" in roles:
        router = router_app.Router(ledger, metrics)
        app.cleanup_ctx.append(lambda _: router_app.component(router))
        drains.append(router.stop)
    if "auth" in roles:
        app.cleanup_ctx.append(lambda _: auth_app.component(settings, bus, metrics))
    health = Health(bus, gateway.connection_counts if gateway else None)
    app.on_startup.append(lambda _: drain_on_sigterm(health, drains))

    async def metrics_route(_: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(),
                            content_type="text/plain", charset="utf-8")

    app.router.add_get("/health", health.health)
    app.router.add_get("/health/live", health.live)
    app.router.add_get("/health/ready", health.ready)
    app.router.add_get("/metrics", metrics_route)
    allow_cors(app, settings.effective_cors or Cors())
    return app


async def drain_on_sigterm(health: Health, drains: list[Callable[[], Awaitable[None]]]) -> None:
    """SIGTERM drains first (not ready any more, work finished or handed over, within
    server.drainTimeout), then stops like SIGINT. A second SIGTERM stops at once."""
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    async def drain() -> None:
        health.draining = True
        log.info("SIGTERM: draining")
        try:
            await asyncio.gather(*(step() for step in drains))
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    def on_sigterm() -> None:
        if tasks:
            os.kill(os.getpid(), signal.SIGINT)
            return
        tasks.add(loop.create_task(drain()))

    loop.add_signal_handler(signal.SIGTERM, on_sigterm)


def allow_cors(app: web.Application, cors: Cors) -> None:
    """`cors` (or `server.cors`) on every HTTP route, with aiohttp-cors; the Socket.IO handshake
    gets the same origins from python-socketio (see gateway/sockets.py)."""
    origins = [cors.origin] if isinstance(cors.origin, str) else cors.origin
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=cors.credentials, allow_headers=tuple(cors.allowed_headers),
        allow_methods=tuple(cors.methods), expose_headers=("Retry-After",))
    config = aiohttp_cors.setup(app, defaults=dict.fromkeys(origins, options))
    methods = {method.upper() for method in cors.methods}
    if "GET" in methods:
        methods.add("HEAD")
    for route in list(app.router.routes()):
        if not route.resource or route.resource.canonical.startswith("/socket.io"):
            continue
        if route.method in methods:  # a route added here is a method CORS allows
            config.add(route)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """`server.tls`: https/wss on the same port; with `ca`, clients must show a certificate."""
    tls = settings.server.tls
    if not tls.enabled:
        return None
    for name, path in (("cert", tls.cert), ("key", tls.key)):
        if path is None:
            raise ConfigError(f"config key server.tls.{name}: required when TLS is enabled")
    files = {"cert": tls.cert, "key": tls.key, "ca": tls.ca}
    for name, path in files.items():
        if path is None:
            continue
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"config key server.tls.{name}: cannot read {str(path)!r}: "
                              f"{exc.strerror}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(files["cert"], files["key"])
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"config key server.tls.cert/key: not a matching PEM certificate and "
                          f"key ({exc.__class__.__name__}: {exc.args[-1]})") from None
    if tls.ca is not None:
        try:
            context.load_verify_locations(tls.ca)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"config key server.tls.ca: not a PEM CA bundle "
                              f"({exc.__class__.__name__}: {exc.args[-1]})") from None
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def _with_auth(settings: Settings, **changes: object) -> Settings:
    auth = {**settings.auth.model_dump(by_alias=True, mode="python"), **changes}
    return settings.model_validate({**settings.model_dump(by_alias=True, mode="python"),
                                    "auth": auth})


def _starter_keys(settings: Settings) -> tuple[Settings, list[str]]:
    """With auth on and no credential configured, make one admin and one client key."""
    auth = settings.auth
    if not auth.enabled or auth.api_keys.keys or auth.admin_keys or auth.users:
        return settings, []
    admin, client = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    updated = _with_auth(settings, apiKeys={"enabled": True, "keys": [client]},
                         adminKeys=[admin])
    return updated, [
        f"  admin API key (scope admin):               {admin}",
        f"  client API key (scopes client, extension): {client}",
    ]


def _with_jwt_secret(settings: Settings, separate: bool) -> Settings:
    if settings.auth.jwt.secret is not None:
        return settings
    if separate:
        raise ConfigError(
            "config key auth.jwt.secret (JWT_SECRET) is required when services run separately"
        )
    # All-in-one without a configured secret: tokens last until the process restarts.
    jwt = {**settings.auth.jwt.model_dump(by_alias=True), "secret": secrets.token_urlsafe(32)}
    return _with_auth(settings, jwt=jwt)


def run(roles: frozenset[str], argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Semantest hub: " + ", ".join(sorted(roles)))
    parser.add_argument("--print-config", action="store_true",
                        help="print the merged configuration (secrets masked) and exit")
    if roles == ALL_ROLES:
        commands = parser.add_subparsers(dest="command")
        hasher = commands.add_parser("hash-password", help="print an argon2id hash for auth.users")
        hasher.add_argument("password", nargs="?", help="read from stdin when omitted")
    args = parser.parse_args(argv)
    if getattr(args, "command", None) == "hash-password":
        password = args.password or (getpass.getpass("password: ") if sys.stdin.isatty()
                                     else sys.stdin.readline().rstrip("\n"))
        print(hash_password(password))
        return
    try:
        settings = load_settings()
        separate = roles != ALL_ROLES
        if separate and settings.bus_url.startswith("memory://"):
            raise ConfigError("config key redis.url (REDIS_URL) is required when services run "
                              "separately")
        if roles != {"router"}:
            settings = _with_jwt_secret(settings, separate)
        settings, starter = _starter_keys(settings) if not separate else (settings, [])
        context = tls_context(settings)
        tracing = create_tracing(service_name(roles))
    except (ConfigError, ValueError) as exc:
        sys.exit(f"semantest: {exc}")
    if args.print_config:
        print(orjson.dumps(masked(settings), option=orjson.OPT_INDENT_2).decode())
        return
    configure_logging(settings.logging)
    password = settings.redis.password
    bus = open_bus(settings.bus_url, password.get_secret_value() if password else None,
                   settings.redis.key_prefix)
    app = compose(roles, settings, bus, tracing)
    scheme = "https" if context else "http"
    host, port = settings.server.host, settings.server.port
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    lines = [f"Semantest hub ({', '.join(sorted(roles))}) on {scheme}://{shown}:{port} "
             f"over {'Redis' if bus.kind == 'redis' else 'the in-process bus'}"]
    if "gateway" in roles:
        lines.append(f"  connect: io('{scheme}://{shown}:{port}', {{ auth: {{ apiKey }} }})")
    lines.extend(starter)
    print("\n".join(lines), flush=True)
    web.run_app(app, host=host, port=port, ssl_context=context, access_log=None,
                print=None, loop=uvloop.new_event_loop(), backlog=1024,
                shutdown_timeout=SHUTDOWN_TIMEOUT_S)


def main() -> None:
    run(ALL_ROLES)


def main_auth() -> None:
    run(frozenset({"auth"}))


def main_gateway() -> None:
    run(frozenset({"gateway"}))


def main_router() -> None:
    run(frozenset({"router"}))
