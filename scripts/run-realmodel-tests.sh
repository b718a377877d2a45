#!/usr/bin/env bash
# The realmodel tier: the Python Job entrypoints on the tiny model (pytest, jobs/tests_realmodel)
# then the pipelines on the sandbox's vllm engine (vitest project realmodel). Prints one
# headline for both: realmodel_tests=<passed>/<total>.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
status=0
echo "[test] realmodel: pytest jobs/tests_realmodel (quantize and evaluate on the tiny model)"
(cd jobs && ../.tools/jobs-model-venv/bin/python -m pytest -q tests_realmodel --junitxml="$out/pytest.xml") || status=1
echo "[test] realmodel: vitest (promoteModel on vLLM for CPU)"
QWENOPS_REALMODEL_COUNTS="$out/vitest.json" npx vitest run --project realmodel || status=1
python3 - "$out" <<'PY'
import json, sys, xml.etree.ElementTree as ET
from pathlib import Path
out = Path(sys.argv[1])
passed = total = 0
if (out / "pytest.xml").exists():
    for suite in ET.parse(out / "pytest.xml").getroot().iter("testsuite"):
        n = int(suite.get("tests", 0))
        bad = sum(int(suite.get(k, 0)) for k in ("failures", "errors", "skipped"))
        total += n
        passed += n - bad
if (out / "vitest.json").exists():
    counts = json.loads((out / "vitest.json").read_text())
    passed += counts["passed"]
    total += counts["total"]
print(f"realmodel_tests={passed}/{total}")
PY
exit $status
