"""The command lines the Job templates run: what each entrypoint accepts and what it refuses
(with a message naming the flag), before any work starts."""

import pytest

from qwenops_jobs import download, evaluate, quantize

QUANTIZE_OK = [
    "--input-uri", "s3://qwenops/models/qwen/Qwen-7B-Chat/master/original",
    "--output-uri", "s3://qwenops/models/qwen/Qwen-7B-Chat/master/awq-w4-g128/run",
    "--bits", "4", "--group-size", "128", "--zero-point", "true", "--kernel", "GEMM",
    "--calibration-samples", "128", "--result-uri", "s3://qwenops/runs/x/quantize/result.json",
    "--log-format", "json",
]


def test_quantize_accepts_the_worker_command_line(monkeypatch):
    monkeypatch.delenv("QWENOPS_JOB_DEVICE", raising=False)
    args = quantize.parse_args(QUANTIZE_OK)
    assert (args.bits, args.group_size, args.zero_point, args.kernel, args.calibration_samples) == (4, 128, True, "GEMM", 128)
    assert (args.method, args.max_seq_length, args.device) == ("awq", 256, "cuda")
    assert args.result_uri == "s3://qwenops/runs/x/quantize/result.json"
    assert args.log_format == "json"


def test_device_defaults_to_the_environment_then_cuda(monkeypatch, capsys):
    monkeypatch.setenv("QWENOPS_JOB_DEVICE", "cpu")
    assert quantize.parse_args(QUANTIZE_OK).device == "cpu"
    assert quantize.parse_args(QUANTIZE_OK + ["--device", "cuda"]).device == "cuda"
    monkeypatch.delenv("QWENOPS_JOB_DEVICE")
    assert quantize.parse_args(QUANTIZE_OK).device == "cuda"
    monkeypatch.setenv("QWENOPS_JOB_DEVICE", "tpu")
    with pytest.raises(SystemExit) as exit_info:
        quantize.parse_args(QUANTIZE_OK)
    assert exit_info.value.code == 2
    assert "QWENOPS_JOB_DEVICE" in capsys.readouterr().err


def test_rtn_takes_2_4_or_8_bits_and_awq_only_4(capsys):
    for bits in ("2", "4", "8"):
        args = quantize.parse_args(QUANTIZE_OK + ["--method", "rtn", "--bits", bits])
        assert (args.method, args.bits) == ("rtn", int(bits))
    with pytest.raises(SystemExit) as exit_info:
        quantize.parse_args(QUANTIZE_OK + ["--method", "awq", "--bits", "2"])
    assert exit_info.value.code == 2
    assert "--method awq supports 4 bits" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        quantize.parse_args(QUANTIZE_OK + ["--method", "gptq"])
    assert "--method: invalid choice" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--bits", "3", "--bits: invalid choice"),
        ("--group-size", "100", "--group-size: invalid choice"),
        ("--zero-point", "maybe", "must be true or false"),
        ("--calibration-samples", "0", "must be > 0"),
        ("--kernel", "MARLIN", "--kernel: invalid choice"),
        ("--input-uri", "http://example.com/model", "must be an s3://bucket/key or file:///path URI"),
        ("--output-uri", "s3://qwenops/../etc", "must not contain '..' segments"),
    ],
)
def test_quantize_refuses_bad_arguments_naming_the_flag(flag, value, message, capsys):
    argv = list(QUANTIZE_OK)
    argv[argv.index(flag) + 1] = value
    with pytest.raises(SystemExit) as exit_info:
        quantize.parse_args(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert flag in err and message in err


def test_result_uri_is_required(capsys):
    argv = QUANTIZE_OK[: QUANTIZE_OK.index("--result-uri")] + ["--log-format", "json"]
    with pytest.raises(SystemExit):
        quantize.parse_args(argv)
    assert "--result-uri" in capsys.readouterr().err


EVALUATE_OK = ["--baseline-uri", "s3://b/original", "--candidate-uri", "s3://b/awq", "--samples", "200", "--result-uri", "s3://b/r.json"]


def test_evaluate_and_download_command_lines(capsys, monkeypatch):
    monkeypatch.delenv("QWENOPS_JOB_DEVICE", raising=False)
    args = evaluate.parse_args(EVALUATE_OK + ["--gpu-type", "A10"])
    assert (args.samples, args.min_samples, args.gpu_type, args.eval_set, args.device) == (200, 0, "A10", "builtin-zh", "cuda")
    args = evaluate.parse_args(EVALUATE_OK + ["--min-samples", "150", "--device", "cpu", "--eval-set", "file:///sets/mc.jsonl"])
    assert (args.min_samples, args.gpu_type, args.device, args.eval_set) == (150, None, "cpu", "file:///sets/mc.jsonl")
    args = download.parse_args(["--model", "qwen/Qwen-7B-Chat", "--output-uri", "file:///tmp/m", "--result-uri", "file:///tmp/r.json"])
    assert (args.model, args.revision) == ("qwen/Qwen-7B-Chat", "master")
    with pytest.raises(SystemExit):
        download.parse_args(["--model", "../etc/passwd", "--output-uri", "file:///tmp/m", "--result-uri", "file:///tmp/r.json"])
    assert "--model" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--min-samples", "-1"], "must be >= 0"),
        (["--eval-set", "http://example.com/set.jsonl"], "--eval-set"),
        (["--device", "tpu"], "--device: invalid choice"),
        (["--gpu-type", " "], "--gpu-type must not be empty"),
    ],
)
def test_evaluate_refuses_bad_arguments(extra, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        evaluate.parse_args(EVALUATE_OK + extra)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
