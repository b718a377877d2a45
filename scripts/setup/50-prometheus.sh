#!/usr/bin/env bash
# A real Prometheus server for the canary-analysis tests (the Prometheus provider queries
# it over HTTP while it scrapes the serving simulator), and promtool from the same module
# version for the alert-rule tests (`promtool check rules`, `promtool test rules` on
# k8s/observability/). Built from its Go module; module v0.316.0 is Prometheus 3.x. Only the
# HTTP API is used, so the web UI assets (an npm build, not part of the module) are not needed.
set -euo pipefail
source "$ROOT/scripts/setup/lib.sh"
PROMETHEUS_MODULE_VERSION=v0.316.0
build_prometheus_cmd() {
  local cmd=$1 gobin; gobin=$(mktemp -d)
  echo "[setup] prometheus: building github.com/prometheus/prometheus/cmd/$cmd@$PROMETHEUS_MODULE_VERSION (a few minutes the first time)"
  GOBIN="$gobin" GOFLAGS=-mod=mod CGO_ENABLED=0 go install \
    -ldflags "-X github.com/prometheus/common/version.Version=$PROMETHEUS_MODULE_VERSION" \
    "github.com/prometheus/prometheus/cmd/$cmd@$PROMETHEUS_MODULE_VERSION"
  mv "$gobin/$cmd" "$OUT"; rm -rf "$gobin"
}
build_prometheus() { build_prometheus_cmd prometheus; }
build_promtool() { build_prometheus_cmd promtool; }
cached_tool prometheus "$PROMETHEUS_MODULE_VERSION" build_prometheus
echo "[setup] prometheus: $("$TOOLS/bin/prometheus" --version 2>&1 | head -1)"
cached_tool promtool "$PROMETHEUS_MODULE_VERSION" build_promtool
echo "[setup] prometheus: $("$TOOLS/bin/promtool" --version 2>&1 | head -1)"
