#!/usr/bin/env bash
# `make bench` entry point: installs what the benchmark needs (Node packages pinned by
# bench/package-lock.json, py-spy into the project venv), then runs bench/run.mjs with the
# arguments given, e.g. `bash bench/bench.sh --profile soak`, `--py-spy`, `--quick` (the smoke
# profile, under a minute) or `--baseline HEAD` (before/after of the working tree's services/).
# Paths given as arguments are relative to the directory this is run from.
set -euo pipefail
BENCH="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$BENCH/../.venv/bin/python" ]; then
  echo "bench: .venv is missing; run 'make run' or 'make test' once to create it" >&2
  exit 1
fi
if [ ! -f "$BENCH/node_modules/.package-lock.json" ] \
  || [ "$BENCH/package-lock.json" -nt "$BENCH/node_modules/.package-lock.json" ]; then
  (cd "$BENCH" && npm ci --no-audit --no-fund --silent)
fi
"$BENCH/../.venv/bin/python" -m pip install -q -r "$BENCH/requirements.txt"
exec node "$BENCH/run.mjs" "$@"
