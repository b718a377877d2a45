#!/usr/bin/env bash
# A real MinIO server, built from its Go module (the version `@latest` resolved to when
# this was written; pinned so every machine tests against the same server).
set -euo pipefail
source "$ROOT/scripts/setup/lib.sh"
MINIO_VERSION=v0.0.0-20260212201848-7aac2a2c5b7c
build_minio() {
  local gobin; gobin=$(mktemp -d)
  echo "[setup] minio: building github.com/minio/minio@$MINIO_VERSION (a few minutes the first time)"
  GOBIN="$gobin" GOFLAGS=-mod=mod go install "github.com/minio/minio@$MINIO_VERSION"
  mv "$gobin/minio" "$OUT"; rm -rf "$gobin"
}
cached_tool minio "$MINIO_VERSION" build_minio
# A `go install` build reports "DEVELOPMENT.GOGET", so the pinned module version is printed too.
echo "[setup] minio: module $MINIO_VERSION, $("$TOOLS/bin/minio" --version 2>/dev/null | head -1)"
