#!/usr/bin/env bash
# Runs every test tier in order, printing a line per phase and a summary with timings.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
tiers=(unit workflows replay integration e2e)
[ -d jobs/tests ] && tiers+=(python)
tiers+=(realmodel)
failed=()
# Each tier's failed tests, printed again after the summary (test/support/failures-reporter.ts).
export QWENOPS_TEST_FAILURES_FILE="$ROOT/.tools/test-failures.txt"
rm -f "$QWENOPS_TEST_FAILURES_FILE"
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
  if [ -s "$QWENOPS_TEST_FAILURES_FILE" ]; then
    echo "[test] failed tests:" >&2
    sed 's/^/[test]   /' "$QWENOPS_TEST_FAILURES_FILE" >&2
  fi
  exit 1
fi
