"""The three entrypoints end to end with their GPU/hub step replaced by a stand-in (no torch,
no network): inputs read from the store and verified, outputs uploaded with a manifest, a
schema-valid result written (or a non-zero exit with the reason in the log)."""

import json
from pathlib import Path

from qwenops_jobs import download, evaluate, quantize, results, store
from qwenops_jobs.evaluate import Generation
from conftest import make_model_dir


def fake_quantizer(calls):
    def run(source: Path, target: Path, settings):
        calls.append((source, settings))
        # A quantized checkpoint is smaller than the original.
        (target / "config.json").write_text(json.dumps({"architectures": ["QWenLMHeadModel"], "quantization_config": {"quant_method": "compressed-tensors"}}))
        (target / "model.safetensors").write_bytes(b"q" * 1000)
        return {"name": "llmcompressor", "version": "test"}

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
    assert (source / "modeling_qwen.py").exists()  # the verified download

    result = store.read_json(result_uri)
    results.validate_result(result)
    assert result["outputUri"] == output.as_uri()
    assert result["originalSizeBytes"] > result["sizeBytes"] > 0
    # Remote code is carried next to the quantized weights (trust_remote_code).
    paths = {f["path"] for f in result["files"]}
    assert {"config.json", "model.safetensors", "modeling_qwen.py", "qwen.tiktoken"} <= paths
    manifest = json.loads((output / store.MANIFEST_NAME).read_text())
    assert manifest["metadata"]["quantization"] == {"method": "awq", "bits": 4, "groupSize": 128, "zeroPoint": True}
    # Structured logs, one JSON object per line.
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line["msg"] == "quantized model written" for line in lines)


def test_quantize_job_fails_with_the_reason_when_the_input_is_incomplete(tmp_path, capsys):
    code = quantize.main(
        ["--input-uri", (tmp_path / "nothing").as_uri(), "--output-uri", (tmp_path / "out").as_uri(),
         "--result-uri", (tmp_path / "r.json").as_uri(), "--work-dir", str(tmp_path / "work")],
        quantizer=fake_quantizer([]),
    )
    assert code == 1
    assert "has no qwenops-manifest.json" in capsys.readouterr().out
    assert not (tmp_path / "r.json").exists()


def test_awq_settings_for_qwen_v1_and_others():
    settings = quantize.AwqSettings(bits=4, group_size=128, zero_point=True, kernel="GEMM", calibration_samples=128, max_seq_length=512)
    kwargs = quantize.awq_modifier_kwargs(settings, "QWenLMHeadModel")
    weights = kwargs["config_groups"]["group_0"]["weights"]
    assert weights == {"num_bits": 4, "type": "int", "symmetric": False, "strategy": "group", "group_size": 128}
    assert kwargs["ignore"] == ["lm_head"]
    assert kwargs["mappings"][0] == ("re:.*ln_1$", ["re:.*attn.c_attn$"])
    assert "mappings" not in quantize.awq_modifier_kwargs(settings, "Qwen2ForCausalLM")
    assert len(quantize.calibration_texts(128)) == 128


class FakeGenerator:
    """Answers like a model would: the candidate gets one multiple-choice item wrong."""

    def __init__(self, model_dir: Path):
        self.candidate = model_dir.name == "candidate"
        self.calls = 0

    def generate(self, prompts, max_new_tokens):
        answers = []
        for prompt in prompts:
            self.calls += 1
            if "中国的首都" in prompt:
                answers.append("A" if self.candidate else "B")
            elif "选项字母" in prompt:
                answers.append("答案是 C")
            else:
                answers.append("存款 期限 利息 密码 重置 您 备份 丢失 恢复 不知道")
        return Generation(texts=answers, generated_tokens=8 * len(prompts), seconds=0.01 if self.candidate else 0.02)

    def peak_memory_gb(self):
        return 5.4 if self.candidate else 14.2

    def close(self):
        pass


def test_evaluate_job_writes_the_quality_gate_metrics(s3_env, tmp_path):
    model = make_model_dir(tmp_path / "model")
    store.upload_dir(model, "s3://qwenops/models/m/original", {})
    store.upload_dir(model, "s3://qwenops/models/m/awq", {})
    code = evaluate.main(
        ["--baseline-uri", "s3://qwenops/models/m/original", "--candidate-uri", "s3://qwenops/models/m/awq",
         "--samples", "200", "--gpu-type", "A10", "--result-uri", "s3://qwenops/runs/r/evaluate/result.json",
         "--work-dir", str(tmp_path / "work"), "--batch-size", "5"],
        generator_factory=FakeGenerator,
    )
    assert code == 0
    result = store.read_json("s3://qwenops/runs/r/evaluate/result.json")
    results.validate_result(result)
    assert result["samples"] == 24  # the built-in set has 24 items; asking for more uses all
    baseline, candidate = result["baseline"], result["candidate"]
    assert (baseline["memoryGb"], candidate["memoryGb"]) == (14.2, 5.4)
    assert candidate["tokensPerSecond"] == 2 * baseline["tokensPerSecond"]
    assert candidate["taskScores"]["ceval"] < baseline["taskScores"]["ceval"]
    assert candidate["qualityScore"] < baseline["qualityScore"]


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
