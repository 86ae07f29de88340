#!/usr/bin/env bash
# jaeger.sh: build or find the Jaeger v2 all-in-one binary the observability tests run.
#
# Prints the binary's path as the LAST line of stdout (progress goes to stderr). Used by
# `make jaeger-bin`, `make jaeger` and tests/observability/conftest.py.
#
# The version is pinned in go.mod beside this file (a wrapper module: Jaeger's own go.mod has a
# replace directive, so `go install ...@version` is refused). The binary is cached outside the
# repo, keyed by version, and rebuilt only when go.mod/go.sum change:
#   ${SEMANTEST_CACHE:-$XDG_CACHE_HOME/semantest}/jaeger-<version>/bin/jaeger
#
# Environment:
#   SEMANTEST_JAEGER_BIN=PATH     a prebuilt jaeger (v2) binary: nothing is built
#   SEMANTEST_JAEGER_NO_BUILD=1   fail instead of building (used by the pytest fixture)
#   SEMANTEST_CACHE=DIR           cache root (default ~/.cache/semantest)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
log() { printf '[jaeger] %s\n' "$*" >&2; }
die() { printf '[jaeger] ERROR: %s\n' "$*" >&2; exit 1; }

if [ -n "${SEMANTEST_JAEGER_BIN:-}" ]; then
  [ -x "$SEMANTEST_JAEGER_BIN" ] || die "SEMANTEST_JAEGER_BIN=$SEMANTEST_JAEGER_BIN is not executable"
  echo "$SEMANTEST_JAEGER_BIN"
  exit 0
fi

VERSION=$(sed -n 's#^[[:space:]]*github.com/jaegertracing/jaeger \(v[0-9.]*\).*#\1#p' "$HERE/go.mod" | head -1)
[ -n "$VERSION" ] || die "cannot read the github.com/jaegertracing/jaeger version from $HERE/go.mod"
CACHE_ROOT=${SEMANTEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/semantest}
CACHE="$CACHE_ROOT/jaeger-$VERSION"
BIN="$CACHE/bin/jaeger"
STAMP="$CACHE/stamp"
LDFLAGS="-s -w"
mkdir -p "$CACHE/bin"

exec 9>"$CACHE/.lock"   # one build at a time per cache (the machine is shared)
flock -n 9 || { log "another build holds $CACHE/.lock; waiting for it"; flock 9; }

want="$VERSION $(cat "$HERE/go.mod" "$HERE/go.sum" | sha256sum | cut -c1-16) $LDFLAGS"
if [ -x "$BIN" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$want" ]; then
  log "jaeger $VERSION: cached"
  echo "$BIN"
  exit 0
fi
[ -z "${SEMANTEST_JAEGER_NO_BUILD:-}" ] || die "jaeger $VERSION is not built: run make jaeger-bin"

GO=$(command -v go || { [ -x /usr/local/go/bin/go ] && echo /usr/local/go/bin/go; }) \
  || die "no Go toolchain (need Go >= 1.24 on PATH or /usr/local/go/bin/go)"
logf="$CACHE/build.log"
log "building jaeger $VERSION -> $BIN (measured: 52 min on a busy 2-core machine with a cold Go cache; log: $logf)"
start=$SECONDS
tmp=$(mktemp -d "$CACHE/build.XXXXXX")
if ! (cd "$HERE" && GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-mod=mod -buildvcs=false" \
      "$GO" build -trimpath -ldflags "$LDFLAGS" -o "$tmp/jaeger" github.com/jaegertracing/jaeger/cmd/jaeger) \
      >"$logf" 2>&1; then
  tail -n 40 "$logf" >&2
  rm -rf "$tmp"
  die "building jaeger failed (full log: $logf)"
fi
mv -f "$tmp/jaeger" "$BIN"
rmdir "$tmp"
echo "$want" >"$STAMP"
log "built jaeger $VERSION in $(( SECONDS - start )) s"
# On one line, so that bash never reads past it (safe even if this file changes while running).
echo "$BIN"; exit 0
