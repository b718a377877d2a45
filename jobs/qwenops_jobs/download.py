"""Download Job: a ModelScope snapshot into the object store, every file with its sha256 and
the manifest written last (a prefix without a manifest is incomplete and is never served).

    python -m qwenops_jobs.download --model qwen/Qwen-7B-Chat --revision master \\
        --output-uri s3://.../original --result-uri s3://.../result.json
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from . import store
from .common import JobError, base_parser, log, run, setup_logging, uri

MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,95}/[A-Za-z0-9][A-Za-z0-9_.-]{0,95}$")
REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")


def model_id(value: str) -> str:
    import argparse

    if not MODEL_ID.match(value) or ".." in value:
        raise argparse.ArgumentTypeError(f"{value!r} must be '<owner>/<name>' (e.g. qwen/Qwen-7B-Chat)")
    return value


def revision(value: str) -> str:
    import argparse

    if not REVISION.match(value) or ".." in value:
        raise argparse.ArgumentTypeError(f"{value!r} must be a branch, tag or commit")
    return value


def modelscope_snapshot(model: str, rev: str, cache_dir: Path) -> Path:
    from modelscope import snapshot_download  # lazy: only the real Job needs it

    return Path(snapshot_download(model, revision=rev, cache_dir=str(cache_dir)))


def parse_args(argv: list[str] | None):
    parser = base_parser("qwenops_jobs.download", "ModelScope snapshot -> object store")
    parser.add_argument("--model", type=model_id, required=True)
    parser.add_argument("--revision", type=revision, default="master")
    parser.add_argument("--output-uri", type=uri, required=True)
    return parser.parse_args(argv)


Snapshot = Callable[[str, str, Path], Path]


def main(argv: list[str] | None = None, *, snapshot: Snapshot | None = None, s3_client: Any = None) -> int:
    args = parse_args(argv)
    logger = setup_logging("download", args.log_format)
    fetch = snapshot or modelscope_snapshot

    def body() -> None:
        started = time.monotonic()
        cache = Path(args.work_dir) / "cache" / "modelscope"
        local = fetch(args.model, args.revision, cache)
        if not (local / "config.json").exists():
            raise JobError(f"{args.model}@{args.revision} has no config.json: not a transformers model")
        # ModelScope keeps lock files and a .msc marker next to the weights; they are not the model.
        for junk in list(local.glob(".msc")) + list(local.glob("*.lock")) + list(local.glob(".mdl")):
            junk.unlink() if junk.is_file() else shutil.rmtree(junk)
        files = store.upload_dir(local, args.output_uri, {"model": args.model, "revision": args.revision, "hub": "modelscope"}, s3_client=s3_client)
        summary = {
            "kind": "download",
            "model": args.model,
            "revision": args.revision,
            "outputUri": args.output_uri,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            "totalBytes": sum(f.size for f in files),
            "durationSeconds": round(time.monotonic() - started, 3),
        }
        store.write_json(args.result_uri, summary, s3_client=s3_client)
        log(logger, "model uploaded", files=len(files), totalBytes=summary["totalBytes"])

    return run(logger, body)


if __name__ == "__main__":
    raise SystemExit(main())
