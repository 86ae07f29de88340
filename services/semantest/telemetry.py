"""Logging set-up and the metrics of DESIGN §3.7 (OpenTelemetry SDK, Prometheus exporter).

Metric names here are contract (docs/observability.md lists each). The OTel Prometheus exporter
adds `_total` to counters, so the counters are declared without it. The histograms on the
command path are prometheus_client ones in the same registry: an observation costs ~1 µs, an
SDK histogram record with attributes ~10 µs.

Logs: a line about a command carries `commandId` and `traceId` (pass `command_fields(...)` as
`extra`; a line written inside a span gets the span's trace id by itself), in JSON as fields and
in the pretty format as `command=… trace=…`. `DEBUG` (logging.debug) turns on debug output per
namespace like the Node `debug` package: `semantest:gateway` is the logger `semantest.gateway`.
"""

from __future__ import annotations

import logging
import re
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import (
    CallbackOptions,
    Histogram,
    Meter,
    Observation,
)
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import get_current_span
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client import Histogram as PromHistogram
from pythonjsonlogger.json import JsonFormatter

from semantest.config import Logging
from semantest.tracing import Tracing, trace_id_of

STARTED = time.monotonic()
"""When this process started: the one clock behind `uptime` in /health and in `status`."""


def uptime() -> int:
    return int(time.monotonic() - STARTED)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


_QUEUE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5,
                  10, 30, 60)
_REDIS_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                  0.5, 1)
_NAMESPACE = re.compile(r"^semantest(:[A-Za-z0-9_.-]+)*(:\*)?$")


def command_fields(command_id: object, traceparent: object = None) -> dict[str, object]:
    """`extra` for a log line about a command: its id and the trace it travels in."""
    return {"commandId": command_id, "traceId": trace_id_of(traceparent)}


class _TraceIds(logging.Filter):
    """Every record gets `commandId`/`traceId` (None when not about a command); inside a
    recording span the trace id is the span's."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "commandId"):
            record.commandId = None
        if getattr(record, "traceId", None) is None:
            context = get_current_span().get_span_context()
            record.traceId = format(context.trace_id, "032x") if context.is_valid else None
        return True


class _PrettyFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = [f"{name}={value}" for name, value in (
            ("command", getattr(record, "commandId", None)),
            ("trace", getattr(record, "traceId", None))) if value]
        return f"{line} [{' '.join(ids)}]" if ids else line


def debug_namespaces(spec: str) -> tuple[list[str], list[str]]:
    """`DEBUG` as the Node `debug` package reads it → (loggers to debug, loggers left out).
    `semantest:*` is the logger `semantest` (and all below it); names outside semantest are
    someone else's and ignored."""
    on: list[str] = []
    off: list[str] = []
    for item in re.split(r"[\s,]+", spec.strip()):
        name = item.removeprefix("-")
        if not _NAMESPACE.match(name):
            continue
        logger = name.removesuffix(":*").replace(":", ".")
        (off if item.startswith("-") else on).append(logger)
    return on, off


def configure_logging(settings: Logging) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_TraceIds())
    if settings.format == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                          rename_fields={"levelname": "level", "asctime": "time"})
        )
    else:
        handler.setFormatter(_PrettyFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = _LEVELS[settings.level]
    root.setLevel(level)
    on, off = debug_namespaces(settings.debug)
    for name in on:
        logging.getLogger(name).setLevel(logging.DEBUG)
    for name in off:
        logging.getLogger(name).setLevel(max(level, logging.INFO))
    # Per-packet logs of the libraries would drown ours; they stay at warning.
    for noisy in ("engineio", "socketio", "aiohttp.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class Tally:
    """A counter that costs a dict update on the hot path; OpenTelemetry reads it when scraped.

    An SDK `Counter.add` hashes its attributes and aggregates on every call (~20 µs on these
    machines); this is ~2 µs, and the exposition is the same.
    """

    def __init__(self) -> None:
        self._values: dict[tuple[tuple[str, str], ...], float] = {}

    def add(self, amount: float, attributes: dict[str, str] | None = None) -> None:
        key = tuple(sorted(attributes.items())) if attributes else ()
        self._values[key] = self._values.get(key, 0) + amount

    def set(self, value: float, attributes: dict[str, str] | None = None) -> None:
        """For a gauge read from elsewhere (a count in Redis)."""
        self._values[tuple(sorted(attributes.items())) if attributes else ()] = value

    def observe(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(key)) for key, value in self._values.items()]


@dataclass
class Metrics:
    """The instruments every role records into; one set per process."""

    registry: CollectorRegistry
    command_duration: Histogram
    queue_wait: PromHistogram
    redis_calls: PromHistogram
    tracing: Tracing = field(default_factory=Tracing)
    """The process's tracer (off unless OTEL_TRACES_EXPORTER is set)."""
    connections: Tally = field(default_factory=Tally)
    connections_active: Tally = field(default_factory=Tally)
    messages: Tally = field(default_factory=Tally)
    commands: Tally = field(default_factory=Tally)
    commands_in_flight: Tally = field(default_factory=Tally)
    commands_pending: Tally = field(default_factory=Tally)
    commands_queued: Tally = field(default_factory=Tally)
    bus_errors: Tally = field(default_factory=Tally)

    def command_ended(self, command_type: str, outcome: str, duration_ms: int) -> None:
        """A command ended here (whichever process ended it counts it)."""
        labels = {"type": command_type, "outcome": outcome}
        self.commands_in_flight.add(-1)
        self.commands.add(1, labels)
        self.command_duration.record(duration_ms / 1000, labels)

    def redis_call(self, function: str, seconds: float) -> None:
        """One ledger call to Redis took this long (the round trip as the caller waits it)."""
        self.redis_calls.labels(function).observe(seconds)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def create_metrics() -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "semantest"}),
        shutdown_on_exit=False,
        metric_readers=[reader],
        # No exemplars (the exporter does not show them): 13 % off each histogram record.
        exemplar_filter=AlwaysOffExemplarFilter(),
        views=[
            View(
                instrument_name="semantest_command_duration_seconds",
                aggregation=ExplicitBucketHistogramAggregation(_DURATION_BUCKETS),
            )
        ],
    )
    meter: Meter = provider.get_meter("semantest")
    metrics = Metrics(
        registry=registry,
        command_duration=meter.create_histogram(
            "semantest_command_duration_seconds", unit="s",
            description="Time from acceptance to result, by type and outcome",
        ),
        queue_wait=PromHistogram(
            "semantest_command_queue_wait_seconds",
            "Time from acceptance until the extension's gateway sends the command on",
            ["type"], registry=registry, buckets=_QUEUE_BUCKETS),
        redis_calls=PromHistogram(
            "semantest_redis_call_duration_seconds",
            "Ledger calls to Redis (one function call each), as long as the caller waits",
            ["function"], registry=registry, buckets=_REDIS_BUCKETS),
    )
    counters = [  # (name, tally, description); the exporter adds `_total` to counters
        ("websocket_connections", metrics.connections, "Total WebSocket connections"),
        ("websocket_messages", metrics.messages, "Total messages processed"),
        ("semantest_commands", metrics.commands, "Commands by type and outcome"),
        ("semantest_bus_errors", metrics.bus_errors, "Bus messages that could not be handled"),
    ]
    for name, tally, description in counters:
        meter.create_observable_counter(name, callbacks=[tally.observe], description=description)
    gauges = [
        ("websocket_connections_active", metrics.connections_active, "Open WebSocket connections"),
        ("semantest_commands_in_flight", metrics.commands_in_flight,
         "Commands accepted and not yet ended"),
        ("semantest_commands_pending", metrics.commands_pending,
         "Commands of a tenant by state (running, queued), as a gateway last read them"),
        ("semantest_commands_queued", metrics.commands_queued,
         "Commands of a tenant waiting for an extension that runs their type, by type"),
    ]
    for name, tally, description in gauges:
        meter.create_observable_up_down_counter(name, callbacks=[tally.observe],
                                                description=description)
    return metrics
