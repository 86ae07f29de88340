#!/usr/bin/env bash
# repin.sh: regenerate the wrapper modules' go.mod/go.sum for another release.
#
#   bash tests/k8s/controlplane/repin.sh v1.37.2 [v3.6.16]
#
# kube/: requires k8s.io/kubernetes@VERSION and replaces every staging module (those k/k's own
# go.mod replaces with ./staging/...) by its published v0.X.Y. etcd/: requires
# go.etcd.io/etcd/server/v3@ETCD_VERSION (unchanged when not given). Then `go mod tidy`.
# Afterwards add the release's publication time (printed below) to K8S_BUILD_DATE in testenv.sh
# and commit go.mod/go.sum; the next `make testenv` rebuilds into a new cache folder.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
K8S=${1:?usage: repin.sh vX.Y.Z [etcd vA.B.C]}
ETCD=${2:-}
STAGING="v0.${K8S#v1.}"
GO=$(command -v go || echo /usr/local/go/bin/go)
export GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN=local

info=$("$GO" mod download -json "k8s.io/kubernetes@$K8S")
gomod=$(echo "$info" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p')
echo "k8s.io/kubernetes $K8S published: $(sed -n 's/.*"Time":"\([^"]*\)".*/\1/p' \
  "${gomod%.mod}.info")"

cd "$HERE/kube"
goversion=$(sed -n 's/^go \(.*\)$/\1/p' "$gomod")
{
  echo "module semantest.local/tests/k8s/controlplane/kube"
  echo
  echo "go $goversion"
  grep '^godebug ' "$gomod" | sed 's/^/\n/' || true
} >go.mod
rm -f go.sum
for m in $(sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$gomod" | sort -u); do
  "$GO" mod edit -replace="$m=$m@$STAGING"
done
"$GO" mod edit -require="k8s.io/kubernetes@$K8S"
"$GO" mod tidy
echo "kube/go.mod: $(grep -c '=> k8s.io/' go.mod) staging replaces at $STAGING"

if [ -n "$ETCD" ]; then
  cd "$HERE/etcd"
  "$GO" get "go.etcd.io/etcd/server/v3@$ETCD"
  "$GO" mod tidy
  echo "etcd/go.mod: go.etcd.io/etcd/server/v3 $ETCD"
fi
