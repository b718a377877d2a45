#!/usr/bin/env bash
# npm packages, exactly as locked. Skipped when node_modules matches the lock file.
set -euo pipefail
cd "$ROOT"
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
stamp=node_modules/.qwenops-lock-sha256
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$lock_sum" ]; then
  echo "[setup] node: node_modules up to date ($(node --version), npm $(npm --version))"
  exit 0
fi
npm ci --no-audit --no-fund --loglevel=error
echo "$lock_sum" > "$stamp"
echo "[setup] node: $(node --version), npm $(npm --version), $(ls node_modules | wc -l) packages"
