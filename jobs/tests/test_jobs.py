"""The three entrypoints end to end with their torch/hub step replaced by a stand-in (no torch,
no network): inputs read from the store and verified, outputs uploaded with a manifest, a
schema-valid result written, or exit 2 (bad input a retry cannot fix) / 1 with the reason in
the log. The real thing runs in tests_realmodel/."""

import json
from pathlib import Path

import pytest

from qwenops_jobs import download, evaluate, quantize, results, store
from qwenops_jobs.common import JobError, JobInputError
from conftest import make_model_dir


def fake_quantizer(calls, bits=4, group_size=128):
    def run(source: Path, target: Path, settings):
        calls.append((source, settings))
        # A quantized checkpoint is smaller than the original.
        quantization_config = {
            "quant_method": "compressed-tensors",
            "format": "pack-quantized",
            "config_groups": {"group_0": {"targets": ["Linear"], "weights": {"num_bits": bits, "group_size": group_size}}},
        }
        (target / "config.json").write_text(json.dumps({"architectures": ["QWenLMHeadModel"], "quantization_config": quantization_config}))
        (target / "model.safetensors").write_bytes(b"q" * 1000)
        return {"tool": {"name": "llmcompressor", "version": "test"}, "peakMemoryGb": 1.5, "calibration": {"samples": settings.calibration_samples, "maxSeqLength": settings.max_seq_length}}

    return run


def test_quantize_job_on_the_file_store(tmp_path, capsys):
    original = tmp_path / "store" / "models" / "m" / "original"
    store.upload_dir(make_model_dir(tmp_path / "model"), original.as_uri(), {"model": "qwen/m"})
    output = tmp_path / "store" / "models" / "m" / "awq-w4-g128" / "run-1"
    result_uri = (tmp_path / "store" / "runs" / "r" / "quantize" / "result.json").as_uri()
    calls = []
    code = quantize.main(
        ["--input-uri", original.as_uri(), "--output-uri", output.as_uri(), "--group-size", "128",
         "--calibration-samples", "16", "--result-uri", result_uri, "--work-dir", str(tmp_path / "work"), "--log-format", "json"],
        quantizer=fake_quantizer(calls),
    )
    assert code == 0, capsys.readouterr().out
    (source, settings), = calls
    assert (settings.bits, settings.group_size, settings.zero_point, settings.calibration_samples) == (4, 128, True, 16)
    assert (settings.method, settings.device) == ("awq", "cuda")
    assert (source / "modeling_qwen.py").exists()  # the verified download

    result = store.read_json(result_uri)
    results.validate_result(result)
    assert result["outputUri"] == output.as_uri()
    assert (result["method"], result["device"], result["peakMemoryGb"], result["simulated"]) == ("awq", "cuda", 1.5, False)
    assert result["calibration"] == {"samples": 16, "maxSeqLength": 256}
    assert result["originalSizeBytes"] > result["sizeBytes"] > 0
    # Remote code is carried next to the quantized weights (trust_remote_code).
    paths = {f["path"] for f in result["files"]}
    assert {"config.json", "model.safetensors", "modeling_qwen.py", "qwen.tiktoken"} <= paths
    manifest = json.loads((output / store.MANIFEST_NAME).read_text())
    assert manifest["metadata"]["quantization"] == {"method": "awq", "bits": 4, "groupSize": 128, "zeroPoint": True}
    # Structured logs, one JSON object per line.
    out = capsys.readouterr().out
    lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "quantized model written" for line in lines)
    # Progress lines for the sandbox, the last one at 100 %.
    progress = [json.loads(line.split(" ", 1)[1]) for line in out.splitlines() if line.startswith("QWENOPS_PROGRESS ")]
    assert progress[-1] == {"percent": 100, "message": "done"}
    assert [p["percent"] for p in progress] == sorted(p["percent"] for p in progress)


def test_quantize_job_fails_with_the_reason_when_the_input_is_incomplete(tmp_path, capsys):
    code = quantize.main(
        ["--input-uri", (tmp_path / "nothing").as_uri(), "--output-uri", (tmp_path / "out").as_uri(),
         "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work")],
        quantizer=fake_quantizer([]),
    )
    assert code == 1
    assert "has no qwenops-manifest.json" in capsys.readouterr().out
    assert not (tmp_path / "r.json").exists()


def quantize_argv(tmp_path, original, *extra):
    return ["--input-uri", original.as_uri(), "--output-uri", (tmp_path / "store" / "out").as_uri(),
            "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work"), *extra]


def test_rtn_two_bit_job(tmp_path):
    original = tmp_path / "store" / "original"
    store.upload_dir(make_model_dir(tmp_path / "model"), original.as_uri(), {})
    calls = []
    code = quantize.main(quantize_argv(tmp_path, original, "--method", "rtn", "--bits", "2", "--device", "cpu"), quantizer=fake_quantizer(calls, bits=2))
    assert code == 0
    result = store.read_json((tmp_path / "r.json").as_uri())
    assert (result["method"], result["bits"], result["device"]) == ("rtn", 2, "cpu")
    assert calls[0][1].scheme_name == "W2A16_ASYM"


def test_quantize_refuses_a_saved_config_that_is_not_what_was_asked(tmp_path, capsys):
    original = tmp_path / "store" / "original"
    store.upload_dir(make_model_dir(tmp_path / "model"), original.as_uri(), {})
    code = quantize.main(quantize_argv(tmp_path, original, "--group-size", "64"), quantizer=fake_quantizer([], group_size=128))
    assert code == 1
    assert "does not match int4 g64" in capsys.readouterr().out
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: (d / "qwen.tiktoken").unlink(), "has no tokenizer"),
        (lambda d: (d / "config.json").unlink(), "has no config.json"),
        (lambda d: (d / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"], "hidden_size": 256, "intermediate_size": 500, "num_attention_heads": 4}'),
         "intermediate_size=500 is not divisible by --group-size 128"),
        (lambda d: (d / "config.json").write_text('{"architectures": ["Qwen2ForCausalLM"], "hidden_size": 320, "intermediate_size": 512, "num_attention_heads": 5}'),
         "hidden_size=320 is not divisible by --group-size 128"),
    ],
)
def test_quantize_bad_input_exits_2_naming_the_problem(tmp_path, capsys, change, message):
    model = make_model_dir(tmp_path / "model")
    change(model)
    original = tmp_path / "store" / "original"
    store.upload_dir(model, original.as_uri(), {})
    calls = []
    code = quantize.main(quantize_argv(tmp_path, original), quantizer=fake_quantizer(calls))
    assert code == 2
    assert message in capsys.readouterr().out
    assert calls == []  # refused before any work
    assert not (tmp_path / "r.json").exists()


def test_quantize_exit_codes_of_the_quantizer(tmp_path, capsys):
    original = tmp_path / "store" / "original"
    store.upload_dir(make_model_dir(tmp_path / "model"), original.as_uri(), {})

    def refuses(source, target, settings):
        raise JobInputError("layer model.layers.0.mlp.down_proj: in_features=500 is not divisible by --group-size 128")

    def breaks(source, target, settings):
        raise RuntimeError("CUDA out of memory")

    assert quantize.main(quantize_argv(tmp_path, original), quantizer=refuses) == 2
    assert quantize.main(quantize_argv(tmp_path, original), quantizer=breaks) == 1
    out = capsys.readouterr().out
    assert "in_features=500" in out and "CUDA out of memory" in out


def test_recipe_for_qwen_v1_and_others():
    settings = quantize.QuantSettings(bits=4, group_size=128, zero_point=True, kernel="GEMM", calibration_samples=128, max_seq_length=256)
    spec = quantize.recipe_spec(settings, "QWenLMHeadModel")
    group = spec["quantization"]["config_groups"]["group_0"]
    assert group["weights"] == {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 128, "dynamic": False}
    assert spec["quantization"]["ignore"] == ["lm_head"] and group["targets"] == ["Linear"]
    assert spec["awq"]["duo_scaling"] is True
    assert spec["awq"]["mappings"][0] == ("re:.*ln_1$", ["re:.*attn.c_attn$"])
    assert "mappings" not in quantize.recipe_spec(settings, "Qwen2ForCausalLM")["awq"]
    assert settings.scheme_name == "W4A16_ASYM"
    rtn = quantize.QuantSettings(bits=2, group_size=64, zero_point=False, kernel="GEMM", calibration_samples=1, max_seq_length=8, method="rtn", device="cpu")
    spec = quantize.recipe_spec(rtn, "Qwen2ForCausalLM")
    assert spec["awq"] is None and not rtn.uses_calibration
    assert spec["quantization"]["config_groups"]["group_0"]["weights"]["num_bits"] == 2 and rtn.scheme_name == "W2A16"


def test_calibration_text_is_training_text_only():
    texts = quantize.calibration_texts(64)
    assert len(texts) == 64
    heldout = [json.loads(line)["text"] for line in (Path(quantize.__file__).parent / "data" / "heldout_zh.jsonl").read_text().splitlines()]
    mc = [json.loads(line)["prompt"] for line in (Path(quantize.__file__).parent / "data" / "mc_zh.jsonl").read_text().splitlines()]
    joined = "\n".join(texts)
    assert not any(h in joined for h in heldout)
    assert not any(q[2:-3] in joined for q in mc)  # the question between "问：" and "\n答："


def _answers():
    _, mc, _, _ = evaluate.load_sets(evaluate.BUILTIN_EVAL_SET)
    return {item.prompt: item.answer_index for item in mc}


class FakeMeasurer:
    """Measures like a model would: per-item NLLs and choice log-likelihoods; the candidate
    has a 5 % higher NLL per token and gets every tenth question wrong."""

    def __init__(self):
        self.answers = _answers()
        self.requests = []

    def __call__(self, request):
        self.requests.append(request)
        candidate = request.label == "candidate"
        tokens = [len(text) for text in request.heldout]
        nll = [t * (2.1 if candidate else 2.0) for t in tokens]
        logliks = []
        for i, prompt in enumerate(request.mc_prompts):
            right = self.answers.get(prompt, 0)
            pick = (right + 1) % 4 if candidate and i % 10 == 0 else right
            logliks.append([-1.0 if j == pick else -5.0 for j in range(4)])
        seconds = 0.5 if candidate else 1.0
        return {
            "heldout": {"nll": nll, "tokens": tokens},
            "mc": {"logliks": logliks},
            "generation": {"prompts": len(request.generation_prompts), "tokens": 64 * len(request.generation_prompts), "seconds": seconds, "batchSize": request.batch_size},
            "peakMemoryGb": 5.4 if candidate else 14.2,
            "memoryKind": "gpu-allocated",
            "deviceName": "NVIDIA A10",
            "tool": {"name": "transformers", "version": "test"},
        }


def evaluate_argv(tmp_path, *extra):
    return ["--baseline-uri", "s3://qwenops/models/m/original", "--candidate-uri", "s3://qwenops/models/m/awq",
            "--result-uri", "s3://qwenops/runs/r/evaluate/result.json", "--work-dir", str(tmp_path / "work"), *extra]


def test_evaluate_job_writes_the_quality_gate_metrics(s3_env, tmp_path, capsys):
    model = make_model_dir(tmp_path / "model")
    store.upload_dir(model, "s3://qwenops/models/m/original", {})
    store.upload_dir(model, "s3://qwenops/models/m/awq", {})
    measurer = FakeMeasurer()
    code = evaluate.main(evaluate_argv(tmp_path, "--samples", "200", "--min-samples", "200", "--batch-size", "5", "--gpu-type", "A10"), measurer=measurer)
    assert code == 0, capsys.readouterr().out
    result = store.read_json("s3://qwenops/runs/r/evaluate/result.json")
    results.validate_result(result)
    assert result["samples"] == 200 and result["gpuType"] == "A10" and result["device"] == "cuda"
    assert [len(r.heldout) for r in measurer.requests] == [200, 200] and [len(r.mc_prompts) for r in measurer.requests] == [200, 200]
    assert measurer.requests[0].heldout == measurer.requests[1].heldout  # the same items for both models
    baseline, candidate = result["baseline"], result["candidate"]
    assert (baseline["memoryGb"], candidate["memoryGb"]) == (14.2, 5.4)
    assert candidate["tokensPerSecond"] == 2 * baseline["tokensPerSecond"]
    assert baseline["accuracy"]["value"] == 1.0 and candidate["accuracy"]["value"] == 0.9
    assert baseline["taskScores"] == {"mc-zh": 1.0} and candidate["qualityScore"] == 0.9
    assert candidate["accuracy"]["low"] < 0.9 < candidate["accuracy"]["high"]
    assert baseline["perplexity"]["value"] == pytest.approx(2.718281828**2.0, rel=1e-4)
    assert result["qualityDelta"]["metric"] == "accuracy"
    assert result["qualityDelta"]["estimatePct"] == pytest.approx(10.0)
    assert result["qualityDelta"]["lowPct"] < 10.0 < result["qualityDelta"]["highPct"]
    assert result["perplexityDelta"]["estimatePct"] == pytest.approx((2.718281828**0.1 - 1) * 100, rel=1e-4)
    assert result["tool"] == {"name": "transformers", "version": "test"}


def test_evaluate_refuses_a_set_smaller_than_needed(s3_env, tmp_path, capsys):
    measurer = FakeMeasurer()
    # The built-in held-out set has fewer than 1000 passages.
    assert evaluate.main(evaluate_argv(tmp_path, "--samples", "1000"), measurer=measurer) == 2
    out = capsys.readouterr().out
    assert "evaluation set heldout_zh has" in out and "but 1000 are needed" in out
    assert evaluate.main(evaluate_argv(tmp_path, "--samples", "50", "--min-samples", "999"), measurer=measurer) == 2
    assert "but 999 are needed (--samples 50, --min-samples 999)" in capsys.readouterr().out
    # A URI set of 3 questions.
    small = tmp_path / "small.jsonl"
    small.write_text("".join(json.dumps({"id": i, "prompt": f"问题{i}", "choices": ["甲", "乙", "丙", "丁"], "answer": "A"}, ensure_ascii=False) + "\n" for i in range(3)))
    assert evaluate.main(evaluate_argv(tmp_path, "--samples", "5", "--eval-set", small.as_uri()), measurer=measurer) == 2
    assert f"evaluation set {small.as_uri()} has 3 items, but 5 are needed" in capsys.readouterr().out
    assert measurer.requests == []


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("not json", "line 2: not JSON"),
        ('{"id": "x", "prompt": "?", "choices": ["a", "b", "c"], "answer": "A"}', "line 2: 'choices' must be a list of 4"),
        ('{"id": "x", "prompt": "?", "choices": ["a", "b", "c", "d"], "answer": "E"}', "line 2: 'answer' must be one of A, B, C, D"),
        ('{"id": "x", "task": "dialogue-zh", "prompt": "?", "keywords": [["a"]]}', "line 2: task 'dialogue-zh' is not multiple choice"),
        ('{"id": "a", "prompt": "?", "choices": ["a", "b", "c", "d"], "answer": "A"}', "line 2: duplicate id 'a'"),
        ('{"id": "x", "prompt": "", "choices": ["a", "b", "c", "d"], "answer": "A"}', "line 2: 'prompt' must be a non-empty string"),
    ],
)
def test_a_malformed_eval_set_line_is_named(tmp_path, capsys, line, message):
    path = tmp_path / "set.jsonl"
    path.write_text('{"id": "a", "prompt": "?", "choices": ["a", "b", "c", "d"], "answer": "A"}\n' + line + "\n")
    assert evaluate.main(evaluate_argv(tmp_path, "--samples", "1", "--eval-set", path.as_uri()), measurer=FakeMeasurer()) == 2
    assert message in capsys.readouterr().out


def test_a_uri_set_replaces_the_multiple_choice_part(tmp_path, capsys):
    model = make_model_dir(tmp_path / "model")
    for name in ("original", "awq"):
        store.upload_dir(model, (tmp_path / "store" / name).as_uri(), {})
    path = tmp_path / "set.jsonl"
    path.write_text("".join(json.dumps({"id": i, "task": "ceval", "prompt": f"问题{i}？", "choices": ["甲", "乙", "丙", "丁"], "answer": "B"}, ensure_ascii=False) + "\n" for i in range(30)))
    measurer = FakeMeasurer()
    argv = ["--baseline-uri", (tmp_path / "store" / "original").as_uri(), "--candidate-uri", (tmp_path / "store" / "awq").as_uri(),
            "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work"), "--samples", "30",
            "--eval-set", path.as_uri(), "--device", "cpu"]
    assert evaluate.main(argv, measurer=measurer) == 0, capsys.readouterr().out
    assert measurer.requests[0].mc_prompts[0] == "问：问题0？\n答："  # a bare question is asked in the Q/A format
    result = json.loads((tmp_path / "r.json").read_text())
    assert result["evalSet"] == path.as_uri() and result["device"] == "cpu"
    assert set(result["baseline"]["taskScores"]) == {"ceval"}


@pytest.mark.parametrize(
    ("change", "code", "message"),
    [
        (lambda d: (d / "qwen.tiktoken").unlink(), 2, "has no tokenizer"),
        (lambda d: (d / "config.json").unlink(), 2, "has no config.json"),
    ],
)
def test_evaluate_refuses_a_model_without_tokenizer_or_config(tmp_path, capsys, change, code, message):
    good = make_model_dir(tmp_path / "good")
    bad = make_model_dir(tmp_path / "bad")
    change(bad)
    store.upload_dir(good, (tmp_path / "store" / "original").as_uri(), {})
    store.upload_dir(bad, (tmp_path / "store" / "awq").as_uri(), {})
    measurer = FakeMeasurer()
    argv = ["--baseline-uri", (tmp_path / "store" / "original").as_uri(), "--candidate-uri", (tmp_path / "store" / "awq").as_uri(),
            "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work"), "--samples", "10"]
    assert evaluate.main(argv, measurer=measurer) == code
    assert message in capsys.readouterr().out
    assert not (tmp_path / "r.json").exists()


def test_evaluate_exit_codes_of_the_measurement(tmp_path, capsys):
    model = make_model_dir(tmp_path / "model")
    for name in ("original", "awq"):
        store.upload_dir(model, (tmp_path / "store" / name).as_uri(), {})
    argv = ["--baseline-uri", (tmp_path / "store" / "original").as_uri(), "--candidate-uri", (tmp_path / "store" / "awq").as_uri(),
            "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work"), "--samples", "10"]

    def refuses(request):
        raise JobInputError("baseline: the tokenizer does not load")

    def fails(request):
        raise JobError("baseline: the measurement process failed with exit code 1")

    assert evaluate.main(argv, measurer=refuses) == 2
    assert evaluate.main(argv, measurer=fails) == 1


def test_download_job_uploads_a_snapshot_with_its_manifest(tmp_path):
    def snapshot(model, revision, cache):
        assert (model, revision) == ("qwen/Qwen-7B-Chat", "v1.0.5")
        local = make_model_dir(cache / "qwen" / "Qwen-7B-Chat")
        (local / ".msc").write_text("modelscope marker")
        return local

    output = tmp_path / "store" / "models" / "qwen" / "Qwen-7B-Chat" / "v1.0.5" / "original"
    code = download.main(
        ["--model", "qwen/Qwen-7B-Chat", "--revision", "v1.0.5", "--output-uri", output.as_uri(),
         "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work")],
        snapshot=snapshot,
    )
    assert code == 0
    manifest = json.loads((output / store.MANIFEST_NAME).read_text())
    assert manifest["metadata"] == {"model": "qwen/Qwen-7B-Chat", "revision": "v1.0.5", "hub": "modelscope"}
    assert ".msc" not in {f["path"] for f in manifest["files"]}
    summary = json.loads((tmp_path / "r.json").read_text())
    assert summary["totalBytes"] == manifest["totalBytes"]
