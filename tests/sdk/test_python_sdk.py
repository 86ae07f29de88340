"""The Python SDK (semantest.client) against real hubs: the all-in-one server, and auth + router +
gateways as separate processes over a real Redis. Commands are served by the SDK's own `Worker`
(the browser extension's tests drive real Chromium; here the point is the SDK and the wire)."""

from __future__ import annotations

import asyncio
import base64
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from semantest import client
from semantest.client import Context, Hub, Worker
from tests.conftest import ROOT, HubProcess, Hubs, RedisServer
from tests.e2e import conftest as e2e
from tests.e2e import test_commands
from tests.e2e.conftest import KEY
from tests.e2e.test_commands import login

# The end-to-end tests' hubs: all-in-one, and auth + router + gateway over Redis (module-wide).
hub_config, password_hash, hub_url = e2e.hub_config, e2e.password_hash, test_commands.hub_url


PNG_1x1 = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9aw"
           "AAAABJRU5ErkJggg==")


def browser_like(url: str, extension_id: str,
                 started: asyncio.Queue[Context] | None = None) -> Worker:
    """A worker with the result shapes the browser extension documents, plus slow commands
    (each announced on `started`)."""
    worker = Worker(url, api_key=KEY, extension_id=extension_id)

    @worker.handler("NAVIGATE")
    async def navigate(ctx: Context, url: str) -> dict[str, Any]:
        await ctx.progress(50, "loading")
        return {"url": url, "title": f"title of {url}"}

    @worker.handler("SCREENSHOT")
    async def screenshot(ctx: Context) -> dict[str, Any]:
        return {"mimeType": "image/png", "data": PNG_1x1}

    @worker.handler("WAIT")
    async def wait(ctx: Context, seconds: float = 60) -> dict[str, Any]:
        if started is not None:
            started.put_nowait(ctx)
        await asyncio.sleep(seconds)
        return {"waited": seconds}

    @worker.handler("FAIL")
    async def fail(ctx: Context, how: str) -> None:
        if how == "own-code":
            raise client.CommandError("ELEMENT_NOT_FOUND", "no #missing", {"selector": "#missing"})
        raise RuntimeError("boom")

    return worker


@pytest.fixture
async def worker(hub_url: str) -> AsyncIterator[Worker]:
    serving = browser_like(hub_url, f"py-{uuid.uuid4().hex[:8]}")
    async with serving:
        yield serving


@pytest.fixture
async def hub(hub_url: str) -> AsyncIterator[Hub]:
    async with Hub(hub_url, api_key=KEY) as connected:
        yield connected


async def test_run_returns_a_typed_result_with_progress(hub: Hub, worker: Worker) -> None:
    seen: list[client.Progress] = []
    result = await hub.run("NAVIGATE", url="http://page.test/", target=worker.extension_id,
                           correlation_id="corr-1", on_progress=seen.append, timeout=10)
    assert result.success and result.data == {"url": "http://page.test/",
                                              "title": "title of http://page.test/"}
    assert result.extension == worker.extension_id and result.correlation_id == "corr-1"
    assert result.duration_ms is not None and result.duration_ms >= 0
    assert [(p.id, p.percent, p.message, p.correlation_id) for p in seen] == [
        (result.id, 50, "loading", "corr-1")]
    status = await hub.status()
    assert worker.extension_id in [e["extensionId"] for e in status["extensions"]]


def readme_example() -> str:
    section = (ROOT / "README.md").read_text().split("### With the Python SDK", 1)[1]
    return section.split("```python\n", 1)[1].split("```", 1)[0]


async def test_the_readme_screenshot_script_runs_as_written(hub_url: str, worker: Worker,
                                                            tmp_path: Path) -> None:
    script = readme_example()
    assert "http://localhost:3000" in script and "<client key from make run>" in script
    script = script.replace("http://localhost:3000", hub_url).replace(
        "<client key from make run>", KEY)
    process = await asyncio.create_subprocess_exec(sys.executable, "-c", script, cwd=tmp_path,
                                                   stdout=asyncio.subprocess.PIPE,
                                                   stderr=asyncio.subprocess.STDOUT)
    output, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, output.decode()
    assert output.decode() == "opened title of https://example.com\n"
    assert (tmp_path / "example.png").read_bytes() == base64.b64decode(PNG_1x1)


def wire_error(code: str) -> dict[str, Any]:
    return {"code": code, "message": f"{code} happened", "event": "command", "id": "c-1"}


@pytest.mark.parametrize("code", sorted(client.errors.BY_CODE))
def test_every_protocol_error_code_has_its_own_class(code: str) -> None:
    error = client.errors.from_wire(wire_error(code))
    assert type(error) is client.errors.BY_CODE[code] and isinstance(error, client.HubError)
    assert (error.code, error.message, error.command_id) == (code, f"{code} happened", "c-1")
    assert len({cls.__name__ for cls in client.errors.BY_CODE.values()}) == len(
        client.errors.BY_CODE)


def test_an_extension_code_and_a_malformed_error_stay_hub_errors() -> None:
    own = client.errors.from_wire({"code": "ELEMENT_NOT_FOUND", "message": "no #x",
                                   "details": {"selector": "#x"}})
    assert type(own) is client.CommandFailed and own.code == "ELEMENT_NOT_FOUND"
    assert own.details == {"selector": "#x"} and str(own) == "ELEMENT_NOT_FOUND: no #x"
    assert type(client.errors.from_wire("nonsense")) is client.Internal
    limited = client.errors.from_wire({"code": "RATE_LIMITED", "message": "m", "retryAfter": 1500})
    assert isinstance(limited, client.RateLimited) and limited.retry_after == 1.5


def test_credentials_are_exactly_one_of_key_or_token() -> None:
    for both_or_none in ({}, {"api_key": "k", "token": "t"}):
        with pytest.raises(ValueError, match="exactly one"):
            Hub("http://127.0.0.1:1", **both_or_none)


async def test_refused_and_unreachable_connections_raise_typed_errors(hub_url: str) -> None:
    with pytest.raises(client.AuthInvalid):
        async with Hub(hub_url, api_key="not-a-key-0123456789"):
            pass
    with pytest.raises(client.Unavailable):
        async with Hub("http://127.0.0.1:9", api_key=KEY, connect_timeout=2):
            pass


async def test_a_revoked_credential_fails_waiting_commands_and_stops(hub_url: str,
                                                                     worker: Worker) -> None:
    token = await login(hub_url, "alice")
    async with Hub(hub_url, token=token) as alice:
        handle = await alice.submit("WAIT", target=worker.extension_id)
        feed = alice.subscribe(f"feed.{uuid.uuid4().hex[:6]}")
        await feed.open()
        async with aiohttp.ClientSession() as http, http.post(
                f"{hub_url}/auth/logout", headers={"Authorization": f"Bearer {token}"}) as out:
            assert out.status == 200
        with pytest.raises(client.AuthInvalid, match="revoked"):
            await handle
        with pytest.raises(client.AuthInvalid):
            await asyncio.wait_for(anext(feed), 10)
        assert not alice.connected
        with pytest.raises(client.AuthInvalid):  # no reconnecting with a dead credential
            await alice.run("NAVIGATE", url="http://x.test/", target=worker.extension_id)


async def test_failures_and_where_parameters_come_from(hub: Hub, worker: Worker) -> None:
    target = worker.extension_id
    with pytest.raises(client.NoExtension) as nobody:
        await hub.run(f"NOBODY-{uuid.uuid4().hex[:6]}", timeout=0.3)
    assert nobody.value.result is not None and nobody.value.result.success is False
    with pytest.raises(client.CommandFailed) as own:
        await hub.run("FAIL", how="own-code", target=target)
    assert (own.value.code, own.value.details) == ("ELEMENT_NOT_FOUND", {"selector": "#missing"})
    with pytest.raises(client.CommandFailed) as crashed:
        await hub.run("FAIL", how="crash", target=target)
    assert crashed.value.code == "HANDLER_ERROR" and crashed.value.message == "RuntimeError: boom"
    with pytest.raises(client.ValidationFailed, match="url"):
        await hub.run("NAVIGATE", target=target)  # the handler's parameter is missing
    from_options = await hub.run("NAVIGATE", options={"url": "http://o.test/"}, target=target)
    assert from_options.data["url"] == "http://o.test/"  # parameters may come in `options`
    top_wins = await hub.run("NAVIGATE", url="http://top.test/", options={"url": "x"},
                             target=target)
    assert top_wins.data["url"] == "http://top.test/"
    with pytest.raises(client.ValidationFailed, match="id"):
        await hub.run("NAVIGATE", id="not an id", url="x", target=target)  # refused by the hub


async def test_a_type_without_handler_is_answered_unknown(hub: Hub, hub_url: str) -> None:
    anything = Worker(hub_url, api_key=KEY, capabilities=["*"],
                      extension_id=f"any-{uuid.uuid4().hex[:6]}")
    async with anything:
        with pytest.raises(client.CommandFailed) as unknown:
            await hub.run("TELEPORT", target=anything.extension_id)
    assert unknown.value.code == "UNKNOWN_COMMAND" and "TELEPORT" in unknown.value.message


async def test_timeout_and_cancel_reach_the_handler(hub: Hub, hub_url: str) -> None:
    started: asyncio.Queue[Context] = asyncio.Queue()
    ended: asyncio.Queue[str] = asyncio.Queue()
    slow = Worker(hub_url, api_key=KEY, extension_id=f"slow-{uuid.uuid4().hex[:6]}")

    @slow.handler("WAIT")
    async def wait(ctx: Context) -> None:
        started.put_nowait(ctx)
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            ended.put_nowait(ctx.id)
            raise

    async with slow:
        with pytest.raises(client.CommandTimeout) as timed_out:
            await hub.run("WAIT", timeout=0.5, target=slow.extension_id)
        assert await asyncio.wait_for(ended.get(), 10) == timed_out.value.command_id
        assert (await started.get()).cancelled

        handle = await hub.submit("WAIT", target=slow.extension_id, correlation_id="job-7")
        assert handle.correlation_id == "job-7"
        await asyncio.wait_for(started.get(), 10)
        assert await handle.cancel() is True
        with pytest.raises(client.Cancelled) as cancelled:
            await handle
        assert cancelled.value.result.correlation_id == "job-7"
        assert await asyncio.wait_for(ended.get(), 10) == handle.id
        assert await handle.cancel() is False  # over: nothing left to cancel


async def test_extension_that_leaves_mid_command(hub: Hub, hub_url: str) -> None:
    started: asyncio.Queue[Context] = asyncio.Queue()
    leaving = browser_like(hub_url, f"leaving-{uuid.uuid4().hex[:6]}", started)
    async with leaving:
        handle = await hub.submit("WAIT", target=leaving.extension_id)
        await asyncio.wait_for(started.get(), 10)
    with pytest.raises(client.ExtensionDisconnected):  # hub_config: 1.5 s grace
        await handle


async def test_sessions_create_share_join_and_rights(hub: Hub, hub_url: str,
                                                     worker: Worker) -> None:
    session = await hub.create_session("checkout", persistent=True)
    assert session.permissions == ("read", "write") and session.persistent is True
    result = await hub.run("NAVIGATE", url="http://a.test/", session_id=session.id)
    assert result.session_id == session.id and result.extension == worker.extension_id
    writer_token = await hub.share_session(session.id, ["read", "write"])
    reader_token = await hub.share_session(session.id, ["read"], expires_in=60)
    async with Hub(hub_url, token=await login(hub_url, "alice")) as alice, \
            Hub(hub_url, token=await login(hub_url, "carol")) as carol, \
            Hub(hub_url, token=await login(hub_url, "bob")) as bob:
        joined = await alice.join_session(session.id, writer_token)
        assert (joined.name, joined.permissions) == ("checkout", ("read", "write"))
        async with alice.watch(session.id) as events:
            by_owner = await hub.run("NAVIGATE", url="http://w.test/", session_id=session.id)
            seen = [await asyncio.wait_for(anext(events), 10) for _ in range(2)]
        assert [(type(e).__name__, e.id, e.session_id) for e in seen] == [
            ("Progress", by_owner.id, session.id), ("Result", by_owner.id, session.id)]
        assert seen[1].data == by_owner.data
        with pytest.raises(StopAsyncIteration):  # closed with the `async with`
            await anext(events)
        assert (await alice.run("NAVIGATE", url="http://b.test/", session_id=session.id)).success
        await alice.leave_session(session.id)
        with pytest.raises(client.Forbidden, match="share token"):
            await carol.join_session(session.id)
        assert (await carol.join_session(session.id, reader_token)).permissions == ("read",)
        with pytest.raises(client.Forbidden, match="write"):
            await carol.run("NAVIGATE", url="http://c.test/", session_id=session.id)
        with pytest.raises(client.SessionNotFound):  # bob is another tenant: not even seen
            await bob.join_session(session.id, reader_token)


async def test_channels_subscribe_publish_and_since(hub: Hub, hub_url: str) -> None:
    channel = f"builds.{uuid.uuid4().hex[:6]}"
    async with Hub(hub_url, api_key=KEY) as reader:
        async with reader.subscribe(channel) as messages:
            first = await hub.publish(channel, {"n": 1})
            message = await asyncio.wait_for(anext(messages), 10)
            assert (message.channel, message.message, message.offset) == (channel, {"n": 1},
                                                                         first)
        for n in (2, 3):
            await hub.publish(channel, {"n": n})
        replayed = reader.subscribe(channel, since=first)
        assert [(await asyncio.wait_for(anext(replayed), 10)).message for _ in range(2)] == [
            {"n": 2}, {"n": 3}]
        await replayed.close()
        left_open = reader.subscribe(channel)
        await left_open.open()
    with pytest.raises(StopAsyncIteration):  # the Hub closed: the iteration ends
        await asyncio.wait_for(anext(left_open), 10)
    with pytest.raises(client.Forbidden):
        await hub.publish("errors", "fake")


async def test_sync_hub_for_scripts(hub_url: str, worker: Worker) -> None:
    from semantest.client import sync

    def script() -> tuple[Any, ...]:
        with sync.Hub(hub_url, api_key=KEY) as hub:
            page = hub.run("NAVIGATE", url="http://sync.test/", target=worker.extension_id)
            handle = hub.submit("WAIT", seconds=60, target=worker.extension_id)
            cancelled = handle.cancel()
            with pytest.raises(client.Cancelled):
                handle.result()
            session = hub.create_session("sync")
            events = hub.watch(session.id)
            in_session = hub.run("NAVIGATE", url="http://s.test/", session_id=session.id)
            assert [next(events).id, next(events).id] == [in_session.id] * 2
            events.close()
            channel = f"sync.{uuid.uuid4().hex[:6]}"
            messages = hub.subscribe(channel)
            offset = hub.publish(channel, "hello")
            got = next(messages)
            messages.close()
            return page.data, cancelled, got.message, got.offset == offset

    assert await asyncio.to_thread(script) == (
        {"url": "http://sync.test/", "title": "title of http://sync.test/"}, True, "hello", True)
    with pytest.raises(client.AuthInvalid):
        await asyncio.to_thread(sync.Hub, hub_url, api_key="wrong-key-0123456789")


async def eventually(condition: Callable[[], bool], within_s: float = 10) -> None:
    for _ in range(int(within_s / 0.01)):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"not true within {within_s}s")


class Gated:
    """A worker whose WAIT commands finish only when the test says; it counts every run."""

    def __init__(self, url: str) -> None:
        self.worker = Worker(url, api_key=KEY, extension_id=f"gated-{uuid.uuid4().hex[:6]}")
        self.runs: list[str] = []
        self.started: asyncio.Queue[str] = asyncio.Queue()
        self.gates: dict[str, asyncio.Event] = {}

        @self.worker.handler("WAIT")
        async def wait(ctx: Context, label: str) -> dict[str, Any]:
            self.runs.append(label)
            self.started.put_nowait(label)
            await self.gate(label).wait()
            return {"label": label}

    def gate(self, label: str) -> asyncio.Event:
        return self.gates.setdefault(label, asyncio.Event())


@dataclass
class TwoGateways:
    """auth + router + two gateways over Redis; a Hub on the first, a Gated worker on the
    second; either gateway can be started again on its port."""

    hubs: Hubs
    config: dict[str, Any]
    client_gateway: HubProcess
    worker_gateway: HubProcess
    gated: Gated
    hub: Hub

    def restart(self, gateway: HubProcess) -> HubProcess:
        return self.hubs.start("semantest-gateway", env=gateway.env, config=self.config,
                               port=gateway.port)


@pytest.fixture
async def two_gateways(hubs: Hubs, redis_server: RedisServer,
                       hub_config: dict[str, Any]) -> AsyncIterator[TwoGateways]:
    config = {**hub_config, "commands": {"extensionGrace": 20000}}  # room for a restart
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"sdkr{uuid.uuid4().hex[:6]}:"}
    hubs.start("semantest-auth", env=env, config=config)
    hubs.start("semantest-router", env=env, config=config)
    client_gateway, worker_gateway = (hubs.start("semantest-gateway", env=env, config=config)
                                      for _ in range(2))
    gated = Gated(worker_gateway.url)
    async with gated.worker, Hub(client_gateway.url, api_key=KEY, timeout=60) as hub:
        yield TwoGateways(hubs, config, client_gateway, worker_gateway, gated, hub)


@pytest.mark.timeout(120)
async def test_reconnect_resends_unfinished_commands_once(two_gateways: TwoGateways) -> None:
    gated, hub, client_gateway = two_gateways.gated, two_gateways.hub, two_gateways.client_gateway
    ended_away = await hub.submit("WAIT", label="ends-while-away",
                                  target=gated.worker.extension_id)
    ends_after = await hub.submit("WAIT", label="ends-after-reconnect",
                                  target=gated.worker.extension_id)
    assert {await gated.started.get(), await gated.started.get()} == {
        "ends-while-away", "ends-after-reconnect"}

    client_gateway.kill()  # kill -9 with both commands in flight
    gated.gate("ends-while-away").set()  # its result reaches the ledger, not the client
    restarted = two_gateways.restart(client_gateway)
    assert (await ended_away).data == {"label": "ends-while-away"}  # asked again by id
    gated.gate("ends-after-reconnect").set()
    assert (await ends_after).data == {"label": "ends-after-reconnect"}
    assert sorted(gated.runs) == ["ends-after-reconnect", "ends-while-away"]  # once each

    again = await hub.run("WAIT", id=ended_away.id, label="ignored")  # the same id: no rerun
    assert again.data == {"label": "ends-while-away"} and len(gated.runs) == 2
    assert restarted.process.poll() is None


@pytest.mark.timeout(120)
async def test_draining_gateway_hands_the_client_over(two_gateways: TwoGateways) -> None:
    gated, hub, client_gateway = two_gateways.gated, two_gateways.hub, two_gateways.client_gateway
    running = await hub.submit("WAIT", label="running", target=gated.worker.extension_id)
    assert await gated.started.get() == "running"
    client_gateway.process.terminate()  # SIGTERM: server:draining, then it waits for us
    await eventually(lambda: not hub.connected)
    later = asyncio.ensure_future(hub.run("WAIT", label="sent-while-draining",
                                          target=gated.worker.extension_id))
    gated.gate("running").set()
    assert (await running).data == {"label": "running"}
    await asyncio.to_thread(client_gateway.process.wait, 30)  # drained and gone
    assert not later.done() and gated.started.empty()  # held, not sent to the drained one
    two_gateways.restart(client_gateway)
    assert await asyncio.wait_for(gated.started.get(), 30) == "sent-while-draining"
    gated.gate("sent-while-draining").set()
    assert (await later).data == {"label": "sent-while-draining"}
    assert sorted(gated.runs) == ["running", "sent-while-draining"]


@pytest.mark.timeout(120)
async def test_worker_reports_its_result_after_its_gateway_died(
        two_gateways: TwoGateways) -> None:
    gated, hub, worker_gateway = two_gateways.gated, two_gateways.hub, two_gateways.worker_gateway
    handle = await hub.submit("WAIT", label="outlives-its-gateway",
                              target=gated.worker.extension_id)
    assert await gated.started.get() == "outlives-its-gateway"
    worker_gateway.kill()
    gated.gate("outlives-its-gateway").set()  # finished while away: reported on return
    two_gateways.restart(worker_gateway)
    assert (await handle).data == {"label": "outlives-its-gateway"}
    assert (await handle).extension == gated.worker.extension_id
    assert gated.runs == ["outlives-its-gateway"]


async def test_worker_run_serves_until_stopped(hub: Hub, hub_url: str) -> None:
    worker = browser_like(hub_url, f"run-{uuid.uuid4().hex[:6]}")
    serving = asyncio.ensure_future(worker.run())
    # Queued for this extensionId until it has connected: no wait for the connection needed.
    page = await hub.run("NAVIGATE", url="http://run.test/", target=worker.extension_id)
    assert page.extension == worker.extension_id
    worker.stop()
    await asyncio.wait_for(serving, 10)
    with pytest.raises(client.NoExtension):  # gone: nobody runs its commands any more
        await hub.run("NAVIGATE", url="http://run.test/", target=worker.extension_id,
                      timeout=0.5)


async def test_worker_acknowledges_every_delivery_and_runs_an_id_once() -> None:
    """The `command` handler alone (no hub): a repeat, `redelivered` or not, is acked, not run."""
    worker = Worker("http://127.0.0.1:9", api_key=KEY)
    runs: list[str] = []

    @worker.handler("X")
    async def x(ctx: Context) -> None:
        runs.append(ctx.id)

    command = {"id": "c-1", "type": "X", "deadline": 0}
    acks = [worker._on_command(command), worker._on_command({**command, "redelivered": True}),
            worker._on_command({**command, "id": "c-2"})]
    await asyncio.gather(*(task for task, _ in list(worker._running.values())))
    assert acks == [True, True, True] and runs == ["c-1", "c-2"]
    with pytest.raises(TypeError, match="async"):
        worker.handler("Y")(lambda ctx: None)
