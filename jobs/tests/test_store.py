"""Object-store I/O, against a local directory and a real MinIO server: layout identical to
the TypeScript stores (manifest last, sha256 per object), verification on the way back."""

import json
from pathlib import Path

import pytest

from qwenops_jobs import store
from conftest import make_model_dir


def test_file_store_round_trip_with_manifest_and_sidecars(tmp_path):
    model = make_model_dir(tmp_path / "model")
    prefix = tmp_path / "store" / "models" / "qwen" / "m" / "original"
    files = store.upload_dir(model, prefix.as_uri(), {"model": "qwen/m"})
    assert sorted(f.path for f in files) == sorted(
        ["config.json", "modeling_qwen.py", "qwen.tiktoken", "model-00001-of-00002.safetensors",
         "model-00002-of-00002.safetensors", "sub/notes.txt"]
    )
    manifest = json.loads((prefix / store.MANIFEST_NAME).read_text())
    assert manifest["version"] == 1 and manifest["metadata"] == {"model": "qwen/m"}
    assert manifest["totalBytes"] == sum(f.size for f in files)
    # The sha256 sidecar FsArtifactStore reads for stat().
    config = next(f for f in files if f.path == "config.json")
    assert (prefix / f"config.json{store.SIDECAR_SUFFIX}").read_text() == config.sha256
    # No temp files left behind.
    assert not [p for p in prefix.rglob("*") if p.name.startswith(".qwenops-tmp-")]

    copy = tmp_path / "copy"
    back = store.download_prefix(prefix.as_uri(), copy)
    assert back["files"] == manifest["files"]
    assert (copy / "sub" / "notes.txt").read_text() == "nested file\n"


def test_a_prefix_without_manifest_or_with_a_corrupt_file_is_refused(tmp_path):
    model = make_model_dir(tmp_path / "model")
    prefix = tmp_path / "store" / "p"
    with pytest.raises(store.StoreError, match="has no qwenops-manifest.json"):
        store.download_prefix(prefix.as_uri(), tmp_path / "x")
    store.upload_dir(model, prefix.as_uri(), {})
    (prefix / "config.json").write_text('{"tampered": true}')
    with pytest.raises(store.StoreError, match="config.json: sha256 .* does not match the manifest"):
        store.download_prefix(prefix.as_uri(), tmp_path / "y")


def test_keys_that_escape_the_prefix_are_refused():
    assert store.key_problem("a/../b") is not None
    assert store.key_problem("/abs") is not None
    assert store.key_problem("a//b") is not None
    assert store.key_problem("models/qwen/config.json") is None
    with pytest.raises(store.StoreError):
        store.open_uri("s3://bucket/a/../b")
    with pytest.raises(store.StoreError):
        store.open_uri("gs://bucket/key")


def test_minio_round_trip(s3_env, tmp_path):
    client = s3_env["client"]
    model = make_model_dir(tmp_path / "model")
    files = store.upload_dir(model, "s3://qwenops/models/qwen/m/original", {"model": "qwen/m"})
    names = {o.object_name for o in client.list_objects("qwenops", prefix="models/qwen/m/original/", recursive=True)}
    assert names == {f"models/qwen/m/original/{f.path}" for f in files} | {"models/qwen/m/original/qwenops-manifest.json"}
    # The sha256 is object metadata, as the TypeScript MinIO store records it.
    stat = client.stat_object("qwenops", "models/qwen/m/original/config.json")
    config = next(f for f in files if f.path == "config.json")
    assert stat.metadata.get("x-amz-meta-sha256") == config.sha256
    # Temp keys are cleaned up.
    assert not list(client.list_objects("qwenops", prefix=store.TEMP_PREFIX, recursive=True))
    manifest = store.download_prefix("s3://qwenops/models/qwen/m/original", tmp_path / "back")
    assert len(manifest["files"]) == len(files)
    assert (tmp_path / "back" / "sub" / "notes.txt").read_text() == "nested file\n"

    store.write_json("s3://qwenops/runs/r/result.json", {"ok": True, "模型": "千问"})
    assert store.read_json("s3://qwenops/runs/r/result.json") == {"ok": True, "模型": "千问"}


def test_missing_s3_credentials_are_named(monkeypatch):
    for name in ("QWENOPS_S3_ENDPOINT", "QWENOPS_S3_ACCESS_KEY", "QWENOPS_S3_SECRET_KEY"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(store.StoreError, match="QWENOPS_S3_ENDPOINT, QWENOPS_S3_ACCESS_KEY, QWENOPS_S3_SECRET_KEY"):
        store.open_uri("s3://qwenops/x")
