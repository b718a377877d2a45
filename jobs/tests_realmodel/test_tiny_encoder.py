"""The random-weights bge-m3-architecture encoder (qwenops_jobs.tinymodel.encoder) served by
vLLM for CPU on /v1/embeddings with the pooling runner: what a knowledge worker's
OpenAI-compatible embedder talks to in production, here with a real server."""

from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from conftest import JOBS_DIR, REPO_ROOT

SERVE_PYTHON = REPO_ROOT / ".tools" / "serve-venv" / "bin" / "python"
MODEL_NAME = "bge-m3"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _post(url: str, body: dict) -> tuple[int, dict]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read() or b"{}")


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("encoder") / "model"
    env = {**os.environ, "PYTHONPATH": str(JOBS_DIR), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    run = subprocess.run(
        [str(SERVE_PYTHON), "-m", "qwenops_jobs.tinymodel.encoder", "--out", str(out)],
        cwd=JOBS_DIR, env=env, capture_output=True, text=True, timeout=300,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["hidden_size"] == 1024 and report["layers"] == 1
    return out


@pytest.fixture(scope="module")
def server(encoder_dir, tmp_path_factory) -> str:
    port = _free_port()
    cache = tmp_path_factory.mktemp("vllm-cache")
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "VLLM_NO_USAGE_STATS": "1",
        "DO_NOT_TRACK": "1",
        "VLLM_CPU_KVCACHE_SPACE": "1",
        "VLLM_CPU_OMP_THREADS_BIND": "nobind",
        "VLLM_CACHE_ROOT": str(cache),
    }
    log = (tmp_path_factory.mktemp("vllm-log") / "serve.log").open("w")
    process = subprocess.Popen(
        [
            str(SERVE_PYTHON), "-m", "vllm.entrypoints.openai.api_server",
            "--host", "127.0.0.1", "--port", str(port), "--model", str(encoder_dir),
            "--served-model-name", MODEL_NAME, "--runner", "pooling", "--dtype", "float32",
            "--max-model-len", "2048", "--enforce-eager",
        ],
        env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 400
        while True:
            assert process.poll() is None, Path(log.name).read_text()[-3000:]
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=5) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            assert time.monotonic() < deadline, "vLLM did not become healthy in 400 s"
            time.sleep(2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


def test_vllm_serves_the_encoder_with_bge_m3_shaped_vectors(server):
    texts = ["第1条：员工应当按照公司制度的要求办理请假手续。", "报销应当在30日内提交。", "第1条：员工应当按照公司制度的要求办理请假手续。"]
    status, body = _post(f"{server}/v1/embeddings", {"model": MODEL_NAME, "input": texts})
    assert status == 200, body
    data = sorted(body["data"], key=lambda d: d["index"])
    assert [d["index"] for d in data] == [0, 1, 2]
    vectors = [d["embedding"] for d in data]
    assert all(len(v) == 1024 for v in vectors)
    # Normalised (vLLM's embed pooler), deterministic for one text, different across texts.
    for v in vectors:
        assert math.isclose(math.sqrt(sum(x * x for x in v)), 1.0, rel_tol=1e-3)
    assert max(abs(a - b) for a, b in zip(vectors[0], vectors[2])) < 1e-4
    assert max(abs(a - b) for a, b in zip(vectors[0], vectors[1])) > 1e-3
    assert body["usage"]["prompt_tokens"] > 0


def test_vllm_refuses_an_input_over_the_context_length_naming_the_limit(server):
    status, body = _post(f"{server}/v1/embeddings", {"model": MODEL_NAME, "input": ["应当" * 3000]})
    assert status == 400, body
    assert "2048" in json.dumps(body)
