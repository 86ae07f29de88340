"""Logging set-up and the metrics of DESIGN §3.7 (OpenTelemetry SDK, Prometheus exporter).

Metric names here are contract. The OTel Prometheus exporter adds `_total` to counters, so the
counters are declared without it.
"""

from __future__ import annotations

import logging
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
from prometheus_client import CollectorRegistry, generate_latest
from pythonjsonlogger.json import JsonFormatter

from semantest.config import Logging

STARTED = time.monotonic()
"""When this process started: the one clock behind `uptime` in /health and in `status`."""


def uptime() -> int:
    return int(time.monotonic() - STARTED)


_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING,
           "warning": logging.WARNING, "error": logging.ERROR}
_DURATION_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)


def configure_logging(settings: Logging) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "json":
        handler.setFormatter(
            JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                          rename_fields={"levelname": "level", "asctime": "time"})
        )
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(_LEVELS[settings.level])
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

    def observe(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(value, dict(key)) for key, value in self._values.items()]


@dataclass
class Metrics:
    """The instruments every role records into; one set per process."""

    registry: CollectorRegistry
    command_duration: Histogram
    connections: Tally = field(default_factory=Tally)
    connections_active: Tally = field(default_factory=Tally)
    messages: Tally = field(default_factory=Tally)
    commands: Tally = field(default_factory=Tally)
    commands_in_flight: Tally = field(default_factory=Tally)
    bus_errors: Tally = field(default_factory=Tally)

    def command_ended(self, command_type: str, outcome: str, duration_ms: int) -> None:
        """A command ended here (whichever process ended it counts it)."""
        self.commands_in_flight.add(-1)
        self.commands.add(1, {"type": command_type, "outcome": outcome})
        self.command_duration.record(duration_ms / 1000)

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
            description="Time from acceptance to result",
        ),
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
    ]
    for name, tally, description in gauges:
        meter.create_observable_up_down_counter(name, callbacks=[tally.observe],
                                                description=description)
    return metrics
