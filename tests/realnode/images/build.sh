#!/usr/bin/env bash
# build.sh: the images of the real node, built with buildah from Debian packages: no Docker
# engine and no container registry (`make image` runs this).
#
#   base   localhost/semantest-python:3.11-<key>  mmdebstrap bookworm (minbase) + Python 3.11,
#          pip, venv and the host's CA bundle (TLS to PyPI may be re-signed by a proxy here, so
#          the build trusts what the host trusts). Stands in for python:3.11-slim-bookworm.
#   pause  localhost/semantest-pause:<key>         pause.c, compiled static: the pod sandbox
#   redis  localhost/semantest-redis:<key>         the base + Debian's redis-server
#   hub    localhost/semantest-hub:<key>           the project's Dockerfile, with
#          --build-arg PYTHON_IMAGE=<base>; also tagged localhost/semantest-hub:dev
#
# Each <key> hashes what the image is made of (recipe, inputs, the image it builds on), so a
# step whose image exists is skipped. buildah keeps the images in /var/lib/containers; each is
# also saved as a docker-archive (for `ctr images import`) in
#   ${SEMANTEST_CACHE:-~/.cache/semantest}/realnode-images/
# and the last line of stdout is the path of images.json there: {"hub": NAME, ...,
# "archives": {NAME: TAR}}. Progress goes to stderr. Needs root (buildah's rootful storage).
# Also skaffold's custom builder (profile `buildah`): with IMAGE and BUILD_CONTEXT set it tags
# the hub as IMAGE, and pushes it when PUSH_IMAGE=true.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
CACHE=${SEMANTEST_CACHE:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/semantest}/realnode-images
export CONTAINERS_CONF="$HERE/containers.conf"

SUITE=bookworm
MIRRORS=("deb http://deb.debian.org/debian $SUITE main"
         "deb http://deb.debian.org/debian $SUITE-updates main"
         "deb http://deb.debian.org/debian-security $SUITE-security main")
BASE_PACKAGES=python3.11,python3-pip,python3-venv,python-is-python3,passwd,ca-certificates
HOST_CA=/etc/ssl/certs/ca-certificates.crt

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] ERROR: %s\n' "$*" >&2; exit 1; }
key() { sha256sum | cut -c1-12; }
have() { buildah inspect --type image "$1" >/dev/null 2>&1; }

[ "$(id -u)" = 0 ] || die "needs root (buildah's image store in /var/lib/containers)"
for tool in buildah mmdebstrap gcc; do
  command -v "$tool" >/dev/null || die "$tool is missing: run make realnode-deps"
done
mkdir -p "$CACHE/archives"
exec 9>"$CACHE/.lock"
flock 9

# timed NAME COMMAND...: run and log how long it took
timed() {
  local name=$1 start=$SECONDS; shift
  "$@"
  log "$name: built in $(( SECONDS - start )) s"
}

# from_rootfs IMAGE TAR: an image of one layer, a root filesystem tarball
from_rootfs() {
  local c
  c=$(buildah from scratch)
  buildah add --quiet "$c" "$2" / >/dev/null
  buildah config --env LANG=C.UTF-8 --cmd python3 "$c"
  buildah commit --quiet --rm --format docker "$c" "$1" >/dev/null
}

build_base() {
  local tmp
  tmp=$(mktemp -d "$CACHE/rootfs.XXXXXX")
  mmdebstrap --quiet --variant=minbase --include="$BASE_PACKAGES" \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook="upload $HOST_CA /etc/ssl/certs/ca-certificates.crt" \
    "$SUITE" "$tmp/rootfs.tar" "${MIRRORS[@]}" >&2
  from_rootfs "$BASE" "$tmp/rootfs.tar"
  rm -rf "$tmp"
}

build_pause() {
  local tmp c
  tmp=$(mktemp -d "$CACHE/pause.XXXXXX")
  gcc -static -O2 -Wall -Wextra -Werror -s -o "$tmp/pause" "$HERE/pause.c"
  c=$(buildah from scratch)
  buildah copy --quiet "$c" "$tmp/pause" /pause >/dev/null
  buildah config --entrypoint '["/pause"]' --user 65535:65535 "$c"
  buildah commit --quiet --rm --format docker "$c" "$PAUSE" >/dev/null
  rm -rf "$tmp"
}

build_redis() {
  local c
  c=$(buildah from --pull=never "$BASE")
  buildah run --network host "$c" -- sh -c 'apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server \
    && rm -rf /var/lib/apt/lists/*' >&2
  buildah config --cmd '["redis-server"]' --port 6379 "$c"
  buildah commit --quiet --rm --format docker "$c" "$REDIS" >/dev/null
}

build_hub() {
  # --format docker keeps the Dockerfile's HEALTHCHECK (OCI has no such field); --network host
  # lets pip reach PyPI; --layers reuses unchanged steps.
  buildah bud --quiet --format docker --layers --network host --pull=never \
    --build-arg "PYTHON_IMAGE=$BASE" -t "$HUB" -t localhost/semantest-hub:dev \
    -f "$REPO/Dockerfile" "$REPO" >&2
}

# ensure NAME IMAGE BUILDER: build unless present; then keep a docker-archive of it
ensure() {
  local name=$1 image=$2 builder=$3 tar
  if have "$image"; then
    log "$name: $image (cached)"
  else
    log "$name: building $image"
    timed "$name" "$builder"
  fi
  tar="$CACHE/archives/$(echo "$image" | tr '/:' '__').tar"
  if [ ! -s "$tar" ]; then
    buildah push --quiet "$image" "docker-archive:$tar.tmp:$image" >&2
    mv "$tar.tmp" "$tar"
  fi
  ARCHIVES+=("$image=$tar")
}

# The build context is the Dockerfile's allow-list (.dockerignore): hash exactly those files.
context_key() {
  (cd "$REPO" && find pyproject.toml README.md services operator Dockerfile .dockerignore \
     -type f ! -path '*/__pycache__/*' ! -name '*.py[cod]' ! -path '*.egg-info/*' -print0 \
   | LC_ALL=C sort -z | xargs -0 sha256sum)
}

ARCHIVES=()
start=$SECONDS
BASE="localhost/semantest-python:3.11-$( { declare -f build_base from_rootfs; echo "$SUITE ${MIRRORS[*]} $BASE_PACKAGES"; cat "$HOST_CA"; } | key)"
PAUSE="localhost/semantest-pause:$( { declare -f build_pause; cat "$HERE/pause.c"; } | key)"
REDIS="localhost/semantest-redis:$( { declare -f build_redis; echo "$BASE"; } | key)"
HUB="localhost/semantest-hub:$( { declare -f build_hub; echo "$BASE"; context_key; } | key)"
ensure base "$BASE" build_base
ensure pause "$PAUSE" build_pause
ensure redis "$REDIS" build_redis
ensure hub "$HUB" build_hub

# skaffold's custom-build contract (the `buildah` profile of skaffold.yaml): it sets IMAGE and
# BUILD_CONTEXT, and PUSH_IMAGE=true when the cluster pulls from a registry.
if [ -n "${BUILD_CONTEXT:-}" ] && [ -n "${IMAGE:-}" ]; then
  buildah tag "$HUB" "$IMAGE"
  [ "${PUSH_IMAGE:-false}" != true ] || buildah push --quiet "$IMAGE" >&2
  log "tagged $IMAGE for skaffold (push: ${PUSH_IMAGE:-false})"
fi

# Only the current archives stay.
keep=$(printf '%s\n' "${ARCHIVES[@]#*=}")
for f in "$CACHE"/archives/*.tar; do
  grep -qxF "$f" <<<"$keep" || rm -f "$f"
done
python3 - "$CACHE/images.json" "$BASE" "$PAUSE" "$REDIS" "$HUB" "${ARCHIVES[@]}" <<'PY'
import json, sys
out, base, pause, redis, hub, *archives = sys.argv[1:]
doc = {"base": base, "pause": pause, "redis": redis, "hub": hub,
       "archives": dict(a.split("=", 1) for a in archives)}
with open(out, "w") as f:
    json.dump(doc, f, indent=2)
PY
log "ready in $(( SECONDS - start )) s"
echo "$CACHE/images.json"
