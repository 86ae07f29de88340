"""Tracing set-up from the standard OTEL_* variables, and logs: DEBUG namespaces, command and
trace ids in both formats. No trace store needed (test_traces.py has the real one)."""

from __future__ import annotations

import io
import logging
import subprocess
from collections.abc import Iterator

import orjson
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.trace import TracerProvider

from semantest.config import Logging
from semantest.server import ALL_ROLES, service_name
from semantest.telemetry import command_fields, configure_logging, debug_namespaces
from semantest.tracing import Tracing, create_tracing
from tests.conftest import BIN

OTEL = ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_SERVICE_NAME",
        "OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_RESOURCE_ATTRIBUTES")


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in OTEL:
        monkeypatch.delenv(name, raising=False)


def exporter_of(tracing: Tracing) -> object:
    provider = tracing.provider
    assert isinstance(provider, TracerProvider)
    (processor,) = provider._active_span_processor._span_processors  # the one batch processor
    return processor.span_exporter  # type: ignore[attr-defined]


def test_off_unless_an_exporter_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    assert create_tracing("semantest-gateway").enabled is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    assert create_tracing("semantest-gateway").enabled is False
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert create_tracing("semantest-gateway").enabled is False


def test_off_costs_one_shared_null_context() -> None:
    off = Tracing()
    assert off.span("command") is off.span("result", parent="00-" + "1" * 32 + "-" + "2" * 16
                                           + "-01")
    assert off.traceparent() is None


@pytest.mark.parametrize(("protocol", "exporter"), [("http/protobuf", HttpExporter),
                                                    ("grpc", GrpcExporter)])
def test_the_sdk_picks_the_otlp_exporter_by_protocol(monkeypatch: pytest.MonkeyPatch,
                                                     protocol: str, exporter: type) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
    tracing = create_tracing("semantest-router")
    assert isinstance(exporter_of(tracing), exporter)
    tracing.flush(100)


def test_the_service_name_is_the_role_unless_otel_service_name_says(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    tracing = create_tracing(service_name({"router"}))
    assert tracing.provider is not None
    assert tracing.provider.resource.attributes["service.name"] == "semantest-router"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "hub-eu-1")
    tracing = create_tracing(service_name({"router"}))
    assert tracing.provider is not None
    assert tracing.provider.resource.attributes["service.name"] == "hub-eu-1"


def test_service_names_per_role() -> None:
    assert service_name(ALL_ROLES) == "semantest-server"
    assert [service_name({r}) for r in ("gateway", "router", "auth")] == [
        "semantest-gateway", "semantest-router", "semantest-auth"]


@pytest.mark.parametrize(("variable", "value", "says"), [
    ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json", "Unsupported OTLP protocol 'http/json'"),
    ("OTEL_TRACES_EXPORTER", "zipkin-nope", "zipkin-nope"),
])
def test_a_bad_otel_setting_stops_the_service_with_a_clear_line(variable: str, value: str,
                                                                 says: str) -> None:
    env = {"PATH": "/usr/bin:/bin", "OTEL_TRACES_EXPORTER": "otlp", variable: value,
           "AUTH_ENABLED": "false", "PORT": "0"}
    run = subprocess.run([str(BIN / "semantest-server")], env=env, capture_output=True,
                         text=True, timeout=60, check=False)
    assert run.returncode == 1
    assert says in run.stderr and run.stderr.startswith("semantest: OTEL_TRACES_EXPORTER")


def test_debug_namespaces_read_like_the_node_debug_package() -> None:
    assert debug_namespaces("semantest:gateway,semantest:router") == (
        ["semantest.gateway", "semantest.router"], [])
    assert debug_namespaces("semantest:* -semantest:bus") == (["semantest"], ["semantest.bus"])
    assert debug_namespaces("express:*,*,1,semantest:gateway:") == ([], [])


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    touched = ["semantest", "semantest.gateway", "semantest.router", "semantest.bus"]
    levels = {name: logging.getLogger(name).level for name in touched}
    sink = io.StringIO()
    yield sink
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, old in levels.items():
        logging.getLogger(name).setLevel(old)


def _to(sink: io.StringIO) -> None:
    logging.getLogger().handlers[0].setStream(sink)  # type: ignore[attr-defined]


def test_debug_output_is_per_namespace(captured: io.StringIO) -> None:
    configure_logging(Logging(debug="semantest:gateway"))
    _to(captured)
    logging.getLogger("semantest.gateway").debug("from the gateway")
    logging.getLogger("semantest.router").debug("from the router")
    logging.getLogger("semantest.router").info("router info")
    text = captured.getvalue()
    assert "from the gateway" in text and "router info" in text
    assert "from the router" not in text


def test_a_command_line_carries_its_id_and_trace_in_both_formats(captured: io.StringIO) -> None:
    traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    configure_logging(Logging(format="json"))
    _to(captured)
    logging.getLogger("semantest.router").warning("ended", extra=command_fields("c-1",
                                                                                traceparent))
    record = orjson.loads(captured.getvalue())
    assert (record["commandId"], record["traceId"]) == ("c-1", "4bf92f3577b34da6a3ce929d0e0e4736")
    pretty = io.StringIO()
    configure_logging(Logging(format="pretty"))
    _to(pretty)
    logging.getLogger("semantest.router").warning("ended", extra=command_fields("c-1",
                                                                                traceparent))
    assert pretty.getvalue().rstrip().endswith(
        "ended [command=c-1 trace=4bf92f3577b34da6a3ce929d0e0e4736]")


def test_a_line_inside_a_span_gets_its_trace_id(captured: io.StringIO) -> None:
    tracing = Tracing(TracerProvider())  # recording, exporting nowhere
    configure_logging(Logging(format="json"))
    _to(captured)
    with tracing.span("command"):
        trace_id = tracing.traceparent().split("-")[1]  # type: ignore[union-attr]
        logging.getLogger("semantest.gateway").warning("inside")
    record = orjson.loads(captured.getvalue())
    assert record["traceId"] == trace_id and record["commandId"] is None
