"""Result documents: validated against the JSON Schemas generated from the TypeScript zod
schemas (jobs/schemas, scripts/generate-job-schemas.ts) before they are written, so a Job
never reports something the worker would refuse."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import store

SCHEMA_FILES = {
    "quantize": "quantize-result.schema.json",
    "evaluate": "evaluation-result.schema.json",
}


class ResultSchemaError(Exception):
    pass


def schemas_dir() -> Path:
    configured = os.environ.get("QWENOPS_JOB_SCHEMAS")
    return Path(configured) if configured else Path(__file__).resolve().parent.parent / "schemas"


@lru_cache(maxsize=None)
def load_schema(kind: str) -> dict[str, Any]:
    if kind not in SCHEMA_FILES:
        raise ResultSchemaError(f"no result schema for kind {kind!r}")
    return json.loads((schemas_dir() / SCHEMA_FILES[kind]).read_text())


def validate_result(result: dict[str, Any]) -> None:
    """Raises ResultSchemaError listing every violation as <json path>: <message>."""
    from jsonschema import Draft202012Validator

    kind = result.get("kind")
    validator = Draft202012Validator(load_schema(str(kind)))
    errors = sorted(validator.iter_errors(result), key=lambda e: list(e.absolute_path))
    if errors:
        details = "; ".join(f"{'.'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in errors)
        raise ResultSchemaError(f"{kind} result does not match {SCHEMA_FILES.get(str(kind))}: {details}")


def write_result(result_uri: str, result: dict[str, Any], *, s3_client: Any | None = None) -> None:
    validate_result(result)
    store.write_json(result_uri, result, s3_client=s3_client)
