"""Quantize Job: weight-only integer quantization of a causal LM with llm-compressor (the
maintained AWQ implementation; AutoAWQ is archived and points to it), on a GPU or on CPU.

    python -m qwenops_jobs.quantize --input-uri s3://.../original --output-uri s3://.../awq-w4-g128 \\
        --method awq --bits 4 --group-size 128 --zero-point true --kernel GEMM \\
        --calibration-samples 128 --device cuda --result-uri s3://.../result.json

Methods:
- ``awq``: AWQModifier(duo_scaling=True) smooths activations on calibration text, then
  QuantizationModifier quantizes every Linear but lm_head to int4 in groups (W4A16_ASYM with
  --zero-point true, W4A16 symmetric otherwise).
- ``rtn``: QuantizationModifier alone (round to nearest, no calibration), 2, 4 or 8 bits.
  2-bit RTN is the deliberately destructive recipe the pipeline tests use to prove that the
  quality gate stops a damaged candidate.

The output is a compressed-tensors ``pack-quantized`` checkpoint (config.json carries its
quantization_config, which vLLM detects by itself) with the tokenizer and generation config.
Qwen (v1) keeps its remote modeling code, copied next to the weights for --trust-remote-code.
Calibration text: the generated training text of the tiny-model corpus (never its held-out or
multiple-choice sets), packed into --calibration-samples sequences of --max-seq-length tokens.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from . import modeldir, store
from .common import (
    JobError,
    JobInputError,
    add_device_argument,
    base_parser,
    boolean,
    log,
    peak_rss_gb,
    positive_int,
    progress,
    quiet_progress_bars,
    run,
    setup_logging,
    uri,
)
from .results import write_result

SUPPORTED_METHODS = ("awq", "rtn")
SUPPORTED_BITS = (2, 4, 8)
AWQ_BITS = (4,)
SUPPORTED_GROUP_SIZES = (32, 64, 128)
MAX_CALIBRATION_BATCH = 32


@dataclass(frozen=True)
class QuantSettings:
    bits: int
    group_size: int
    zero_point: bool
    kernel: str
    calibration_samples: int
    max_seq_length: int
    method: str = "awq"
    device: str = "cuda"

    @property
    def scheme_name(self) -> str:
        return f"W{self.bits}A16" + ("_ASYM" if self.zero_point else "")

    @property
    def uses_calibration(self) -> bool:
        return self.method == "awq"


AwqSettings = QuantSettings  # the name before RTN existed


def weight_args(settings: QuantSettings) -> dict[str, Any]:
    """compressed-tensors QuantizationArgs of the weights: the W{bits}A16(_ASYM) presets with
    the group size of --group-size."""
    return {
        "num_bits": settings.bits,
        "type": "int",
        "symmetric": not settings.zero_point,
        "strategy": "group",
        "group_size": settings.group_size,
        "dynamic": False,
    }


def recipe_spec(settings: QuantSettings, architecture: str | None) -> dict[str, Any]:
    """The modifiers' arguments: {"awq": AWQModifier kwargs or None, "quantization":
    QuantizationModifier kwargs}. Every Linear but lm_head is quantized; explicit smoothing
    mappings for architectures llm-compressor has no registry entry for (Qwen v1)."""
    quantization = {
        "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"], "weights": weight_args(settings)}},
    }
    awq: dict[str, Any] | None = None
    if settings.method == "awq":
        awq = {"duo_scaling": True}
        mappings = awq_mappings(architecture)
        if mappings is not None:
            awq["mappings"] = mappings
    return {"awq": awq, "quantization": quantization}


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
    return modeldir.architecture(modeldir.load_config(model_dir, str(model_dir)))


def calibration_texts(samples: int) -> list[str]:
    """Documents of the tiny corpus' generated training text (no held-out or multiple-choice
    item), cycled to ``samples`` entries."""
    from .tinymodel import corpus

    return corpus.calibration_texts(samples)


def calibration_chunks(tokenizer, samples: int, max_seq_length: int) -> list[list[int]]:
    """``samples`` sequences of exactly ``max_seq_length`` tokens, cut from the calibration
    documents joined by the end-of-text token (equal lengths: batching truncates nothing)."""
    from .tinymodel import corpus

    needed = samples * max_seq_length
    separator = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    stream: list[int] = []
    rounds = 2
    while len(stream) < needed:
        stream = []
        for doc in corpus.generated_training_docs(rounds):
            stream.extend(tokenizer(doc, add_special_tokens=False)["input_ids"])
            stream.extend(separator)
            if len(stream) >= needed:
                break
        rounds *= 2
        if rounds > 64 and len(stream) < needed:  # cycle what there is
            stream = (stream * (needed // max(1, len(stream)) + 1))[:needed]
    return [stream[i * max_seq_length : (i + 1) * max_seq_length] for i in range(samples)]


@contextlib.contextmanager
def cpu_pin_memory_disabled(device: str) -> Iterator[None]:
    """AWQ's smoothing pins its cached activations for faster host->GPU copies
    (IntermediatesCache.pin_memory). Pinning needs a CUDA driver, which a CUDA build of torch
    on a machine without GPU lacks ("Found no NVIDIA driver"); on CPU there is nothing to copy,
    so for --device cpu only, and only while oneshot runs, that one method is a no-op."""
    if device != "cpu":
        yield
        return
    from llmcompressor.pipelines.cache import IntermediatesCache

    original = IntermediatesCache.pin_memory
    IntermediatesCache.pin_memory = lambda self, *args, **kwargs: None  # type: ignore[method-assign]
    try:
        yield
    finally:
        IntermediatesCache.pin_memory = original  # type: ignore[method-assign]


def check_linear_layers(model, group_size: int, ignore: list[str]) -> None:
    """Every Linear that gets quantized must split into whole groups along its input."""
    import torch

    for name, module in model.named_modules():
        if isinstance(module, torch.nn.Linear) and not any(name == i or name.endswith("." + i) for i in ignore):
            if module.in_features % group_size != 0:
                raise JobInputError(
                    f"layer {name}: in_features={module.in_features} is not divisible by --group-size {group_size}"
                )


def llmcompressor_quantize(source: Path, target: Path, settings: QuantSettings, logger=None) -> dict[str, Any]:
    """Quantizes with llm-compressor and saves the compressed checkpoint; returns
    {"tool", "peakMemoryGb", "calibration"}."""
    import llmcompressor  # lazy: the Job image has it, the unit tests do not
    import torch
    from llmcompressor import oneshot
    from llmcompressor.modifiers.quantization import QuantizationModifier
    from transformers import AutoModelForCausalLM, AutoTokenizer

    quiet_progress_bars()
    if settings.device == "cuda" and not torch.cuda.is_available():
        raise JobError("--device cuda, but torch sees no CUDA device")
    architecture = model_architecture(source)
    try:
        tokenizer = AutoTokenizer.from_pretrained(source, trust_remote_code=True)
    except Exception as err:  # noqa: BLE001 - a broken tokenizer is an input problem
        raise JobInputError(f"the input model's tokenizer does not load: {err}") from None
    if settings.device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    model = AutoModelForCausalLM.from_pretrained(
        source, trust_remote_code=True, dtype="auto", device_map="auto" if settings.device == "cuda" else "cpu"
    )
    spec = recipe_spec(settings, architecture)
    check_linear_layers(model, settings.group_size, spec["quantization"]["ignore"])
    progress(25, "model loaded")
    recipe: list[Any] = []
    if spec["awq"] is not None:
        try:  # 0.14: AWQ is a transform; modifiers.awq is a deprecated shim
            from llmcompressor.modifiers.transform.awq import AWQMapping, AWQModifier
        except ImportError:
            from llmcompressor.modifiers.awq import AWQMapping, AWQModifier
        awq_kwargs = dict(spec["awq"])
        if "mappings" in awq_kwargs:
            awq_kwargs["mappings"] = [AWQMapping(smooth_layer=s, balance_layers=b) for s, b in awq_kwargs["mappings"]]
        recipe.append(AWQModifier(**awq_kwargs))
    recipe.append(QuantizationModifier(**spec["quantization"]))

    calibration = {"samples": 0, "maxSeqLength": settings.max_seq_length}
    kwargs: dict[str, Any] = {}
    if settings.uses_calibration:
        from datasets import Dataset

        chunks = calibration_chunks(tokenizer, settings.calibration_samples, settings.max_seq_length)
        dataset = Dataset.from_dict({"input_ids": chunks, "attention_mask": [[1] * len(c) for c in chunks]})
        kwargs = {
            "dataset": dataset,
            "max_seq_length": settings.max_seq_length,
            "num_calibration_samples": len(chunks),
            "batch_size": min(MAX_CALIBRATION_BATCH, len(chunks)),
            "shuffle_calibration_samples": False,
        }
        calibration = {"samples": len(chunks), "maxSeqLength": settings.max_seq_length}
    progress(30, f"{settings.method} {settings.scheme_name} g{settings.group_size}: running llm-compressor")
    with cpu_pin_memory_disabled(settings.device):
        oneshot(model=model, recipe=recipe, **kwargs)
    progress(80, "saving the compressed checkpoint")
    model.save_pretrained(target, save_compressed=True)
    tokenizer.save_pretrained(target)
    if settings.device == "cuda":
        peak = torch.cuda.max_memory_allocated() / 1024**3
    else:
        peak = peak_rss_gb()
    return {"tool": {"name": "llmcompressor", "version": llmcompressor.__version__}, "peakMemoryGb": peak, "calibration": calibration}


def verify_output(target: Path, settings: QuantSettings) -> dict[str, Any]:
    """The saved config must describe what was asked for (a silent fallback to an unquantized
    save would otherwise pass as a 'quantized' model)."""
    config = modeldir.load_config(target, "the quantized model")
    quant = config.get("quantization_config") or {}
    if quant.get("quant_method") != "compressed-tensors":
        raise JobError(f"the saved config.json has no compressed-tensors quantization_config: {quant!r}")
    groups = quant.get("config_groups") or {}
    weights = [g.get("weights") or {} for g in groups.values()]
    if not weights or any(w.get("num_bits") != settings.bits or w.get("group_size") != settings.group_size for w in weights):
        raise JobError(f"the saved quantization_config does not match int{settings.bits} g{settings.group_size}: {groups!r}")
    return quant


def copy_remote_code(source: Path, target: Path) -> None:
    """trust_remote_code models need their modeling/tokenizer files next to the weights."""
    for path in source.iterdir():
        if path.is_file() and (path.suffix in (".py", ".tiktoken") or path.name == "generation_config.json"):
            if not (target / path.name).exists():
                shutil.copy2(path, target / path.name)


def parse_args(argv: list[str] | None):
    parser = base_parser("qwenops_jobs.quantize", "Weight-only quantization (AWQ or RTN) with llm-compressor")
    parser.add_argument("--input-uri", type=uri, required=True, help="prefix of the original model (with manifest)")
    parser.add_argument("--output-uri", type=uri, required=True, help="prefix the quantized model is written under")
    parser.add_argument("--method", choices=SUPPORTED_METHODS, default="awq", help="awq (calibrated, 4 bit) or rtn (round to nearest)")
    parser.add_argument("--bits", type=int, choices=SUPPORTED_BITS, default=4, help="weight bits (awq: 4)")
    parser.add_argument("--group-size", type=int, choices=SUPPORTED_GROUP_SIZES, default=128)
    parser.add_argument("--zero-point", type=boolean, default=True, help="asymmetric (true) or symmetric (false) int weights")
    parser.add_argument("--kernel", choices=("GEMM", "GEMV"), default="GEMM", help="recorded for vLLM kernel choice")
    parser.add_argument("--calibration-samples", type=positive_int, default=128, help="awq: calibration sequences")
    parser.add_argument("--max-seq-length", type=positive_int, default=256, help="awq: tokens per calibration sequence")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    if args.method == "awq" and args.bits not in AWQ_BITS:
        parser.error(f"--bits {args.bits}: --method awq supports {', '.join(map(str, AWQ_BITS))} bits (use --method rtn for others)")
    return args


Quantizer = Callable[[Path, Path, QuantSettings], dict[str, Any]]


def main(argv: list[str] | None = None, *, quantizer: Quantizer | None = None, s3_client: Any = None) -> int:
    args = parse_args(argv)
    logger = setup_logging("quantize", args.log_format)
    settings = QuantSettings(
        bits=args.bits,
        group_size=args.group_size,
        zero_point=args.zero_point,
        kernel=args.kernel,
        calibration_samples=args.calibration_samples,
        max_seq_length=args.max_seq_length,
        method=args.method,
        device=args.device,
    )
    quantize = quantizer or llmcompressor_quantize

    def body() -> None:
        started = time.monotonic()
        progress(0, "starting")
        work = Path(args.work_dir)
        source = work / "original"
        target = work / "quantized"
        for path in (source, target):
            if path.exists():
                shutil.rmtree(path)  # a retried pod starts from scratch
        target.mkdir(parents=True)
        progress(5, "downloading the original model")
        manifest = store.download_prefix(args.input_uri, source, s3_client=s3_client)
        log(logger, "original model downloaded", files=len(manifest["files"]), bytes=manifest["totalBytes"])
        config = modeldir.load_config(source, args.input_uri)
        modeldir.require_tokenizer(source, args.input_uri)
        modeldir.check_group_size(config, settings.group_size, args.input_uri)
        progress(15, f"quantizing: {settings.method} {settings.scheme_name} g{settings.group_size} on {settings.device}")
        log(
            logger,
            "quantizing",
            method=settings.method,
            scheme=settings.scheme_name,
            groupSize=settings.group_size,
            device=settings.device,
            calibrationSamples=settings.calibration_samples if settings.uses_calibration else 0,
            maxSeqLength=settings.max_seq_length,
        )
        outcome = quantize(source, target, settings)
        copy_remote_code(source, target)
        quant = verify_output(target, settings)
        progress(85, "uploading the quantized model")
        files = store.upload_dir(
            target,
            args.output_uri,
            {
                "quantization": {"method": settings.method, "bits": settings.bits, "groupSize": settings.group_size, "zeroPoint": settings.zero_point},
                "source": args.input_uri,
                "tool": outcome["tool"],
            },
            s3_client=s3_client,
        )
        result = {
            "kind": "quantize",
            "simulated": False,
            "method": settings.method,
            "bits": settings.bits,
            "groupSize": settings.group_size,
            "zeroPoint": settings.zero_point,
            "kernel": settings.kernel,
            "outputUri": args.output_uri,
            "files": [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files],
            "sizeBytes": sum(f.size for f in files),
            "originalSizeBytes": int(manifest["totalBytes"]),
            "durationSeconds": round(time.monotonic() - started, 3),
            "tool": outcome["tool"],
            "device": settings.device,
            "calibration": outcome.get("calibration") or {"samples": 0, "maxSeqLength": settings.max_seq_length},
            "peakMemoryGb": round(max(float(outcome.get("peakMemoryGb") or 0.0), 1e-6), 3),
        }
        write_result(args.result_uri, result, s3_client=s3_client)
        log(
            logger,
            "quantized model written",
            outputUri=args.output_uri,
            sizeBytes=result["sizeBytes"],
            originalSizeBytes=result["originalSizeBytes"],
            peakMemoryGb=result["peakMemoryGb"],
            format=quant.get("format"),
            seconds=result["durationSeconds"],
        )
        progress(100, "done")

    return run(logger, body)


if __name__ == "__main__":
    raise SystemExit(main())
