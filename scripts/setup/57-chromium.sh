#!/usr/bin/env bash
# Chromium, the headless browser the Temporal UI check drives (test/integration/temporal/
# ui-codec.test.ts, through playwright-core, which never downloads browsers), from Debian's
# package. The real binary (not Debian's /usr/bin/chromium wrapper script) is linked into
# .tools/bin so every caller finds it in one place.
set -euo pipefail
system_chromium() {
  if [ -x /usr/lib/chromium/chromium ]; then echo /usr/lib/chromium/chromium; return; fi
  PATH=/usr/local/bin:/usr/bin:/bin command -v chromium || true
}
if [ -z "$(system_chromium)" ]; then
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  echo "[setup] chromium: installing the Debian package (a few minutes)"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends chromium >/dev/null
  echo "[setup] chromium: installed"
fi
ln -sf "$(system_chromium)" "$TOOLS/bin/chromium"
echo "[setup] chromium: $("$TOOLS/bin/chromium" --version 2>/dev/null | head -1)"
