#!/usr/bin/env bash
# Runs every test tier in order, printing a line per phase and a summary with timings.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
tiers=(unit workflows replay integration e2e)
[ -d jobs/tests ] && tiers+=(python)
tiers+=(realmodel)
failed=()
summary=()
for tier in "${tiers[@]}"; do
  t0=$(date +%s)
  echo "[test] ${tier}: start"
  if make --no-print-directory "test-$tier"; then status=ok; else status=FAILED; failed+=("$tier"); fi
  secs=$(( $(date +%s) - t0 ))
  echo "[test] ${tier}: ${status} in ${secs}s"
  summary+=("${tier}=${status}(${secs}s)")
done
echo "[test] summary: ${summary[*]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "[test] failed tiers: ${failed[*]}" >&2
  exit 1
fi
