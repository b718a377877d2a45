#!/usr/bin/env bash
# Installs what qwenops needs, idempotently, under the ignored .tools/ folder.
#   scripts/setup.sh demo   -> only what `make demo` needs (npm packages, Temporal CLI); with
#                             QWENOPS_ENGINE=vllm also the model venvs and the tiny model
#   scripts/setup.sh test   -> everything the test tiers and benchmarks start
# Built binaries are also kept in a per-user cache ($QWENOPS_TOOLS_CACHE, default
# ~/.cache/qwenops-tools) keyed by version, so a fresh clone does not rebuild them.
set -euo pipefail
profile=${1:-test}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
export ROOT
export TOOLS="$ROOT/.tools"
export TOOLS_CACHE="${QWENOPS_TOOLS_CACHE:-$HOME/.cache/qwenops-tools}"
mkdir -p "$TOOLS/bin" "$TOOLS_CACHE"

case "$profile" in
  demo) components=(node temporal)
        if [ "${QWENOPS_ENGINE:-simulator}" = vllm ]; then components+=(model-venvs tiny-model); fi ;;
  test) components=() ; for f in "$ROOT"/scripts/setup/[0-9][0-9]-*.sh; do n=$(basename "$f" .sh); components+=("${n#??-}"); done ;;
  *) echo "usage: $0 [demo|test]" >&2; exit 2 ;;
esac

start=$(date +%s)
for c in "${components[@]}"; do
  script=$(ls "$ROOT"/scripts/setup/[0-9][0-9]-"$c".sh 2>/dev/null | head -1)
  [ -n "$script" ] || { echo "[setup] no script for component '$c'" >&2; exit 1; }
  t0=$(date +%s)
  echo "[setup] $c: start"
  bash "$script"
  echo "[setup] $c: done in $(( $(date +%s) - t0 ))s"
done
echo "[setup] profile '$profile' ready in $(( $(date +%s) - start ))s"
