"""One model's measurement for the Evaluate Job, in a process of its own so that its peak
memory is its own (CUDA: torch's max allocated; CPU: the peak RSS of this process).

    python -m qwenops_jobs.measure --request REQUEST.json --out MEASUREMENT.json

The request is evaluate.MeasureRequest; the output has per-item held-out NLL sums and token
counts, per-item choice log-likelihoods, the generation figures, the peak memory and what did
the measuring. Exit 2: the model cannot be loaded for a reason a retry cannot fix (its
tokenizer); exit 1: anything else.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from .common import JobError, JobInputError, log, model_load_dtype, peak_rss_gb, progress, quiet_progress_bars, run, setup_logging


def measure(request: dict, logger) -> dict:
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from . import lm

    quiet_progress_bars()
    label = request["label"]
    device = request["device"]
    start, end = int(request["progress_from"]), int(request["progress_to"])

    def step(fraction: float, message: str) -> None:
        progress(start + round((end - start) * fraction), f"{label}: {message}")

    if device == "cuda":
        if not torch.cuda.is_available():
            raise JobError("--device cuda, but torch sees no CUDA device")
        torch.cuda.reset_peak_memory_stats()
    model_dir = Path(request["model_dir"])
    step(0.0, "loading the model")
    began = time.monotonic()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
    except Exception as err:  # noqa: BLE001 - a tokenizer that does not load is an input problem
        raise JobInputError(f"{label}: the tokenizer does not load: {err}") from None
    model = AutoModelForCausalLM.from_pretrained(
        model_dir, trust_remote_code=True, dtype=model_load_dtype(device), device_map=device
    ).eval()
    quant = getattr(model.config, "quantization_config", None)
    load_seconds = time.monotonic() - began
    weight_dtype = str(next(model.parameters()).dtype).replace("torch.", "")
    log(logger, f"{label}: model loaded", seconds=round(load_seconds, 2), device=device, weightDtype=weight_dtype, quantized=quant is not None)

    step(0.15, f"perplexity on {len(request['heldout'])} held-out passages")
    began = time.monotonic()
    scored = lm.perplexity_items(model, tokenizer, request["heldout"], device=device)
    heldout_seconds = time.monotonic() - began

    step(0.4, f"multiple choice on {len(request['mc_prompts'])} questions")
    began = time.monotonic()
    logliks = lm.choice_logliks(model, tokenizer, request["mc_prompts"], request["mc_choices"], device=device)
    mc_seconds = time.monotonic() - began

    step(0.75, f"generation throughput ({len(request['generation_prompts'])} prompts)")
    generation = lm.generate(
        model, tokenizer, request["generation_prompts"], batch_size=int(request["batch_size"]), max_new_tokens=int(request["max_new_tokens"]), device=device
    )
    if device == "cuda":
        peak, kind, name = torch.cuda.max_memory_allocated() / 1024**3, "gpu-allocated", torch.cuda.get_device_name(0)
    else:
        peak, kind, name = peak_rss_gb(), "process-rss", "cpu"
    log(
        logger,
        f"{label}: measured",
        heldoutSeconds=round(heldout_seconds, 2),
        mcSeconds=round(mc_seconds, 2),
        generationSeconds=round(generation.seconds, 2),
        peakMemoryGb=round(peak, 3),
        memoryKind=kind,
        sample=generation.texts[0][:80] if generation.texts else "",
    )
    step(1.0, "measured")
    return {
        "heldout": {"nll": [s.nll for s in scored], "tokens": [s.tokens for s in scored]},
        "mc": {"logliks": logliks},
        "generation": {"prompts": generation.prompts, "tokens": generation.tokens, "seconds": generation.seconds, "batchSize": generation.batch_size},
        "peakMemoryGb": peak,
        "memoryKind": kind,
        "deviceName": name,
        "weightDtype": weight_dtype,
        "quantization": getattr(quant, "quant_method", None) if quant is not None and not isinstance(quant, dict) else (quant or {}).get("quant_method"),
        "loadSeconds": load_seconds,
        "tool": {"name": "transformers", "version": transformers.__version__},
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qwenops_jobs.measure", description="one model's evaluation measurement")
    parser.add_argument("--request", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("TQDM_DISABLE", "1")
    request = json.loads(args.request.read_text(encoding="utf-8"))
    logger = setup_logging("evaluate", request.get("log_format", "text"))

    def body() -> None:
        result = measure(request, logger)
        temp = args.out.with_suffix(".tmp")
        temp.write_text(json.dumps(result), encoding="utf-8")
        temp.replace(args.out)

    return run(logger, body)


if __name__ == "__main__":
    sys.exit(main())
