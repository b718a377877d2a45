#!/usr/bin/env bash
# A real Kubernetes control plane for the k8s test tier (envtest style: no kubelet, no
# controllers), built from the registries' Go modules and cached per version:
#   kube-apiserver  k8s.io/kubernetes/cmd/kube-apiserver, from a scratch module that requires
#                   k8s.io/kubernetes and pins each k8s.io/* staging module to the matching v0.x
#   etcd            go.etcd.io/etcd/server/v3 (the release k8s.io/kubernetes itself requires)
#   kustomize       sigs.k8s.io/kustomize/kustomize/v5 (renders k8s/ overlays for the dry run)
# The first build of kube-apiserver takes a long time on two cores; after that the binary
# comes from the per-user cache ($TOOLS_CACHE) and this script takes a second.
set -euo pipefail
source "$ROOT/scripts/setup/lib.sh"
KUBE_VERSION=v1.36.3
ETCD_VERSION=v3.6.8
KUSTOMIZE_VERSION=v5.8.2

# Writes a scratch go.mod that requires $1@$2, with extra go.mod lines from stdin.
scratch_module() {
  local dir=$1 module=$2 version=$3
  mkdir -p "$dir"
  { echo "module qwenops.local/toolbuild"; echo; echo "go 1.26.0"; echo
    echo "require $module $version"; cat; } > "$dir/go.mod"
}

build_kube_apiserver() {
  local dir; dir=$(mktemp -d)
  local staging=${KUBE_VERSION/v1./v0.}
  echo "[setup] kube: resolving k8s.io/kubernetes@$KUBE_VERSION (staging modules pinned to $staging)"
  # k8s.io/kubernetes replaces its staging modules with ./staging paths; a dependent module
  # must pin them to the published releases instead. The list comes from its own go.mod.
  local mod; mod=$(cd "$dir" && GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" \
    | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')
  grep -E '^[[:space:]]+k8s\.io/[a-z0-9-]+ => \./staging/' "$mod" \
    | awk -v v="$staging" '{print "replace " $1 " => " $1 " " v}' \
    | scratch_module "$dir" k8s.io/kubernetes "$KUBE_VERSION"
  local minor=${KUBE_VERSION#v1.}; minor=${minor%%.*}
  local ldflags="-s -w"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X $pkg.gitVersion=$KUBE_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
    ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
  done
  echo "[setup] kube: go build k8s.io/kubernetes/cmd/kube-apiserver (20-40 min the first time on 2 cores)"
  (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -ldflags "$ldflags" -o "$OUT" k8s.io/kubernetes/cmd/kube-apiserver)
  rm -rf "$dir"
}

build_etcd() {
  local dir; dir=$(mktemp -d)
  echo "[setup] kube: go build go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  scratch_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" </dev/null
  (cd "$dir" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$OUT" go.etcd.io/etcd/server/v3)
  rm -rf "$dir"
}

build_kustomize() {
  local gobin; gobin=$(mktemp -d)
  echo "[setup] kube: go install sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  GOBIN="$gobin" GOFLAGS=-mod=mod go install -trimpath -ldflags "-s -w" "sigs.k8s.io/kustomize/kustomize/v5@$KUSTOMIZE_VERSION"
  mv "$gobin/kustomize" "$OUT"; rm -rf "$gobin"
}

cached_tool etcd "$ETCD_VERSION" build_etcd
cached_tool kustomize "$KUSTOMIZE_VERSION" build_kustomize
cached_tool kube-apiserver "$KUBE_VERSION" build_kube_apiserver
echo "[setup] kube: etcd $("$TOOLS/bin/etcd" --version | sed -n 's/^etcd Version: //p')"
echo "[setup] kube: kustomize $("$TOOLS/bin/kustomize" version)"
echo "[setup] kube: kube-apiserver $("$TOOLS/bin/kube-apiserver" --version | sed 's/^Kubernetes //')"
