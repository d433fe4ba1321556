#!/usr/bin/env bash
# Regenerate the three wrapper modules (etcd, kubernetes, kwok) for the versions in versions.env.
# Each lives in its own module so that their dependency versions never mix.
# The staging replaces for k8s.io/kubernetes are derived from its own go.mod (every `=> ./staging/` line),
# not written by hand.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
. "$here/versions.env"
export GOTOOLCHAIN=local GOFLAGS=-mod=mod

staging_version=v0${KUBERNETES_VERSION#v1}   # v1.36.3 -> v0.36.3

( cd "$here/etcd"
  rm -f go.mod go.sum
  go mod init canaryflow.dev/tools/kube/etcd >/dev/null 2>&1
  go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
  go mod tidy )

( cd "$here/kwok"
  rm -f go.mod go.sum
  go mod init canaryflow.dev/tools/kube/kwok >/dev/null 2>&1
  go get -tool "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}"
  go mod tidy )

( cd "$here/kubernetes"
  rm -f go.mod go.sum
  go mod init canaryflow.dev/tools/kube/kubernetes >/dev/null 2>&1
  modfile=$(go mod download -json "k8s.io/kubernetes@${KUBERNETES_VERSION}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["GoMod"])')
  sed -n 's#^[[:space:]]*\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$modfile" | while read -r mod; do
    go mod edit -replace "${mod}=${mod}@${staging_version}"
  done
  go mod edit -require "k8s.io/kubernetes@${KUBERNETES_VERSION}"
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go get -tool "k8s.io/kubernetes/cmd/${cmd}@${KUBERNETES_VERSION}"
  done
  go mod tidy )
echo "wrapper modules synced: kubernetes ${KUBERNETES_VERSION}, etcd ${ETCD_VERSION}, kwok ${KWOK_VERSION}"
