#!/usr/bin/env bash
# `make bench` entry point: installs what the benchmark needs (Node packages pinned by
# bench/package-lock.json, py-spy into the project venv), then runs bench/run.mjs with the
# arguments given, e.g. `bash bench/bench.sh --profile soak` or `--py-spy`.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x ../.venv/bin/python ]; then
  echo "bench: ../.venv is missing; run 'make run' or 'make test' once to create it" >&2
  exit 1
fi
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund --silent
fi
../.venv/bin/python -m pip install -q -r requirements.txt
exec node run.mjs "$@"
