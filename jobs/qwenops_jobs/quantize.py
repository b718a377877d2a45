"""Quantize Job: AWQ (activation-aware weight quantization) of a causal LM with llm-compressor,
the maintained implementation (vLLM project; AutoAWQ is archived and points to it).

    python -m qwenops_jobs.quantize --input-uri s3://.../original --output-uri s3://.../awq-w4-g128 \\
        --bits 4 --group-size 128 --zero-point true --kernel GEMM --calibration-samples 128 \\
        --result-uri s3://.../result.json

The output is a compressed-tensors checkpoint (config.json carries its quantization_config),
which vLLM detects by itself: serving passes no --quantization flag. Qwen (v1) keeps its
remote modeling code, copied next to the weights for --trust-remote-code.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from . import store
from .common import JobError, base_parser, boolean, log, positive_int, run, setup_logging, uri
from .results import write_result

SUPPORTED_BITS = (4,)
SUPPORTED_GROUP_SIZES = (32, 64, 128)


@dataclass(frozen=True)
class AwqSettings:
    bits: int
    group_size: int
    zero_point: bool
    kernel: str
    calibration_samples: int
    max_seq_length: int


def awq_modifier_kwargs(settings: AwqSettings, architecture: str | None) -> dict[str, Any]:
    """Arguments for llmcompressor's AWQModifier: int weights in groups, asymmetric when the
    zero point is on, lm_head kept in full precision; explicit smoothing mappings for
    architectures llm-compressor has no registry entry for (Qwen v1)."""
    kwargs: dict[str, Any] = {
        "ignore": ["lm_head"],
        "config_groups": {
            "group_0": {
                "targets": ["Linear"],
                "weights": {
                    "num_bits": settings.bits,
                    "type": "int",
                    "symmetric": not settings.zero_point,
                    "strategy": "group",
                    "group_size": settings.group_size,
                },
            }
        },
    }
    mappings = awq_mappings(architecture)
    if mappings is not None:
        kwargs["mappings"] = mappings
    return kwargs


def awq_mappings(architecture: str | None) -> list[tuple[str, list[str]]] | None:
    """(smooth layer, balanced layers) pairs as regexes, or None to let llm-compressor choose.
    Qwen v1 (QWenLMHeadModel) names its layers ln_1/c_attn, ln_2/w1/w2/c_proj."""
    if architecture == "QWenLMHeadModel":
        return [
            ("re:.*ln_1$", ["re:.*attn.c_attn$"]),
            ("re:.*ln_2$", ["re:.*mlp.w1$", "re:.*mlp.w2$"]),
            ("re:.*mlp.w1$", ["re:.*mlp.c_proj$"]),
        ]
    return None


def model_architecture(model_dir: Path) -> str | None:
    config = model_dir / "config.json"
    if not config.exists():
        raise JobError(f"{model_dir} has no config.json: not a transformers model")
    architectures = json.loads(config.read_text()).get("architectures") or []
    return architectures[0] if architectures else None


def calibration_texts(samples: int) -> list[str]:
    """Chinese and English calibration text from the built-in evaluation prompts, cycled."""
    lines = resources.files("qwenops_jobs").joinpath("data/eval_zh.jsonl").read_text(encoding="utf-8").splitlines()
    base = [json.loads(line)["prompt"] for line in lines if line.strip()]
    base += [
        "Large language models are served with continuous batching and paged attention.",
        "Quantization stores weights in fewer bits while activations stay in half precision.",
    ]
    return [base[i % len(base)] for i in range(samples)]


def llmcompressor_quantize(source: Path, target: Path, settings: AwqSettings) -> dict[str, str]:
    """Runs AWQ on the GPU and saves the compressed checkpoint; returns the tool identity."""
    import llmcompressor  # lazy: the GPU image has it, the tests do not
    from datasets import Dataset
    from llmcompressor import oneshot

    try:
        from llmcompressor.modifiers.awq import AWQMapping, AWQModifier
    except ImportError:  # newer releases moved AWQ under modifiers.transform
        from llmcompressor.modifiers.transform.awq import AWQMapping, AWQModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    architecture = model_architecture(source)
    tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
    model = AutoModelForCausalLM.from_pretrained(source, trust_remote_code=True, torch_dtype="auto", device_map="auto")
    texts = calibration_texts(settings.calibration_samples)
    dataset = Dataset.from_dict({"text": texts}).map(
        lambda row: tokenizer(row["text"], truncation=True, max_length=settings.max_seq_length),
        remove_columns=["text"],
    )
    kwargs = awq_modifier_kwargs(settings, architecture)
    if "mappings" in kwargs:
        kwargs["mappings"] = [AWQMapping(smooth, balance) for smooth, balance in kwargs["mappings"]]
    oneshot(
        model=model,
        dataset=dataset,
        recipe=[AWQModifier(**kwargs)],
        max_seq_length=settings.max_seq_length,
        num_calibration_samples=settings.calibration_samples,
    )
    model.save_pretrained(target, save_compressed=True)
    tokenizer.save_pretrained(target)
    return {"name": "llmcompressor", "version": llmcompressor.__version__}


def copy_remote_code(source: Path, target: Path) -> None:
    """trust_remote_code models need their modeling/tokenizer files next to the weights."""
    for path in source.iterdir():
        if path.is_file() and (path.suffix in (".py", ".tiktoken") or path.name == "generation_config.json"):
            if not (target / path.name).exists():
                shutil.copy2(path, target / path.name)


def parse_args(argv: list[str] | None):
    parser = base_parser("qwenops_jobs.quantize", "AWQ quantization with llm-compressor")
    parser.add_argument("--input-uri", type=uri, required=True, help="prefix of the original model (with manifest)")
    parser.add_argument("--output-uri", type=uri, required=True, help="prefix the quantized model is written under")
    parser.add_argument("--bits", type=int, choices=SUPPORTED_BITS, default=4)
    parser.add_argument("--group-size", type=int, choices=SUPPORTED_GROUP_SIZES, default=128)
    parser.add_argument("--zero-point", type=boolean, default=True)
    parser.add_argument("--kernel", choices=("GEMM", "GEMV"), default="GEMM", help="recorded for vLLM kernel choice")
    parser.add_argument("--calibration-samples", type=positive_int, default=128)
    parser.add_argument("--max-seq-length", type=positive_int, default=512)
    return parser.parse_args(argv)


Quantizer = Callable[[Path, Path, AwqSettings], dict[str, str]]


def main(argv: list[str] | None = None, *, quantizer: Quantizer | None = None, s3_client: Any = None) -> int:
    args = parse_args(argv)
    logger = setup_logging("quantize", args.log_format)
    settings = AwqSettings(
        bits=args.bits,
        group_size=args.group_size,
        zero_point=args.zero_point,
        kernel=args.kernel,
        calibration_samples=args.calibration_samples,
        max_seq_length=args.max_seq_length,
    )
    quantize = quantizer or llmcompressor_quantize

    def body() -> None:
        started = time.monotonic()
        work = Path(args.work_dir)
        source = work / "original"
        target = work / "quantized"
        if target.exists():
            shutil.rmtree(target)  # a retried pod starts from scratch
        target.mkdir(parents=True)
        manifest = store.download_prefix(args.input_uri, source, s3_client=s3_client)
        log(logger, "original model downloaded", files=len(manifest["files"]), bytes=manifest["totalBytes"])
        tool = quantize(source, target, settings)
        copy_remote_code(source, target)
        files = store.upload_dir(
            target,
            args.output_uri,
            {
                "quantization": {"method": "awq", "bits": settings.bits, "groupSize": settings.group_size, "zeroPoint": settings.zero_point},
                "source": args.input_uri,
                "tool": tool,
            },
            s3_client=s3_client,
        )
        result = {
            "kind": "quantize",
            "simulated": False,
            "method": "awq",
            "bits": settings.bits,
            "groupSize": settings.group_size,
            "zeroPoint": settings.zero_point,
            "kernel": settings.kernel,
            "outputUri": args.output_uri,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            "sizeBytes": sum(f.size for f in files),
            "originalSizeBytes": int(manifest["totalBytes"]),
            "durationSeconds": round(time.monotonic() - started, 3),
            "tool": tool,
        }
        write_result(args.result_uri, result, s3_client=s3_client)
        log(logger, "quantized model written", outputUri=args.output_uri, sizeBytes=result["sizeBytes"], originalSizeBytes=result["originalSizeBytes"])

    return run(logger, body)


if __name__ == "__main__":
    raise SystemExit(main())
