"""Traces (OpenTelemetry SDK, exported over OTLP) and the trace context a command carries.

Off unless `OTEL_TRACES_EXPORTER` names an exporter (`otlp`, `console`; the spec's default of
`otlp` would make every hub try to reach a collector): then the SDK's own environment handling
picks everything else — `OTEL_EXPORTER_OTLP_PROTOCOL` (`http/protobuf` or `grpc`) and endpoint,
`OTEL_TRACES_SAMPLER`, `OTEL_BSP_*`, `OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`. A role
gives its default service name (`semantest-gateway`, ...), which `OTEL_SERVICE_NAME` overrides.

Off, `Tracing.span` returns one shared null context and nothing else runs: no tracer, no
context switch, no id generated. A command's trace context travels in the command itself as the
W3C `traceparent` field (protocol.ECHOED): the ledger stores it with the command, hands it to the
extension, and echoes it on progress and the result, so every service that touches the command
continues the same trace without any change to the ledger's layout.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk import _configuration as sdk_configuration
from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import Span, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

TRACEPARENT = "traceparent"
SERVER, CLIENT, CONSUMER, INTERNAL = (SpanKind.SERVER, SpanKind.CLIENT, SpanKind.CONSUMER,
                                      SpanKind.INTERNAL)
_PROPAGATOR = TraceContextTextMapPropagator()
_OFF: contextlib.nullcontext[None] = contextlib.nullcontext()


def trace_id_of(traceparent: object) -> str | None:
    """The trace id inside a W3C traceparent (`00-<trace id>-<span id>-<flags>`), if any."""
    if isinstance(traceparent, str) and len(traceparent) >= 35 and traceparent[2] == "-":
        return traceparent[3:35]
    return None


class Tracing:
    """The tracer of one process, or nothing (tracing off)."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self.enabled = provider is not None
        self._tracer = provider.get_tracer("semantest") if provider is not None else None

    def span(self, name: str, *, parent: object = None, kind: SpanKind = INTERNAL,
             attributes: Mapping[str, Any] | None = None,
             ) -> contextlib.AbstractContextManager[Span | None]:
        """A span around a block, the current one inside it. `parent` is a traceparent string
        (a command's): the span joins that trace; without one it is a child of the current
        span, or a new trace."""
        if self._tracer is None:
            return _OFF
        context = (_PROPAGATOR.extract({TRACEPARENT: parent}) if isinstance(parent, str)
                   else None)
        return self._tracer.start_as_current_span(name, context=context, kind=kind,
                                                  attributes=attributes)

    def continued(self, name: str, parent: object, *, kind: SpanKind = INTERNAL,
                  attributes: Mapping[str, Any] | None = None,
                  ) -> contextlib.AbstractContextManager[Span | None]:
        """A span in `parent`'s trace, or nothing when there is no trace to continue (a
        delivery of a command that came without one, e.g. while tracing was off)."""
        if self._tracer is None or not isinstance(parent, str):
            return _OFF
        return self.span(name, parent=parent, kind=kind, attributes=attributes)

    def record_each(self, name: str, start_ns: int, parents: list[str | None],
                    attributes: list[Mapping[str, Any]]) -> None:
        """One span per parent, each from `start_ns` to now: a step that ended many commands
        at once (a sweep) shows in each command's trace. A None parent is skipped."""
        if self._tracer is None:
            return
        for parent, attrs in zip(parents, attributes, strict=True):
            if parent is not None:
                self._tracer.start_span(
                    name, context=_PROPAGATOR.extract({TRACEPARENT: parent}),
                    attributes=attrs, start_time=start_ns).end()

    @staticmethod
    def traceparent() -> str | None:
        """The current span's context as a W3C traceparent (None when there is no span)."""
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        return carrier.get(TRACEPARENT)

    def annotate(self, **attributes: Any) -> None:
        """Attributes learnt inside a span (an outcome, an id made up on the way)."""
        if self._tracer is None:
            return
        span = trace.get_current_span()
        if span.is_recording():
            span.set_attributes({f"semantest.{k}": v for k, v in attributes.items()
                                 if v is not None})

    def flush(self, timeout_ms: int = 2000) -> None:
        """Export what is buffered, waiting at most `timeout_ms` (at exit)."""
        if self.provider is not None:
            self.provider.force_flush(timeout_ms)


def create_tracing(service_name: str) -> Tracing:
    """The tracing `OTEL_*` asks for; off when `OTEL_TRACES_EXPORTER` is unset or `none`, or
    `OTEL_SDK_DISABLED=true`. Raises ValueError for an exporter or protocol the SDK refuses."""
    env = os.environ
    if not env.get("OTEL_TRACES_EXPORTER") or env.get("OTEL_SDK_DISABLED", "").lower() == "true":
        return Tracing()
    try:  # the SDK's own reading of OTEL_TRACES_EXPORTER and OTEL_EXPORTER_OTLP_*PROTOCOL
        names = sdk_configuration._get_exporter_names("traces")
        exporters, _, _ = sdk_configuration._import_exporters(names, [], [])
    except RuntimeError as exc:
        raise ValueError(f"OTEL_TRACES_EXPORTER / OTEL_EXPORTER_OTLP_PROTOCOL: {exc}") from None
    if not exporters:
        return Tracing()
    # The role's name unless OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES say otherwise.
    resource = Resource.create({SERVICE_NAME: service_name}).merge(OTELResourceDetector().detect())
    # The sampler comes from OTEL_TRACES_SAMPLER; no atexit hook (its export could hang the exit
    # on an unreachable collector): `flush` at cleanup is bounded.
    provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    for exporter in exporters.values():
        provider.add_span_processor(BatchSpanProcessor(exporter()))
    return Tracing(provider)
