"""Argument types, structured logging and error exits shared by the entrypoints."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from typing import Any

URI_SCHEMES = ("s3://", "file://")
DEVICES = ("cuda", "cpu")
DEVICE_ENV = "QWENOPS_JOB_DEVICE"
PROGRESS_PREFIX = "QWENOPS_PROGRESS "
EXIT_FAILED = 1  # anything a retry may fix, or an unexpected error
EXIT_BAD_INPUT = 2  # bad arguments or inputs: a retry cannot fix it (argparse uses 2 as well)

# Progress bars of transformers/datasets/llm-compressor are noise in a pod log.
os.environ.setdefault("TQDM_DISABLE", "1")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def quiet_progress_bars() -> None:
    """transformers passes its own tqdm flag, which TQDM_DISABLE does not reach."""
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    except Exception:  # noqa: BLE001 - cosmetic only
        pass


class JobError(Exception):
    """A failure the Job reports and exits 1 on (the message ends up in the pod log)."""


class JobInputError(JobError):
    """Bad input that a retry cannot fix (a model without tokenizer, a set too small, ...):
    the Job exits 2."""


def uri(value: str) -> str:
    if not value.startswith(URI_SCHEMES) or len(value.split("://", 1)[1]) == 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be an s3://bucket/key or file:///path URI")
    if ".." in value.split("://", 1)[1].split("/"):
        raise argparse.ArgumentTypeError(f"{value!r} must not contain '..' segments")
    return value


def positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be > 0")
    return number


def boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise argparse.ArgumentTypeError(f"{value!r} must be true or false")


def non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 0")
    return number


def default_device() -> str:
    """--device default: $QWENOPS_JOB_DEVICE (the sandbox sets cpu), else cuda (the GPU Jobs)."""
    value = os.environ.get(DEVICE_ENV, "").strip().lower()
    return value if value in DEVICES else "cuda"


def model_load_dtype(device: str):
    """The dtype a model is loaded in for measuring: its own ("auto") on a GPU or on a CPU that
    computes bf16 natively (AVX512-BF16/AMX); float32 on other CPUs, where oneDNN emulates
    bf16 about 60x slower than fp32. Upcasting bf16 weights to fp32 loses nothing: perplexity
    and accuracy measure the same weights, a little more precisely."""
    if device != "cpu":
        return "auto"
    import torch

    return "auto" if torch.ops.mkldnn._is_mkldnn_bf16_supported() else torch.float32


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--result-uri", type=uri, required=True, help="where the result JSON is written")
    parser.add_argument("--work-dir", default="/work", help="scratch directory (an emptyDir in the Job)")
    parser.add_argument("--log-format", choices=("json", "text"), default="text")
    return parser


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    env = os.environ.get(DEVICE_ENV)
    if env is not None and env.strip().lower() not in DEVICES:
        parser.error(f"${DEVICE_ENV}={env!r} must be one of {', '.join(DEVICES)}")
    parser.add_argument("--device", choices=DEVICES, default=default_device(), help=f"default: ${DEVICE_ENV}, else cuda")


def progress(percent: int, message: str) -> None:
    """One machine-readable progress line on stdout (the sandbox shows the last one)."""
    print(PROGRESS_PREFIX + json.dumps({"percent": max(0, min(100, int(percent))), "message": message}, ensure_ascii=False), flush=True)


class _JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)),
            "level": record.levelname.lower(),
            "job": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(name: str, fmt: str) -> logging.Logger:
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_JsonFormatter() if fmt == "json" else logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


def log(logger: logging.Logger, message: str, **fields: Any) -> None:
    logger.info(message, extra={"fields": fields})


def peak_rss_gb() -> float:
    """Peak resident set size of this process so far (Linux: ru_maxrss is in KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run(logger: logging.Logger, body) -> int:
    """Runs a Job body: 0 on success, 2 on a JobInputError (a retry cannot fix it), 1 on any
    other JobError or exception; the reason is logged either way."""
    try:
        body()
        return 0
    except JobInputError as err:
        logger.error(str(err), extra={"fields": {"exitCode": EXIT_BAD_INPUT, "reason": "bad-input"}})
        return EXIT_BAD_INPUT
    except JobError as err:
        logger.error(str(err), extra={"fields": {"exitCode": EXIT_FAILED}})
        return EXIT_FAILED
    except Exception:  # noqa: BLE001 - the pod log must show whatever went wrong
        logger.exception("job failed", extra={"fields": {"exitCode": EXIT_FAILED}})
        return EXIT_FAILED
