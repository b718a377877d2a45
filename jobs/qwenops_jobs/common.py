"""Argument types, structured logging and error exits shared by the entrypoints."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any

URI_SCHEMES = ("s3://", "file://")


class JobError(Exception):
    """A failure the Job reports and exits non-zero on (the message ends up in the pod log)."""


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


def base_parser(prog: str, description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--result-uri", type=uri, required=True, help="where the result JSON is written")
    parser.add_argument("--work-dir", default="/work", help="scratch directory (an emptyDir in the Job)")
    parser.add_argument("--log-format", choices=("json", "text"), default="text")
    return parser


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


def run(logger: logging.Logger, body) -> int:
    """Runs a Job body; a JobError or any exception is logged and becomes exit code 1."""
    try:
        body()
        return 0
    except JobError as err:
        logger.error(str(err))
        return 1
    except Exception:  # noqa: BLE001 - the pod log must show whatever went wrong
        logger.exception("job failed")
        return 1
