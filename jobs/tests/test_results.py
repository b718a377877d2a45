"""Result documents are validated against the JSON Schemas generated from the TypeScript zod
schemas (jobs/schemas): what a Job writes is what the worker accepts."""

import copy

import pytest

from qwenops_jobs import results

SHA = "a" * 64

QUANTIZE = {
    "kind": "quantize",
    "simulated": False,
    "method": "awq",
    "bits": 4,
    "groupSize": 128,
    "zeroPoint": True,
    "kernel": "GEMM",
    "outputUri": "s3://qwenops/models/qwen/Qwen-7B-Chat/master/awq-w4-g128/run",
    "files": [{"path": "model.safetensors", "size": 10, "sha256": SHA}],
    "sizeBytes": 10,
    "originalSizeBytes": 30,
    "durationSeconds": 12.5,
    "tool": {"name": "llmcompressor", "version": "0.14.0.1"},
}

MEASUREMENT = {
    "modelUri": "s3://qwenops/models/m",
    "qualityScore": 0.8,
    "memoryGb": 9.6,
    "tokensPerSecond": 850.0,
    "taskScores": {"ceval": 0.7, "dialogue-zh": 0.9},
}

EVALUATE = {
    "kind": "evaluate",
    "simulated": False,
    "evalSet": "builtin-zh",
    "samples": 24,
    "gpuType": "A10",
    "baseline": MEASUREMENT,
    "candidate": {**MEASUREMENT, "memoryGb": 5.4},
    "durationSeconds": 100.0,
}


def test_schemas_are_the_generated_ones():
    for kind in ("quantize", "evaluate"):
        schema = results.load_schema(kind)
        assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
        assert "Generated from src/domain/job-results.ts" in schema["description"]


@pytest.mark.parametrize("document", [QUANTIZE, EVALUATE])
def test_valid_results_pass(document):
    results.validate_result(document)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda d: d.pop("outputUri"), "'outputUri' is a required property"),
        (lambda d: d["files"][0].update(sha256="XYZ"), "files.0.sha256"),
        (lambda d: d.update(bits=4.5), "bits"),
        (lambda d: d.update(method="gptq"), "method"),
    ],
)
def test_invalid_quantize_results_are_refused_naming_the_field(mutate, message):
    document = copy.deepcopy(QUANTIZE)
    mutate(document)
    with pytest.raises(results.ResultSchemaError, match=message):
        results.validate_result(document)


def test_invalid_evaluation_results_are_refused():
    document = copy.deepcopy(EVALUATE)
    document["candidate"]["qualityScore"] = 1.5
    document["baseline"]["taskScores"]["ceval"] = -0.1
    with pytest.raises(results.ResultSchemaError) as error:
        results.validate_result(document)
    assert "candidate.qualityScore" in str(error.value)
    assert "baseline.taskScores.ceval" in str(error.value)


def test_an_invalid_result_is_never_written(tmp_path):
    target = tmp_path / "result.json"
    with pytest.raises(results.ResultSchemaError):
        results.write_result(target.as_uri(), {**QUANTIZE, "bits": "four"})
    assert not target.exists()
    results.write_result(target.as_uri(), QUANTIZE)
    assert target.exists()
