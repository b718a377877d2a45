#!/usr/bin/env bash
# A venv for the pytest suite of the Python Job entrypoints (jobs/): pytest, jsonschema and
# the MinIO client, pinned in jobs/requirements-test.txt. No torch: the entrypoints import
# their GPU libraries lazily. Reinstalled only when the requirements file changes.
set -euo pipefail
venv="$TOOLS/jobs-venv"
req="$ROOT/jobs/requirements-test.txt"
want=$(sha256sum "$req" | cut -d' ' -f1)
stamp="$venv/.qwenops-requirements"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  echo "$want" > "$stamp"
fi
echo "[setup] python-jobs: $("$venv/bin/python" --version), $("$venv/bin/python" -m pytest --version 2>&1 | head -1)"
