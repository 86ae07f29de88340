#!/usr/bin/env bash
# run.sh (`make jaeger`): Jaeger all-in-one and the all-in-one hub exporting every trace to it.
#   Jaeger query API / UI   http://localhost:16686  (e.g. /api/traces?service=semantest-server)
#   OTLP in                 :4317 (gRPC), :4318 (HTTP)
#   the hub                 http://localhost:3000, DEBUG=semantest:* unless DEBUG is set
# Any OTEL_* or hub variable set by the caller wins (PORT for the hub, JAEGER_QUERY_PORT,
# JAEGER_OTLP_HTTP_PORT, JAEGER_OTLP_GRPC_PORT, JAEGER_QUERY_GRPC_PORT for Jaeger). Ctrl-C stops both.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
JAEGER=$(bash "$HERE/jaeger.sh" | tail -1)
"$JAEGER" --config "$HERE/config.yaml" &
jaeger_pid=$!
trap 'kill "$jaeger_pid" 2>/dev/null; wait "$jaeger_pid" 2>/dev/null' EXIT
export OTEL_TRACES_EXPORTER=${OTEL_TRACES_EXPORTER:-otlp}
export OTEL_EXPORTER_OTLP_PROTOCOL=${OTEL_EXPORTER_OTLP_PROTOCOL:-http/protobuf}
export OTEL_EXPORTER_OTLP_ENDPOINT=${OTEL_EXPORTER_OTLP_ENDPOINT:-http://127.0.0.1:${JAEGER_OTLP_HTTP_PORT:-4318}}
export DEBUG=${DEBUG:-semantest:*}
echo "Jaeger: http://localhost:${JAEGER_QUERY_PORT:-16686}  (traces of service semantest-server)"
"$REPO/.venv/bin/semantest-server" "$@"
