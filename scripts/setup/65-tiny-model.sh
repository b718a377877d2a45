#!/usr/bin/env bash
# The tiny test model `qwenops/qwen2-tiny-zh` (jobs/qwenops_jobs/tinymodel): a Qwen2 with a
# byte-level BPE tokenizer, trained locally and deterministically on qwenops' bundled corpus
# with the serve venv's torch (60-model-venvs.sh runs first). NOT Qwen weights.
# Built once per set of inputs (corpus sources, the tinymodel package, the pinned versions:
# `input_hash` in qwenops_jobs/tinymodel/build.py) into the per-user cache, atomically (a temp
# directory renamed into place), and linked as .tools/tiny-model (model directory) and
# .tools/tiny-model-build.json (build report: losses, held-out perplexity, MC accuracy).
set -euo pipefail
python="$TOOLS/serve-venv/bin/python"
if [ ! -x "$python" ]; then
  echo "[setup] tiny-model: $python is missing: scripts/setup/60-model-venvs.sh builds it" >&2
  exit 1
fi
run_py() { (cd "$ROOT/jobs" && PYTHONPATH="$ROOT/jobs" HF_HUB_OFFLINE=1 TQDM_DISABLE=1 "$python" "$@"); }
key=$(run_py -c 'from qwenops_jobs.tinymodel.build import input_hash; print(input_hash()[:12])')
dir="$TOOLS_CACHE/tiny-model-$key"

if [ ! -f "$dir/model/model.safetensors" ] || [ ! -f "$dir/build.json" ]; then
  t0=$(date +%s)
  tmp="$TOOLS_CACHE/.tiny-model-$key.tmp-$$"
  rm -rf "$tmp"
  mkdir -p "$tmp"
  trap 'rm -rf "$tmp"' EXIT
  echo "[setup] tiny-model: building $dir (trains for about 3 minutes on 2 cores)"
  run_py -m qwenops_jobs.tinymodel.build --out "$tmp/model" --report "$tmp/build.json" 2>&1 \
    | grep --line-buffered -v -e '^\s*$' | sed -u 's/^\[tiny-model\] //; s/^/[setup] tiny-model: /'
  rm -rf "$dir"
  mv "$tmp" "$dir"
  trap - EXIT
  echo "[setup] tiny-model: built in $(( $(date +%s) - t0 ))s"
fi
ln -sfn "$dir/model" "$TOOLS/tiny-model"
ln -sfn "$dir/build.json" "$TOOLS/tiny-model-build.json"
summary=$("$python" - "$dir/build.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"held-out perplexity {r['heldout']['perplexity']:.2f} (random: 8192), multiple-choice accuracy "
      f"{r['mc']['accuracy']:.3f} (chance: 0.25), {r['parameters']:,} parameters, trained in {r['trainSeconds']:.0f}s")
PY
)
echo "[setup] tiny-model: $summary; .tools/tiny-model -> $dir/model"
