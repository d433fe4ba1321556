#!/usr/bin/env bash
# Build the local Kubernetes control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from Go modules into a cache outside the repository.
#
#   tools/kube/build.sh            build (or return at once when the cache is warm)
#   tools/kube/build.sh --print    print the binary directory and exit
#
# The cache key is a hash of versions.env and the three wrapper modules' go.mod/go.sum, so a
# version change builds into a fresh directory and a warm cache returns in well under a second.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"

key=$(cat "$here/versions.env" "$here"/*/go.mod "$here"/*/go.sum "$here/build.sh" | sha256sum | cut -c1-12)
root="${CANARYFLOW_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/canaryflow/kube}"
dir="$root/${KUBERNETES_VERSION}-etcd${ETCD_VERSION}-kwok${KWOK_VERSION}-${key}"
bins=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)

if [[ "${1:-}" == "--print" ]]; then echo "$dir"; exit 0; fi
if [[ -f "$dir/.complete" ]]; then echo "$dir"; exit 0; fi

export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="-mod=readonly -trimpath -buildvcs=false"
mkdir -p "$dir/bin.partial"
start=$(date +%s)
log() { echo "[kube-build $(( $(date +%s) - start ))s] $*" >&2; }

log "etcd ${ETCD_VERSION}"
( cd "$here/etcd" && go build -o "$dir/bin.partial/etcd" . )
log "kwok ${KWOK_VERSION}"
( cd "$here/kwok" && go build -o "$dir/bin.partial/kwok" sigs.k8s.io/kwok/cmd/kwok )
log "kubernetes ${KUBERNETES_VERSION} (apiserver, controller-manager, scheduler, kubectl)"
minor=${KUBERNETES_VERSION#v1.}; minor=${minor%%.*}
version_ldflags="-X k8s.io/component-base/version.gitVersion=${KUBERNETES_VERSION} \
 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor} \
 -X k8s.io/component-base/version.gitTreeState=clean \
 -X k8s.io/client-go/pkg/version.gitVersion=${KUBERNETES_VERSION} \
 -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"
( cd "$here/kubernetes" && go build -ldflags "$version_ldflags" -o "$dir/bin.partial/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl )

# kwok v0.8 has no built-in stages: assemble them from its module's kustomize/stage/.
stage_dir=$(cd "$here/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)/kustomize/stage
{
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
           pod/chaos/pod-container-running-failed.yaml; do
    echo "---"; cat "$stage_dir/$f"
  done
} > "$dir/bin.partial/stages.yaml"

for b in "${bins[@]}"; do [[ -x "$dir/bin.partial/$b" ]] || { log "missing $b"; exit 1; }; done
rm -rf "$dir/bin" && mv "$dir/bin.partial" "$dir/bin"
echo "$(( $(date +%s) - start ))" > "$dir/build-seconds"
touch "$dir/.complete"
log "done in $(( $(date +%s) - start ))s -> $dir/bin"
echo "$dir"
