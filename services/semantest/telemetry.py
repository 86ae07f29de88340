"""Logging set-up and the metrics of DESIGN §3.7 (OpenTelemetry SDK, Prometheus exporter).

Metric names here are contract. The OTel Prometheus exporter adds `_total` to counters, so the
counters are declared without it.
"""

from __future__ import annotations

import logging
import sys
from collections import Counter as Tally
from collections.abc import Iterable
from dataclasses import dataclass, field

from opentelemetry.exporter.prometheus import PrometheusMetricReader
from opentelemetry.metrics import (
    CallbackOptions,
    Counter,
    Histogram,
    Meter,
    Observation,
    UpDownCounter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.view import ExplicitBucketHistogramAggregation, View
from opentelemetry.sdk.resources import Resource
from prometheus_client import CollectorRegistry, generate_latest
from pythonjsonlogger.json import JsonFormatter

from semantest.config import Logging

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


@dataclass
class Metrics:
    """The instruments every role records into; one set per process."""

    registry: CollectorRegistry
    connections: Counter
    connections_active: UpDownCounter
    commands: Counter
    command_duration: Histogram
    commands_in_flight: UpDownCounter
    bus_errors: Counter
    messages: Tally[str] = field(default_factory=Tally)
    """Messages by direction: a plain tally on the hot path, read by OTel only when scraped."""

    def observe_messages(self, _: CallbackOptions) -> Iterable[Observation]:
        return [Observation(n, {"direction": d}) for d, n in self.messages.items()]

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def create_metrics() -> Metrics:
    registry = CollectorRegistry(auto_describe=True)
    reader = PrometheusMetricReader(registry=registry, scope_info_enabled=False)
    provider = MeterProvider(
        resource=Resource.create({"service.name": "semantest"}),
        shutdown_on_exit=False,
        metric_readers=[reader],
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
        connections=meter.create_counter(
            "websocket_connections", description="Total WebSocket connections"
        ),
        connections_active=meter.create_up_down_counter(
            "websocket_connections_active", description="Open WebSocket connections"
        ),
        commands=meter.create_counter(
            "semantest_commands", description="Commands by type and outcome"
        ),
        command_duration=meter.create_histogram(
            "semantest_command_duration_seconds", unit="s",
            description="Time from acceptance to result",
        ),
        commands_in_flight=meter.create_up_down_counter(
            "semantest_commands_in_flight", description="Commands accepted and not yet ended"
        ),
        bus_errors=meter.create_counter(
            "semantest_bus_errors", description="Bus messages that could not be handled"
        ),
    )
    meter.create_observable_counter(
        "websocket_messages", callbacks=[metrics.observe_messages],
        description="Total messages processed",
    )
    return metrics
