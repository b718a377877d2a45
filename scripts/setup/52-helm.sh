#!/usr/bin/env bash
# helm, for the chart tests (charts/qwen-vllm-kservice: `helm lint`, `helm template`). Built
# from its Go module like the other tools and cached by version; several minutes the first
# time on two cores.
set -euo pipefail
source "$ROOT/scripts/setup/lib.sh"
HELM_MODULE_VERSION=v3.22.1
build_helm() {
  local gobin; gobin=$(mktemp -d)
  echo "[setup] helm: building helm.sh/helm/v3/cmd/helm@$HELM_MODULE_VERSION (several minutes the first time)"
  GOBIN="$gobin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install \
    -ldflags "-X helm.sh/helm/v3/internal/version.version=$HELM_MODULE_VERSION" \
    "helm.sh/helm/v3/cmd/helm@$HELM_MODULE_VERSION"
  mv "$gobin/helm" "$OUT"; rm -rf "$gobin"
}
cached_tool helm "$HELM_MODULE_VERSION" build_helm
echo "[setup] helm: $("$TOOLS/bin/helm" version --short 2>&1 | head -1)"
