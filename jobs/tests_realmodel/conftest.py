"""Fixtures of the real-model tests: the tiny Qwen2 model that scripts/setup/65-tiny-model.sh
builds (.tools/tiny-model), a file:// store in a temp dir holding it the way the pipelines do
(files + manifest), and the Job entrypoints run as the Jobs run them: `python -m ...` in a
subprocess, on CPU (QWENOPS_JOB_DEVICE=cpu), with real torch, transformers and llm-compressor.
Expensive results (the AWQ and RTN quantizations, the evaluations) are session-scoped.

    cd jobs && ../.tools/jobs-model-venv/bin/python -m pytest -q tests_realmodel
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

JOBS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = JOBS_DIR.parent
sys.path.insert(0, str(JOBS_DIR))

from qwenops_jobs import store  # noqa: E402

TINY_MODEL = REPO_ROOT / ".tools" / "tiny-model"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt")


@dataclass
class JobRun:
    code: int
    output: str
    seconds: float
    result: dict | None

    def progress(self) -> list[dict]:
        return [json.loads(line.split(" ", 1)[1]) for line in self.output.splitlines() if line.startswith("QWENOPS_PROGRESS ")]


def run_job(module: str, args: list[str], result_path: Path | None = None, timeout: int = 400) -> JobRun:
    env = {
        **os.environ,
        "QWENOPS_JOB_DEVICE": "cpu",
        "TQDM_DISABLE": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONPATH": str(JOBS_DIR),
    }
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", module, *args], cwd=JOBS_DIR, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    seconds = time.monotonic() - started
    result = json.loads(result_path.read_text()) if result_path is not None and result_path.exists() else None
    return JobRun(completed.returncode, completed.stdout + completed.stderr, seconds, result)


@pytest.fixture(scope="session")
def tiny_model() -> Path:
    if not (TINY_MODEL / "config.json").exists():
        pytest.fail(
            f"the tiny model is missing at {TINY_MODEL}: build it with "
            "'ROOT=$PWD TOOLS=$PWD/.tools TOOLS_CACHE=$HOME/.cache/qwenops-tools bash scripts/setup/65-tiny-model.sh' "
            "(after scripts/setup/60-model-venvs.sh), or 'make setup'"
        )
    report = REPO_ROOT / ".tools" / "tiny-model-build.json"
    from qwenops_jobs.tinymodel.build import input_hash

    built_from = json.loads(report.read_text()).get("inputHash") if report.exists() else None
    if built_from != input_hash():
        pytest.fail(
            f"{TINY_MODEL} was built from other inputs than the current corpus/tinymodel sources "
            "(inputHash differs): rerun scripts/setup/65-tiny-model.sh"
        )
    return TINY_MODEL.resolve()


@pytest.fixture(scope="session")
def store_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("store")


@pytest.fixture(scope="session")
def original_uri(tiny_model, store_root) -> str:
    prefix = store_root / "models" / "qwenops" / "qwen2-tiny-zh" / "original"
    store.upload_dir(tiny_model, prefix.as_uri(), {"model": "qwenops/qwen2-tiny-zh", "hub": "local"})
    return prefix.as_uri()


def quantize(store_root: Path, tmp_path_factory, original_uri: str, name: str, *extra: str) -> tuple[JobRun, str]:
    output = (store_root / "models" / "qwenops" / "qwen2-tiny-zh" / name).as_uri()
    result = store_root / "runs" / name / "quantize.json"
    run = run_job(
        "qwenops_jobs.quantize",
        ["--input-uri", original_uri, "--output-uri", output, "--result-uri", result.as_uri(),
         "--work-dir", str(tmp_path_factory.mktemp(f"work-{name}")), "--log-format", "json", *extra],
        result,
    )
    return run, output


def evaluate(store_root: Path, tmp_path_factory, baseline: str, candidate: str, name: str, *extra: str) -> JobRun:
    result = store_root / "runs" / name / "evaluate.json"
    return run_job(
        "qwenops_jobs.evaluate",
        ["--baseline-uri", baseline, "--candidate-uri", candidate, "--result-uri", result.as_uri(),
         "--work-dir", str(tmp_path_factory.mktemp(f"work-{name}")), "--log-format", "json", *extra],
        result,
    )


@pytest.fixture(scope="session")
def awq(store_root, tmp_path_factory, original_uri):
    """AWQ W4A16_ASYM g128 of the tiny model (32 calibration sequences of 256 tokens)."""
    run, output = quantize(store_root, tmp_path_factory, original_uri, "awq-w4-g128",
                           "--method", "awq", "--bits", "4", "--group-size", "128", "--calibration-samples", "32", "--max-seq-length", "256")
    assert run.code == 0, run.output[-6000:]
    return run, output


@pytest.fixture(scope="session")
def rtn_w2(store_root, tmp_path_factory, original_uri):
    """The destructive recipe: 2-bit round-to-nearest, group 128."""
    run, output = quantize(store_root, tmp_path_factory, original_uri, "rtn-w2-g128", "--method", "rtn", "--bits", "2", "--group-size", "128")
    assert run.code == 0, run.output[-6000:]
    return run, output


@pytest.fixture(scope="session")
def eval_awq(store_root, tmp_path_factory, original_uri, awq):
    run = evaluate(store_root, tmp_path_factory, original_uri, awq[1], "eval-awq", "--samples", "200", "--min-samples", "200")
    assert run.code == 0, run.output[-6000:]
    return run


@pytest.fixture(scope="session")
def eval_rtn_w2(store_root, tmp_path_factory, original_uri, rtn_w2):
    run = evaluate(store_root, tmp_path_factory, original_uri, rtn_w2[1], "eval-rtn-w2", "--samples", "200")
    assert run.code == 0, run.output[-6000:]
    return run


def copy_model(source: Path, target: Path, *, drop: tuple[str, ...] = ()) -> Path:
    target.mkdir(parents=True)
    for path in source.iterdir():
        if path.is_file() and path.name not in drop:
            shutil.copy2(path, target / path.name)
    return target
