"""Fixtures: a real MinIO server (the one `make setup` builds into .tools/bin/minio) on a
free loopback port, one per test session, and a local file:// store in a temp dir."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

JOBS_DIR = Path(__file__).resolve().parent.parent
REPO_ROOT = JOBS_DIR.parent
sys.path.insert(0, str(JOBS_DIR))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def minio_server(tmp_path_factory):
    binary = REPO_ROOT / ".tools" / "bin" / "minio"
    if not binary.exists():
        pytest.fail(f"MinIO is not installed at {binary}: run 'make setup' (scripts/setup.sh test) first")
    port, console = _free_port(), _free_port()
    data = tmp_path_factory.mktemp("minio")
    env = {**os.environ, "MINIO_ROOT_USER": "qwenops", "MINIO_ROOT_PASSWORD": "qwenops-secret", "MINIO_BROWSER": "off"}
    proc = subprocess.Popen(
        [str(binary), "server", str(data), "--address", f"127.0.0.1:{port}", "--console-address", f"127.0.0.1:{console}", "--quiet"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    from minio import Minio

    client = Minio(f"127.0.0.1:{port}", access_key="qwenops", secret_key="qwenops-secret", secure=False)
    deadline = time.monotonic() + 60
    while True:
        try:
            client.list_buckets()
            break
        except Exception:
            if proc.poll() is not None or time.monotonic() > deadline:
                output = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                proc.kill()
                pytest.fail(f"MinIO did not start on 127.0.0.1:{port}:\n{output[-2000:]}")
            time.sleep(0.2)
    client.make_bucket("qwenops")
    yield {"client": client, "endpoint": f"http://127.0.0.1:{port}", "bucket": "qwenops"}
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
def s3_env(minio_server, monkeypatch):
    """The environment the worker gives a Job for an s3:// store."""
    monkeypatch.setenv("QWENOPS_S3_ENDPOINT", minio_server["endpoint"])
    monkeypatch.setenv("QWENOPS_S3_ACCESS_KEY", "qwenops")
    monkeypatch.setenv("QWENOPS_S3_SECRET_KEY", "qwenops-secret")
    monkeypatch.setenv("QWENOPS_S3_REGION", "us-east-1")
    return minio_server


def make_model_dir(root: Path, architecture: str = "QWenLMHeadModel", shards: int = 2) -> Path:
    """A small stand-in for a downloaded model: config, tokenizer, remote code, weight shards."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text(f'{{"architectures": ["{architecture}"], "model_type": "qwen"}}')
    (root / "modeling_qwen.py").write_text("# remote code\n")
    (root / "qwen.tiktoken").write_text("token list\n")
    for i in range(shards):
        (root / f"model-0000{i + 1}-of-0000{shards}.safetensors").write_bytes(bytes([i]) * (4096 + i))
    (root / "sub").mkdir(exist_ok=True)
    (root / "sub" / "notes.txt").write_text("nested file\n")
    return root
