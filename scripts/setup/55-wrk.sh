#!/usr/bin/env bash
# wrk, the HTTP benchmarking tool `make bench` compares the load generator against, from
# Debian's package. Linked into .tools/bin so every caller finds it in one place.
set -euo pipefail
system_wrk() { PATH=/usr/local/bin:/usr/bin:/bin command -v wrk || true; }
if [ -z "$(system_wrk)" ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "[setup] wrk: installing the Debian package"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends wrk >/dev/null
fi
ln -sf "$(system_wrk)" "$TOOLS/bin/wrk"
echo "[setup] wrk: $("$TOOLS/bin/wrk" --version 2>&1 | head -1)"
