"""Evaluate Job: the baseline and the candidate (e.g. its AWQ quantization) answer the same
evaluation set on the same GPU; the result carries what the quality gate compares: quality
score (and per task), peak GPU memory and generation throughput.

    python -m qwenops_jobs.evaluate --baseline-uri s3://... --candidate-uri s3://... \\
        --samples 200 --gpu-type A10 --result-uri s3://.../result.json

Models are measured one after the other in the same process, each fully released before the
next loads, so they see the same GPU. Generation is greedy (temperature 0) for repeatability.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Protocol

from . import store
from .common import JobError, base_parser, log, positive_int, run, setup_logging, uri
from .results import write_result
from .scoring import EvalItem, quality_drop_pct, quality_score, task_scores

BUILTIN_EVAL_SET = "builtin-zh"


@dataclass
class Generation:
    texts: list[str]
    generated_tokens: int
    seconds: float


class Generator(Protocol):
    def generate(self, prompts: list[str], max_new_tokens: int) -> Generation: ...
    def peak_memory_gb(self) -> float: ...
    def close(self) -> None: ...


class TransformersGenerator:
    """Greedy batched generation with transformers on the GPU (compressed-tensors AWQ
    checkpoints load through the same API)."""

    def __init__(self, model_dir: Path):
        import torch  # lazy: the GPU image has it, the tests do not
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True, padding_side="left")
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token or "<|endoftext|>"
        self.model = AutoModelForCausalLM.from_pretrained(
            model_dir, trust_remote_code=True, torch_dtype="auto", device_map="cuda"
        ).eval()

    def generate(self, prompts: list[str], max_new_tokens: int) -> Generation:
        torch = self.torch
        batch = self.tokenizer(prompts, return_tensors="pt", padding=True).to("cuda")
        torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.inference_mode():
            output = self.model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.tokenizer.pad_token_id)
        torch.cuda.synchronize()
        seconds = time.perf_counter() - started
        new_tokens = output[:, batch["input_ids"].shape[1]:]
        pad = self.tokenizer.pad_token_id
        generated = int((new_tokens != pad).sum().item())
        texts = self.tokenizer.batch_decode(new_tokens, skip_special_tokens=True)
        return Generation(texts=texts, generated_tokens=generated, seconds=seconds)

    def peak_memory_gb(self) -> float:
        return self.torch.cuda.max_memory_allocated() / 1024**3

    def close(self) -> None:
        del self.model
        self.torch.cuda.empty_cache()


def load_eval_set(name: str, samples: int) -> list[EvalItem]:
    if name == BUILTIN_EVAL_SET:
        text = resources.files("qwenops_jobs").joinpath("data/eval_zh.jsonl").read_text(encoding="utf-8")
    else:
        source, key = store.open_uri(name)
        text = source.get_bytes(key).decode("utf-8")
    items = [EvalItem.from_json(json.loads(line)) for line in text.splitlines() if line.strip()]
    if not items:
        raise JobError(f"evaluation set {name} is empty")
    return items[: min(samples, len(items))]


def measure(generator: Generator, items: list[EvalItem], *, batch_size: int, max_new_tokens: int) -> dict[str, Any]:
    outputs: list[str] = []
    tokens = 0
    seconds = 0.0
    prompts = [item.render_prompt() for item in items]
    for start in range(0, len(prompts), batch_size):
        generation = generator.generate(prompts[start : start + batch_size], max_new_tokens)
        outputs.extend(generation.texts)
        tokens += generation.generated_tokens
        seconds += generation.seconds
    scores = task_scores(items, outputs)
    if seconds <= 0 or tokens <= 0:
        raise JobError("generation produced no tokens: cannot measure throughput")
    return {
        "qualityScore": quality_score(scores),
        "memoryGb": round(max(generator.peak_memory_gb(), 1e-6), 3),
        "tokensPerSecond": round(tokens / seconds, 3),
        "taskScores": scores,
    }


def parse_args(argv: list[str] | None):
    parser = base_parser("qwenops_jobs.evaluate", "Quality, memory and throughput: baseline vs candidate")
    parser.add_argument("--baseline-uri", type=uri, required=True, help="prefix of the baseline model (with manifest)")
    parser.add_argument("--candidate-uri", type=uri, required=True, help="prefix of the candidate model (with manifest)")
    parser.add_argument("--samples", type=positive_int, required=True, help="evaluation items to use (at most the set size)")
    parser.add_argument("--gpu-type", required=True, help="GPU model the Job runs on (reported)")
    parser.add_argument("--eval-set", default=BUILTIN_EVAL_SET, help=f"'{BUILTIN_EVAL_SET}' or a URI of a JSONL set")
    parser.add_argument("--batch-size", type=positive_int, default=8)
    parser.add_argument("--max-new-tokens", type=positive_int, default=64)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None, *, generator_factory: Callable[[Path], Generator] | None = None, s3_client: Any = None) -> int:
    args = parse_args(argv)
    logger = setup_logging("evaluate", args.log_format)
    factory = generator_factory or TransformersGenerator

    def body() -> None:
        started = time.monotonic()
        items = load_eval_set(args.eval_set, args.samples)
        log(logger, "evaluation set loaded", evalSet=args.eval_set, items=len(items))
        measurements: dict[str, dict[str, Any]] = {}
        for role, model_uri in (("baseline", args.baseline_uri), ("candidate", args.candidate_uri)):
            local = Path(args.work_dir) / role
            store.download_prefix(model_uri, local, s3_client=s3_client)
            generator = factory(local)
            try:
                measured = measure(generator, items, batch_size=args.batch_size, max_new_tokens=args.max_new_tokens)
            finally:
                generator.close()
            measurements[role] = {"modelUri": model_uri, **measured}
            log(logger, f"{role} measured", **measured)
        drop = quality_drop_pct(measurements["baseline"]["qualityScore"], measurements["candidate"]["qualityScore"])
        log(logger, "quality drop", qualityDropPct=drop)
        result = {
            "kind": "evaluate",
            "simulated": False,
            "evalSet": args.eval_set,
            "samples": len(items),
            "gpuType": args.gpu_type,
            "baseline": measurements["baseline"],
            "candidate": measurements["candidate"],
            "durationSeconds": round(time.monotonic() - started, 3),
        }
        write_result(args.result_uri, result, s3_client=s3_client)
        log(logger, "result written", resultUri=args.result_uri)

    return run(logger, body)


if __name__ == "__main__":
    raise SystemExit(main())
