"""One command, one trace: the hub as separate services (auth, router, two gateways over a real
redis-server) exporting OTLP to a real Jaeger, the trace read back through Jaeger's query API.

Runs once per OTLP protocol (`http/protobuf`, `grpc`); the http run logs JSON, the grpc run
the pretty format, so the log test covers both.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
import orjson
import pytest

from tests.chart.chart import CHART
from tests.conftest import HubProcess, Hubs, RedisServer
from tests.e2e.conftest import KEY, Peer, connect, extension
from tests.observability.conftest import Jaeger, summary

CONFIG = {"auth": {"enabled": True, "jwt": {"secret": "observability-test-secret-0123456789"},
                   "apiKeys": {"enabled": True, "keys": [KEY]}}}


@dataclass
class Hub:
    protocol: str
    gateway: HubProcess
    other_gateway: HubProcess
    router: HubProcess
    auth: HubProcess

    @property
    def services(self) -> list[HubProcess]:
        return [self.gateway, self.other_gateway, self.router, self.auth]


@pytest.fixture(scope="module", params=["http/protobuf", "grpc"])
def hub(request: pytest.FixtureRequest, module_hubs: Hubs, jaeger: Jaeger,
        redis_server: RedisServer) -> Hub:
    protocol = request.param
    env = {"REDIS_URL": redis_server.url, "REDIS_KEY_PREFIX": f"o{uuid.uuid4().hex[:8]}:",
           "OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
           "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint(protocol),
           "OTEL_BSP_SCHEDULE_DELAY": "100", "OTEL_TRACES_SAMPLER": "parentbased_always_on",
           "DEBUG": "semantest:*",
           "LOG_FORMAT": "json" if protocol == "http/protobuf" else "pretty"}
    auth = module_hubs.start("semantest-auth", env=env, config=CONFIG)
    router = module_hubs.start("semantest-router", env=env, config=CONFIG)
    gateway = module_hubs.start("semantest-gateway", env=env, config=CONFIG)
    other = module_hubs.start("semantest-gateway", env=env, config=CONFIG)
    return Hub(protocol, gateway, other, router, auth)


def trace_id(result: dict[str, Any]) -> str:
    match = re.fullmatch(r"00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}", result["traceparent"])
    assert match, result["traceparent"]
    return match.group(1)


def spans_by_name(trace: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    named: dict[str, list[dict[str, Any]]] = {}
    for span in trace["spans"]:
        named.setdefault(span["operationName"], []).append(span)
    return named


def service_of(trace: dict[str, Any], span: dict[str, Any]) -> str:
    return str(trace["processes"][span["processID"]]["serviceName"])


def parent_of(span: dict[str, Any]) -> str | None:
    refs = [r for r in span["references"] if r["refType"] == "CHILD_OF"]
    return refs[0]["spanID"] if refs else None


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


async def test_a_command_across_two_gateways_is_one_trace(hub: Hub, jaeger: Jaeger,
                                                          peers: list[Peer]) -> None:
    ext_id = f"ext-{uuid.uuid4().hex[:6]}"
    ext = await extension(hub.other_gateway.url, peers,
                          {"apiKey": KEY, "role": "extension", "extensionId": ext_id})
    client = await connect(hub.gateway.url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": "NAVIGATE", "target": {"extensionId": ext_id}})
    delivered = await ext.next("command")
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["success"] is True
    tid = trace_id(result)
    assert trace_id(delivered) == tid  # the extension got the trace to continue

    wanted = {"command", "ledger accept", "command deliver", "result", "ledger report",
              "result deliver", "progress", "progress deliver"}
    trace = await jaeger.trace(tid, lambda t: wanted <= set(spans_by_name(t)))
    named = spans_by_name(trace)
    assert {len(named[name]) for name in wanted} == {1}, summary(trace)
    span = {name: spans[0] for name, spans in named.items()}
    assert {service_of(trace, s) for s in trace["spans"]} == {"semantest-gateway"}
    # The hops, parent to child: receive → accept; receive → deliver (the extension's gateway,
    # another process) → result (the extension's report) → report; receive → result back.
    assert parent_of(span["command"]) is None
    assert parent_of(span["ledger accept"]) == span["command"]["spanID"]
    assert parent_of(span["command deliver"]) == span["command"]["spanID"]
    gateway_of = {name: tags(span[name])["semantest.gateway.id"]
                  for name in ("command", "command deliver", "result", "result deliver")}
    assert gateway_of["command"] == gateway_of["result deliver"]  # the client's gateway
    assert gateway_of["command deliver"] == gateway_of["result"]  # the extension's
    assert gateway_of["command"] != gateway_of["command deliver"]
    assert parent_of(span["result"]) == span["command deliver"]["spanID"]
    assert parent_of(span["ledger report"]) == span["result"]["spanID"]
    assert parent_of(span["result deliver"]) == span["command"]["spanID"]
    assert delivered["traceparent"].split("-")[2] == span["command deliver"]["spanID"]
    received = tags(span["command"])
    assert received["semantest.command.id"] == ack["id"]
    assert received["semantest.command.outcome"] == "dispatched"
    assert received["semantest.extension.id"] == ext_id
    assert tags(span["command deliver"])["semantest.extension.id"] == ext_id


async def test_a_client_trace_is_continued_through_the_router_and_back(
        hub: Hub, jaeger: Jaeger, peers: list[Peer]) -> None:
    client = await connect(hub.gateway.url, auth={"apiKey": KEY})
    peers.append(client)
    caller_trace, caller_span = uuid.uuid4().hex, uuid.uuid4().hex[:16]
    traceparent = f"00-{caller_trace}-{caller_span}-01"
    ack = await client.call("command", {"type": f"NOBODY-{uuid.uuid4().hex[:6]}",
                                        "timeout": 300, "traceparent": traceparent})
    result = await client.next("result")
    assert result["id"] == ack["id"] and result["error"]["code"] == "NO_EXTENSION"
    assert trace_id(result) == caller_trace  # the caller's trace comes back on the result

    trace = await jaeger.trace(caller_trace, lambda t: {"command", "command expire",
                                                        "result deliver"} <= set(
                                                            spans_by_name(t)))
    span = {name: spans[0] for name, spans in spans_by_name(trace).items()}
    assert parent_of(span["command"]) == caller_span
    assert service_of(trace, span["command"]) == "semantest-gateway"
    assert service_of(trace, span["command expire"]) == "semantest-router"
    assert parent_of(span["command expire"]) == span["command"]["spanID"]
    assert tags(span["command expire"])["semantest.command.outcome"] == "NO_EXTENSION"
    assert service_of(trace, span["result deliver"]) == "semantest-gateway"


async def test_a_login_is_traced_from_the_gateway_into_the_auth_service(
        hub: Hub, jaeger: Jaeger) -> None:
    caller_trace = uuid.uuid4().hex
    async with aiohttp.ClientSession() as http, http.post(
            f"{hub.gateway.url}/auth/login", json={"username": "nobody", "password": "x"},
            headers={"traceparent": f"00-{caller_trace}-{uuid.uuid4().hex[:16]}-01"}) as answer:
        assert answer.status == 401
    trace = await jaeger.trace(caller_trace, lambda t: {"auth request", "auth answer"} <= set(
        spans_by_name(t)))
    span = {name: spans[0] for name, spans in spans_by_name(trace).items()}
    assert service_of(trace, span["auth request"]) == "semantest-gateway"
    assert service_of(trace, span["auth answer"]) == "semantest-auth"
    assert parent_of(span["auth answer"]) == span["auth request"]["spanID"]
    assert tags(span["auth answer"])["url.path"] == "/auth/login"
    assert tags(span["auth answer"])["semantest.http.status"] == 401


async def test_a_failing_command_names_its_id_and_trace_in_every_service_it_touched(
        hub: Hub, peers: list[Peer]) -> None:
    client = await connect(hub.gateway.url, auth={"apiKey": KEY})
    peers.append(client)
    ack = await client.call("command", {"type": f"NOBODY-{uuid.uuid4().hex[:6]}",
                                        "timeout": 200})
    result = await client.next("result")
    assert result["error"]["code"] == "NO_EXTENSION"
    tid = trace_id(result)
    for service in (hub.gateway, hub.router):
        lines: list[str] = []
        for _ in range(40):  # a service's line may reach its log file after the result
            lines = [line for line in service.output().splitlines() if ack["id"] in line]
            if lines:
                break
            await asyncio.sleep(0.25)
        assert lines, f"{service.command} wrote nothing about {ack['id']}"
        for line in lines:
            if hub.protocol == "http/protobuf":  # JSON lines: the ids are fields
                record = orjson.loads(line)
                assert record["commandId"] == ack["id"] and record["traceId"] == tid, record
            else:
                assert f"command={ack['id']}" in line and f"trace={tid}" in line, line


async def test_every_dashboard_query_names_a_metric_the_hub_exports(hub: Hub,
                                                                    peers: list[Peer]) -> None:
    """Scraped from the services after the commands above (and a connection open, with a
    command nobody runs waiting, while a gateway counts its tenants' pending commands, every
    5 s)."""
    dashboard = orjson.loads((CHART / "dashboards" / "semantest-hub.json").read_bytes())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\b(?:semantest|websocket)_[a-z_]+\b", target["expr"])}
    assert len(queried) >= 10
    client = await connect(hub.gateway.url, auth={"apiKey": KEY})
    peers.append(client)
    waiting = await client.call("command", {"type": f"NOBODY-{uuid.uuid4().hex[:6]}",
                                            "timeout": 60000})
    assert "accepted" in waiting, waiting
    missing: set[str] = queried
    async with aiohttp.ClientSession() as http:
        for _ in range(60):
            scraped = ""
            for service in hub.services:
                async with http.get(f"{service.url}/metrics") as response:
                    scraped += await response.text()
            missing = {name for name in queried
                       if not re.search(rf"^{name}[{{ ]", scraped, re.MULTILINE)}
            if not missing:
                return
            await asyncio.sleep(0.25)
    raise AssertionError(f"the dashboard queries metrics no service exports: {sorted(missing)}")
