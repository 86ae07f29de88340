"""The fault harness: the proof of the hub's main guarantee, written against the wire only.

The guarantee (docs/architecture.md, DESIGN §3.3 and §3.6): every accepted command ends in exactly
one `result`, a command id re-sent by its client is answered and never run twice, and an extension
that drops has the grace period to reconnect and report. This module proves it under one fault at
a time, with nothing but Socket.IO events and HTTP; it never imports the hub's services. Read it
top to bottom:

1. knobs
2. processes: a Redis with an fsync'd append-only file, and the hub as five OS processes
3. the ledger: what happened to every command id, and the invariants over it
4. peers: extensions that record every command they receive; clients that drop and re-send
5. faults: one per scenario
6. one run: start, load, fault, settle, check the hub is healthy afterwards, summarise
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import random
import shutil
import signal
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import socketio

from tests.conftest import HubProcess, Hubs, free_port, stop_process, wait_for_port
from tests.e2e.conftest import KEY, SECRET

# --- 1. knobs ------------------------------------------------------------------------------------

FAULT_REPEAT = int(os.environ.get("FAULT_REPEAT", "2"))
"""How often each scenario runs: 2 in `make test`, 10 for the thorough run."""

CLIENTS = 10
EXTENSIONS = 3
RATE = 80
"""Commands per second, all clients together."""
FAULT_AT_S = 1.5
"""Load runs this long before the fault ..."""
AFTER_FAULT_S = 2.5
""" ... and this long after the fault is over (a Redis stall is over when Redis runs again)."""
DROP_EVERY_S = 0.3
"""All along, a random client drops its socket mid-flight (0-20 ms after sending a command, so
the ack may or may not come), moves to the other gateway and re-sends what has no result."""
STARTUP_S = 60.0
"""Bound for the hub's processes to listen and answer a first command (generous: a busy CI
machine imports slowly)."""
COMMAND_TIMEOUT_MS = 10_000
"""Each command's own `timeout`: longer than any fault lasts, so a healthy hub never times out."""
ACK_TIMEOUT_S = 5.0
"""A client that has no ack after this long moves to the other gateway and re-sends."""
WORK_S = (0.02, 0.3)
"""An extension is busy this long with each command, then reports progress and its result."""
EXTENSION_GRACE_S = 10.0
"""The hub's default `commands.extensionGrace`: an extension that lost its gateway reconnects
within it (this harness does not configure it, so the default is what is tested)."""
SETTLE_S = COMMAND_TIMEOUT_MS / 1000 + 4
"""After the load stops, every open command must end within this."""
QUIET_S = 1.0
"""After everything settled: a late duplicate or a second execution would show up now."""
DRAIN_TIMEOUT_MS = 5000
"""`server.drainTimeout`: how long a SIGTERM'd service may finish in-flight work ..."""
EXIT_BOUND_S = DRAIN_TIMEOUT_MS / 1000 + 5
""" ... and the bound for it to exit."""
HUB_FAILURES = frozenset({"TIMEOUT", "NO_EXTENSION", "EXTENSION_DISCONNECTED"})
"""Results the hub makes up itself. None is acceptable here: capable extensions are always
connected (or reconnecting within the grace period) and every deadline outlasts the fault."""
RETRYABLE = frozenset({"UNAVAILABLE", "INTERNAL", "RATE_LIMITED"})
"""A refusal with one of these codes may hide an accepted command: the client re-sends it."""

SUMMARIES: list[str] = []
"""One line per run, printed at the end of the pytest session (tests/faults/conftest.py)."""


# --- 2. processes -------------------------------------------------------------------------------

class RedisProcess:
    """redis-server on a free port with `appendonly yes` and `appendfsync always`: what it
    acknowledged survives `kill -9`, and `restart` brings it back on the same port and file."""

    def __init__(self, workdir: Path) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is missing: `make system-deps` installs it")
        self.binary, self.port, self.dir = binary, free_port(), workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.paused = False
        self.start()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def env(self) -> dict[str, str]:
        """How a hub process reaches it."""
        return {"REDIS_URL": self.url}

    def start(self) -> None:
        with (self.dir / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
                 str(self.dir), "--save", "", "--appendonly", "yes", "--appendfsync", "always"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, self.process)

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    restart = start

    def pause(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)
        self.paused = True

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        if self.paused:
            self.resume()
        stop_process(self.process)


def hub_config() -> dict[str, Any]:
    """Auth on with one API key (clients and extensions), a JWT secret for separate services,
    and a short drain so a SIGTERM scenario fits the time box. Everything else is the default,
    the reconnect grace for extensions included."""
    return {
        "auth": {"enabled": True, "jwt": {"secret": SECRET, "expiresIn": "1h"},
                 "apiKeys": {"enabled": True, "keys": [KEY]}},
        "server": {"drainTimeout": DRAIN_TIMEOUT_MS},
    }


@dataclass
class Cluster:
    """One Redis, 1 auth, 2 gateways, 2 routers: separate OS processes on loopback ports."""

    redis: Any
    """A RedisProcess, or what else `run` was given (tests/faults/sentinel.py)."""
    hubs: Hubs
    auth: HubProcess
    gateways: list[HubProcess]
    routers: list[HubProcess]
    faulted: set[int] = field(default_factory=set)
    """pids the fault stopped on purpose: any other process that exits is a failure."""

    @classmethod
    def start(cls, workdir: Path, redis_setup: Callable[[Path], Any] = RedisProcess) -> Cluster:
        redis = redis_setup(workdir)
        hubs = Hubs(workdir)
        env = {**redis.env, "REDIS_KEY_PREFIX": "faults:"}
        config = hub_config()
        try:
            started = [hubs.start(command, env=env, config=config, wait=False) for command in (
                "semantest-auth", "semantest-router", "semantest-router",
                "semantest-gateway", "semantest-gateway")]
            for hub in started:
                try:
                    wait_for_port(hub.port, hub.process, timeout=STARTUP_S)
                except (RuntimeError, TimeoutError) as exc:
                    raise RuntimeError(f"{hub.command} did not start: {exc}\n{hub.output()}") \
                        from None
        except BaseException:
            hubs.stop_all()
            redis.stop()
            raise
        auth, router_a, router_b, gateway_a, gateway_b = started
        return cls(redis, hubs, auth, [gateway_a, gateway_b], [router_a, router_b])

    @property
    def urls(self) -> list[str]:
        return [gateway.url for gateway in self.gateways]

    def unexpected_exits(self) -> list[str]:
        return [f"{hub.command} on {hub.port} exited with {hub.process.returncode}"
                for hub in self.hubs.started
                if hub.process.poll() is not None and hub.process.pid not in self.faulted]

    def stop(self) -> None:
        """Teardown is not under test: kill -9 everything at once."""
        for hub in self.hubs.started:
            if hub.process.poll() is None:
                hub.process.kill()
        for hub in self.hubs.started:
            hub.process.wait(10)
        self.redis.stop()


# --- 3. the ledger ------------------------------------------------------------------------------

@dataclass
class Command:
    """Everything that happened to one command id, across every socket of its client."""

    id: str
    client: int
    emits: int = 0                  # first send and re-sends that reached a socket
    accepted: bool = False          # some ack said `accepted: true`
    ack_timeouts: int = 0
    refusals: list[str] = field(default_factory=list)
    results: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (socket, result)
    executions: list[str] = field(default_factory=list)  # extension ids that received it

    @property
    def code(self) -> str | None:
        """How it ended, by the first result the client saw: None while open, else "ok"/a code."""
        if not self.results:
            return None
        first = self.results[0][1]
        return "ok" if first.get("success") else str((first.get("error") or {}).get("code"))

    @property
    def known_accepted(self) -> bool:
        """Acked, or answered: a result proves acceptance even when the ack was lost."""
        return self.accepted or bool(self.results)

    def story(self) -> str:
        codes = [f"socket{sock}:{'ok' if r.get('success') else (r.get('error') or {}).get('code')}"
                 for sock, r in self.results]
        return (f"{self.id} client={self.client} emits={self.emits} accepted={self.accepted} "
                f"ack_timeouts={self.ack_timeouts} refusals={self.refusals} "
                f"results={codes} executed_by={self.executions}")


@dataclass
class Ledger:
    commands: dict[str, Command] = field(default_factory=dict)
    strays: list[str] = field(default_factory=list)   # results/executions for ids nobody sent
    drops: int = 0       # sockets a client closed on purpose (dropper, ack timeout, draining)
    resends: int = 0
    problems: list[str] = field(default_factory=list)  # from the fault and the health check
    phases: dict[str, float] = field(default_factory=dict)  # seconds per phase of the run
    result_times: list[float] = field(default_factory=list)  # monotonic, every result seen

    def longest_silence(self) -> float:
        """The longest time between two results seen (from the first to the last)."""
        times = sorted(self.result_times)
        return max((b - a for a, b in itertools.pairwise(times)), default=0.0)

    def new(self, client: int) -> Command:
        command = Command(str(uuid.uuid4()), client)
        self.commands[command.id] = command
        return command

    def executed(self, command_id: str, extension_id: str) -> None:
        if command_id in self.commands:
            self.commands[command_id].executions.append(extension_id)
        elif not command_id.startswith("health-"):
            self.strays.append(f"executed {command_id} on {extension_id}")

    def open_ids(self) -> list[str]:
        return [c.id for c in self.commands.values() if c.known_accepted and not c.results]

    def invariants(self) -> dict[str, list[Command]]:
        """Each entry is an invariant; the commands that break it. All must be empty."""
        commands = list(self.commands.values())
        return {
            # every accepted id ends with a result its client saw (re-sends are the same command)
            "lost": [c for c in commands if c.known_accepted and not c.results],
            # no socket sees two results for one id ...
            "dups": [c for c in commands
                     if max(Counter(sock for sock, _ in c.results).values(), default=0) > 1],
            # ... and the client sees exactly one, over all its sockets
            "multi": [c for c in commands if len(c.results) > 1],
            # no command reaches an extension twice
            "twice": [c for c in commands if len(c.executions) > 1],
            # a command an extension ran ends with the extension's result, not the hub's failure
            "timeouts-after-run": [c for c in commands
                                   if c.executions and c.code in HUB_FAILURES],
            # an accepted command is run: capable extensions were there and the deadline was long
            "unrun": [c for c in commands
                      if c.known_accepted and not c.executions and c.code in HUB_FAILURES],
            # the extensions only ever succeed: any other failure came from the hub
            "failed": [c for c in commands
                       if c.code not in (None, "ok") and c.code not in HUB_FAILURES],
        }

    def summary(self, label: str) -> str:
        commands = self.commands.values()
        broken = self.invariants()
        counts = " ".join(f"{name}={len(found)}" for name, found in broken.items())
        return (f"{label}: sent={len(self.commands)} "
                f"accepted={sum(c.known_accepted for c in commands)} "
                f"results={sum(len(c.results) for c in commands)} {counts} "
                f"unacked={sum(not c.known_accepted for c in commands)} "
                f"resends={self.resends} drops={self.drops} strays={len(self.strays)} "
                f"problems={len(self.problems)} "
                f"[{' '.join(f'{k}={v:.1f}s' for k, v in self.phases.items())}]")

    def explain(self, label: str) -> str:
        lines = [self.summary(label)]
        for name, found in self.invariants().items():
            lines += [f"  {name}: {c.story()}" for c in found[:3]]
        lines += [f"  problem: {problem}" for problem in self.problems]
        lines += [f"  stray: {stray}" for stray in self.strays[:3]]
        return "\n".join(lines)


# --- 4. peers -----------------------------------------------------------------------------------

_SOCKET_ERRORS = (socketio.exceptions.BadNamespaceError, socketio.exceptions.DisconnectedError,
                  socketio.exceptions.TimeoutError, ConnectionError, OSError)


def _spawn(tasks: set[asyncio.Task[Any]], coroutine: Awaitable[Any]) -> None:
    task = asyncio.ensure_future(coroutine)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def _close(sio: socketio.AsyncClient | None) -> None:
    """Close a socket abruptly, as a dropped network would (no polite goodbye)."""
    if sio is None:
        return
    with contextlib.suppress(Exception):
        await sio.eio.disconnect(abort=True)
    with contextlib.suppress(Exception):
        await sio.disconnect()


class Peer:
    """A socket that moves to the other gateway when it loses its own (or is told to drain)."""

    def __init__(self, urls: list[str], at: int, ledger: Ledger) -> None:
        self.urls, self.at, self.ledger = urls, at, ledger
        self.sio: socketio.AsyncClient | None = None
        self.generation = 0
        self.closing = False
        self.moving: asyncio.Task[None] | None = None
        self.tasks: set[asyncio.Task[Any]] = set()

    def auth(self) -> dict[str, Any]:
        raise NotImplementedError

    def handlers(self, sio: socketio.AsyncClient, generation: int) -> None:
        raise NotImplementedError

    async def connected(self) -> None:
        """Called after every (re)connect."""

    async def connect(self, bound_s: float = 30) -> None:
        """Connect to `urls[at]`, alternating between gateways until one answers."""
        deadline = time.monotonic() + bound_s
        while not self.closing:
            self.generation += 1
            sio = socketio.AsyncClient(reconnection=False)
            self.handlers(sio, self.generation)
            sio.on("disconnect", lambda *_, sio=sio: self.lost(sio, "disconnect"))
            sio.on("server:draining", lambda *_, sio=sio: self.lost(sio, "draining"))
            try:
                await sio.connect(self.urls[self.at], auth=self.auth(),
                                  transports=["websocket"], wait_timeout=5)
            except (socketio.exceptions.ConnectionError, *_SOCKET_ERRORS) as exc:
                await _close(sio)
                if time.monotonic() > deadline:
                    self.ledger.problems.append(f"{type(self).__name__} could not reconnect "
                                                f"in {bound_s}s: {exc}")
                    return
                self.at = (self.at + 1) % len(self.urls)
                await asyncio.sleep(0.2)
                continue
            self.sio = sio
            await self.connected()
            return

    def lost(self, sio: socketio.AsyncClient, why: str) -> None:
        if sio is self.sio:
            self.move(why)

    def move(self, why: str) -> None:
        """Leave the current socket (if any) and reconnect, trying the other gateway first."""
        if self.closing or (self.moving is not None and not self.moving.done()):
            return
        self.moving = asyncio.ensure_future(self._move(why))

    async def _move(self, why: str) -> None:
        old, self.sio = self.sio, None
        if why != "disconnect":
            self.ledger.drops += 1
        away = time.monotonic()
        await _close(old)
        self.at = (self.at + 1) % len(self.urls)
        await self.connect()
        away = time.monotonic() - away
        if isinstance(self, Extension) and away > EXTENSION_GRACE_S:  # not the hub's fault
            self.ledger.problems.append(f"{self.extension_id} was away {away:.1f}s, "
                                        f"longer than the reconnect grace")

    async def close(self) -> None:
        self.closing = True
        if self.moving is not None:
            self.moving.cancel()
        for task in list(self.tasks):
            task.cancel()
        await _close(self.sio)


class Extension(Peer):
    """Runs every command it gets: records the id, works a moment, reports progress and
    `{success: true, data: {id}}`. A result is reported until some gateway acks it, over any
    number of reconnects with the same extensionId (the grace period allows exactly that).

    It behaves as docs/protocol.md asks of an extension that wants no command lost: it declares
    `acks`, acknowledges every command, and runs a command marked `redelivered` only if it has
    not run that id already."""

    def __init__(self, index: int, urls: list[str], ledger: Ledger, rng: random.Random) -> None:
        super().__init__(urls, index % len(urls), ledger)
        self.extension_id = f"fault-ext-{index}"
        self.rng = rng
        self.cancels: list[str] = []
        self.seen: set[str] = set()

    def auth(self) -> dict[str, Any]:
        return {"apiKey": KEY, "role": "extension", "extensionId": self.extension_id,
                "capabilities": ["*"], "name": self.extension_id, "acks": True}

    def handlers(self, sio: socketio.AsyncClient, generation: int) -> None:
        async def on_command(command: dict[str, Any]) -> bool:
            if command.get("redelivered") and command["id"] in self.seen:
                return True  # it has this one already
            self.seen.add(command["id"])
            self.ledger.executed(command["id"], self.extension_id)
            _spawn(self.tasks, self.run(command))
            return True

        async def on_cancel(data: dict[str, Any]) -> None:
            self.cancels.append(str(data.get("id")))

        sio.on("command", on_command)
        sio.on("cancel", on_cancel)

    async def run(self, command: dict[str, Any]) -> None:
        await asyncio.sleep(self.rng.uniform(*WORK_S))
        command_id = command["id"]
        if self.sio is not None:
            with contextlib.suppress(*_SOCKET_ERRORS):
                await self.sio.emit("progress", {"id": command_id, "percent": 50})
        result = {"id": command_id, "success": True, "data": {"id": command_id}}
        while not self.closing:
            sio = self.sio
            if sio is not None:
                with contextlib.suppress(*_SOCKET_ERRORS):
                    ack = await sio.call("result", result, timeout=ACK_TIMEOUT_S)
                    if isinstance(ack, dict) and ack.get("accepted"):
                        return
            await asyncio.sleep(0.25)  # no gateway has it yet: report again, maybe elsewhere


class Client(Peer):
    """Sends commands with its own ids. Whenever it is unsure (its socket dropped, an ack did not
    come, a refusal may hide an accepted command) it moves to the other gateway and re-sends
    every id whose result it has not seen, on the new socket only: never twice on one socket."""

    def __init__(self, index: int, urls: list[str], ledger: Ledger, rng: random.Random) -> None:
        super().__init__(urls, index % len(urls), ledger)
        self.index, self.rng = index, rng
        self.pending: dict[str, dict[str, Any]] = {}   # sent, no result seen yet
        self.drop_next = False

    def auth(self) -> dict[str, Any]:
        return {"apiKey": KEY}

    def handlers(self, sio: socketio.AsyncClient, generation: int) -> None:
        socket = self.index * 1000 + generation  # one number per socket, for duplicate checks

        async def on_result(result: dict[str, Any]) -> None:
            command = self.ledger.commands.get(result.get("id", ""))
            if command is None or command.client != self.index:
                self.ledger.strays.append(f"result {result.get('id')} on client {self.index}")
                return
            command.results.append((socket, result))
            self.ledger.result_times.append(time.monotonic())
            self.pending.pop(command.id, None)

        sio.on("result", on_result)

    def send(self) -> None:
        command = self.ledger.new(self.index)
        self.pending[command.id] = {"id": command.id, "type": "FAULT", "n": len(self.pending),
                                    "timeout": COMMAND_TIMEOUT_MS}
        _spawn(self.tasks, self.emit(command.id))
        if self.drop_next:
            self.drop_next = False
            _spawn(self.tasks, self._drop_soon())

    async def _drop_soon(self) -> None:
        await asyncio.sleep(self.rng.uniform(0, 0.02))
        self.move("drop")

    async def connected(self) -> None:
        for command_id in list(self.pending):  # a fresh socket: ask again for what is open
            self.ledger.resends += 1
            _spawn(self.tasks, self.emit(command_id))

    async def emit(self, command_id: str) -> None:
        sio, payload = self.sio, self.pending.get(command_id)
        if sio is None or payload is None:
            return  # moving: `connected` re-sends it from the new socket
        command = self.ledger.commands[command_id]
        command.emits += 1
        try:
            ack = await sio.call("command", payload, timeout=ACK_TIMEOUT_S)
        except socketio.exceptions.TimeoutError:
            command.ack_timeouts += 1
            self.lost(sio, "ack timeout")
            return
        except _SOCKET_ERRORS:
            return  # the socket is gone: its disconnect moves this client
        if isinstance(ack, dict) and ack.get("accepted"):
            command.accepted = True
            return
        code = str(((ack or {}).get("error") or {}).get("code")) if isinstance(ack, dict) else "?"
        command.refusals.append(code)
        if code in RETRYABLE:
            self.lost(sio, f"refused {code}")
        else:
            self.pending.pop(command_id, None)


# --- 5. faults ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Fault:
    """One fault, injected once while the load runs. `inject` returns what it found wrong
    (e.g. a SIGTERM'd service that did not exit in time); it returns when the fault is over."""

    name: str
    inject: Callable[[Cluster], Awaitable[list[str]]]

    def __str__(self) -> str:
        return self.name


def _kill(pick: Callable[[Cluster], HubProcess]) -> Callable[[Cluster], Awaitable[list[str]]]:
    async def inject(cluster: Cluster) -> list[str]:
        victim = pick(cluster)
        cluster.faulted.add(victim.process.pid)
        victim.kill()
        return []

    return inject


async def _refuses_connections(url: str) -> bool:
    sio = socketio.AsyncClient(reconnection=False)
    try:
        await sio.connect(url, auth={"apiKey": KEY}, transports=["websocket"], wait_timeout=3)
    except (socketio.exceptions.ConnectionError, *_SOCKET_ERRORS):
        return True
    finally:
        await _close(sio)
    return False


def _drain(pick: Callable[[Cluster], HubProcess]) -> Callable[[Cluster], Awaitable[list[str]]]:
    """SIGTERM: the service stops taking new work, hands over or finishes what it has (its
    sockets move elsewhere), and exits by itself, cleanly, within the bound."""

    async def inject(cluster: Cluster) -> list[str]:
        victim = pick(cluster)
        cluster.faulted.add(victim.process.pid)
        victim.process.send_signal(signal.SIGTERM)
        problems = []
        if victim in cluster.gateways:
            await asyncio.sleep(0.5)
            if victim.process.poll() is None and not await _refuses_connections(victim.url):
                problems.append(f"{victim.command} still accepts connections 0.5s after SIGTERM")
        with contextlib.suppress(subprocess.TimeoutExpired):
            await asyncio.to_thread(victim.process.wait, EXIT_BOUND_S)
        code = victim.process.poll()
        if code is None:
            problems.append(f"{victim.command} still runs {EXIT_BOUND_S}s after SIGTERM")
            victim.kill()
        elif code != 0:
            problems.append(f"{victim.command} exited with {code} after SIGTERM")
        return problems

    return inject


async def _restart_redis(cluster: Cluster) -> list[str]:
    cluster.redis.kill()
    await asyncio.sleep(0.5)
    cluster.redis.restart()
    return []


async def _stall_redis(cluster: Cluster) -> list[str]:
    cluster.redis.pause()
    try:
        await asyncio.sleep(5)
    finally:
        cluster.redis.resume()
    return []


async def _nothing(_: Cluster) -> list[str]:
    return []


FAULTS = [
    Fault("baseline-drops-only", _nothing),
    Fault("router-kill9", _kill(lambda c: c.routers[0])),
    Fault("gateway-kill9", _kill(lambda c: c.gateways[0])),
    Fault("auth-kill9", _kill(lambda c: c.auth)),
    Fault("gateway-sigterm", _drain(lambda c: c.gateways[0])),
    Fault("router-sigterm", _drain(lambda c: c.routers[0])),
    Fault("redis-kill9-restart", _restart_redis),
    Fault("redis-stall-5s", _stall_redis),
]


# --- 6. one run ---------------------------------------------------------------------------------

async def send_load(clients: list[Client], stop: asyncio.Event) -> None:
    """RATE commands per second, round robin over the clients (a moving client queues its
    command and sends it from its next socket)."""
    n = 0
    started = time.monotonic()
    while not stop.is_set():
        clients[n % len(clients)].send()
        n += 1
        await asyncio.sleep(max(0.0, started + n / RATE - time.monotonic()))


async def drop_sockets(clients: list[Client], rng: random.Random, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(DROP_EVERY_S)
        rng.choice(clients).drop_next = True  # right after its next command


async def settle(clients: list[Client], ledger: Ledger) -> None:
    """Until every sent command has its result (or the bound): clients keep moving and
    re-sending meanwhile, exactly as during the load."""
    deadline = time.monotonic() + SETTLE_S
    while time.monotonic() < deadline:
        if not any(client.pending for client in clients) and not ledger.open_ids():
            break
        await asyncio.sleep(0.1)
    await asyncio.sleep(QUIET_S)


async def healthy_afterwards(cluster: Cluster) -> list[str]:
    """GET /health on each surviving gateway, and a fresh command round-trips through it."""
    problems = cluster.unexpected_exits()
    async with aiohttp.ClientSession() as http:
        for gateway in cluster.gateways:
            if gateway.process.poll() is not None:
                continue
            try:
                async with http.get(f"{gateway.url}/health",
                                    timeout=aiohttp.ClientTimeout(total=5)) as response:
                    body = await response.json()
                    if response.status != 200 or body.get("status") != "healthy":
                        problems.append(f"{gateway.url}/health: {response.status} {body}")
            except (aiohttp.ClientError, TimeoutError) as exc:
                problems.append(f"{gateway.url}/health: {exc!r}")
            problems += await _round_trip(gateway.url)
    return problems


async def _round_trip(url: str) -> list[str]:
    sio = socketio.AsyncClient(reconnection=False)
    results: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sio.on("result", results.put_nowait)
    command_id = f"health-{uuid.uuid4()}"
    try:
        await sio.connect(url, auth={"apiKey": KEY}, transports=["websocket"], wait_timeout=5)
        ack = await sio.call("command", {"id": command_id, "type": "FAULT", "timeout": 8000},
                             timeout=5)
        if not ack.get("accepted"):
            return [f"fresh command on {url} refused: {ack}"]
        result = await asyncio.wait_for(results.get(), 10)
        if result.get("id") != command_id or not result.get("success"):
            return [f"fresh command on {url} ended with {result}"]
    except (socketio.exceptions.ConnectionError, *_SOCKET_ERRORS, TimeoutError) as exc:
        return [f"fresh command on {url}: {exc!r}"]
    finally:
        await _close(sio)
    return []


async def ready(cluster: Cluster) -> None:
    """Before the load: a command round-trips through each gateway (extensions registered,
    routers consuming). A hub that never gets there is a start-up failure, not a fault result."""
    deadline = time.monotonic() + STARTUP_S
    for url in cluster.urls:
        while problems := await _round_trip(url):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the hub is not ready after {STARTUP_S}s: {problems}")
            await asyncio.sleep(0.5)


async def run(fault: Fault, workdir: Path, label: str, seed: int,
              redis_setup: Callable[[Path], Any] = RedisProcess) -> Ledger:
    """Start the hub, load it, inject the fault, settle, check health; the filled ledger."""
    rng = random.Random(seed)
    ledger = Ledger()
    began = time.monotonic()
    cluster = Cluster.start(workdir, redis_setup)
    peers: list[Peer] = []
    try:
        extensions = [Extension(i, cluster.urls, ledger, rng) for i in range(EXTENSIONS)]
        clients = [Client(i, cluster.urls, ledger, rng) for i in range(CLIENTS)]
        peers = [*extensions, *clients]
        await asyncio.gather(*(peer.connect(bound_s=10) for peer in peers))
        await ready(cluster)
        ledger.phases["start"] = time.monotonic() - began
        stop = asyncio.Event()
        load = [asyncio.ensure_future(send_load(clients, stop)),
                asyncio.ensure_future(drop_sockets(clients, rng, stop))]
        await asyncio.sleep(FAULT_AT_S)
        ledger.problems += await fault.inject(cluster)
        await asyncio.sleep(AFTER_FAULT_S)
        stop.set()
        await asyncio.gather(*load)
        ledger.phases["load"] = time.monotonic() - began - ledger.phases["start"]
        await settle(clients, ledger)
        ledger.phases["settle"] = time.monotonic() - began - sum(ledger.phases.values())
        ledger.problems += await healthy_afterwards(cluster)
        ledger.phases["health"] = time.monotonic() - began - sum(ledger.phases.values())
    finally:
        for peer in peers:
            await peer.close()
        cluster.stop()
    ledger.phases["stop"] = time.monotonic() - began - sum(ledger.phases.values())
    line = ledger.summary(f"{label} seed={seed}")
    SUMMARIES.append(line)
    print(line)
    return ledger
