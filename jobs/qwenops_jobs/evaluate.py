"""Evaluate Job: the baseline and the candidate (e.g. its AWQ quantization) measured for real
on the same items, on a GPU or on CPU; the result carries what the quality gate compares.

    python -m qwenops_jobs.evaluate --baseline-uri s3://... --candidate-uri s3://... \\
        --samples 200 --min-samples 200 --device cuda --result-uri s3://.../result.json

Per model, in its own subprocess (``python -m qwenops_jobs.measure``) so that its peak memory
is its own (CUDA: max allocated; CPU: peak RSS of that process):

- perplexity on the held-out set (per-item NLL sums and token counts);
- multiple-choice accuracy by log-likelihood of each choice as the continuation of the same
  prompt, with a 95 % Wilson interval;
- greedy batched generation throughput (tokens/s with prompts, tokens, seconds, batch size).

Then two paired deltas over the SAME items (positive = candidate worse): ``qualityDelta``,
the relative accuracy drop in percent, and ``perplexityDelta``, the relative perplexity
increase in percent, each with a 95 % interval (see stats.py for the methods).

``--eval-set builtin-zh`` (default) = qwenops_jobs/data/heldout_zh.jsonl + mc_zh.jsonl; a URI
of a JSONL file replaces the multiple-choice part (every line is validated). A set with fewer
items than max(--samples, --min-samples) fails with exit 2: fewer items are never used silently.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator

from . import modeldir, stats, store
from .common import (
    EXIT_BAD_INPUT,
    JobError,
    JobInputError,
    add_device_argument,
    base_parser,
    log,
    non_negative_int,
    positive_int,
    progress,
    run,
    setup_logging,
    uri,
)
from .results import write_result

BUILTIN_EVAL_SET = "builtin-zh"
LETTERS = "ABCD"
MC_PROMPT = "问：{q}\n答："  # how bare questions (task "ceval") are asked; mc-zh prompts carry it already
MC_TASKS = ("mc-zh", "ceval")


@dataclass(frozen=True)
class McItem:
    id: str
    task: str
    prompt: str  # rendered: the text the choices continue
    choices: tuple[str, str, str, str]
    answer: str

    @property
    def answer_index(self) -> int:
        return LETTERS.index(self.answer)


@dataclass(frozen=True)
class HeldoutItem:
    id: str
    text: str


def _line_error(source: str, number: int, problem: str) -> JobInputError:
    return JobInputError(f"evaluation set {source} line {number}: {problem}")


def _jsonl_objects(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for each non-blank line; a line that is not a JSON object is
    bad input naming the set and the line."""
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except ValueError as err:
            raise _line_error(source, number, f"not JSON ({err})") from None
        if not isinstance(value, dict):
            raise _line_error(source, number, "not a JSON object")
        yield number, value


def parse_mc_jsonl(text: str, source: str) -> list[McItem]:
    """Multiple-choice items, one JSON object a line: {"id", "task"?: "mc-zh"|"ceval",
    "prompt", "choices": [4 strings], "answer": "A".."D"}; blank lines are skipped."""
    items: list[McItem] = []
    seen: set[str] = set()
    for number, value in _jsonl_objects(text, source):
        item_id = value.get("id")
        if not isinstance(item_id, (str, int)) or isinstance(item_id, bool) or str(item_id) == "":
            raise _line_error(source, number, "'id' must be a non-empty string or an integer")
        if str(item_id) in seen:
            raise _line_error(source, number, f"duplicate id {item_id!r}")
        task = value.get("task", "mc-zh")
        if task not in MC_TASKS:
            raise _line_error(source, number, f"task {task!r} is not multiple choice ({', '.join(MC_TASKS)})")
        prompt = value.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise _line_error(source, number, "'prompt' must be a non-empty string")
        choices = value.get("choices")
        if not isinstance(choices, list) or len(choices) != 4 or not all(isinstance(c, str) and c.strip() for c in choices):
            raise _line_error(source, number, "'choices' must be a list of 4 non-empty strings")
        if len(set(choices)) != 4:
            raise _line_error(source, number, "'choices' must be 4 different strings")
        answer = value.get("answer")
        if answer not in tuple(LETTERS):
            raise _line_error(source, number, f"'answer' must be one of A, B, C, D (got {answer!r})")
        rendered = prompt if task == "mc-zh" else MC_PROMPT.format(q=prompt)
        seen.add(str(item_id))
        items.append(McItem(str(item_id), task, rendered, tuple(choices), answer))  # type: ignore[arg-type]
    return items


def parse_heldout_jsonl(text: str, source: str) -> list[HeldoutItem]:
    items = []
    for number, value in _jsonl_objects(text, source):
        if not isinstance(value.get("text"), str) or not value["text"].strip():
            raise _line_error(source, number, "needs a non-empty 'text'")
        items.append(HeldoutItem(str(value.get("id", number)), value["text"]))
    return items


def _builtin(name: str) -> str:
    return resources.files("qwenops_jobs").joinpath(f"data/{name}").read_text(encoding="utf-8")


def load_sets(eval_set: str, *, s3_client: Any = None) -> tuple[list[HeldoutItem], list[McItem], str, str]:
    """(held-out items, multiple-choice items, held-out set name, multiple-choice set name)."""
    heldout = parse_heldout_jsonl(_builtin("heldout_zh.jsonl"), "heldout_zh.jsonl")
    if eval_set == BUILTIN_EVAL_SET:
        return heldout, parse_mc_jsonl(_builtin("mc_zh.jsonl"), "mc_zh.jsonl"), "heldout_zh", "mc_zh"
    source, key = store.open_uri(eval_set, s3_client=s3_client)
    try:
        text = source.get_bytes(key).decode("utf-8")
    except UnicodeDecodeError:
        raise JobInputError(f"evaluation set {eval_set} is not UTF-8 text") from None
    return heldout, parse_mc_jsonl(text, eval_set), "heldout_zh", eval_set


def select(items: list, samples: int, min_samples: int, name: str) -> list:
    needed = max(samples, min_samples)
    if len(items) < needed:
        raise JobInputError(
            f"evaluation set {name} has {len(items)} items, but {needed} are needed "
            f"(--samples {samples}, --min-samples {min_samples}); fewer items are never used silently"
        )
    return items[:samples]


@dataclass(frozen=True)
class MeasureRequest:
    """What one model's measurement subprocess does (written to JSON for it)."""

    model_dir: str
    label: str
    device: str
    heldout: list[str]
    mc_prompts: list[str]
    mc_choices: list[list[str]]
    generation_prompts: list[str]
    batch_size: int
    max_new_tokens: int
    progress_from: int
    progress_to: int
    log_format: str


Measurer = Callable[[MeasureRequest], dict[str, Any]]


def subprocess_measurer(work_dir: Path) -> Measurer:
    def measure(request: MeasureRequest) -> dict[str, Any]:
        request_path = work_dir / f"{request.label}-request.json"
        out_path = work_dir / f"{request.label}-measurement.json"
        request_path.write_text(json.dumps(asdict(request), ensure_ascii=False), encoding="utf-8")
        out_path.unlink(missing_ok=True)
        package_root = str(Path(__file__).resolve().parent.parent)
        env = {**os.environ, "TQDM_DISABLE": "1", "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH", "")) if p)}
        sys.stdout.flush()
        completed = subprocess.run(
            [sys.executable, "-m", "qwenops_jobs.measure", "--request", str(request_path), "--out", str(out_path)],
            env=env,
            check=False,
        )
        if completed.returncode == EXIT_BAD_INPUT:
            raise JobInputError(f"{request.label}: the measurement refused the model (exit 2, reason in the log above)")
        if completed.returncode != 0 or not out_path.exists():
            raise JobError(f"{request.label}: the measurement process failed with exit code {completed.returncode} (see the log above)")
        return json.loads(out_path.read_text(encoding="utf-8"))

    return measure


def summarize(model_uri: str, measured: dict[str, Any], items: list[McItem]) -> tuple[dict[str, Any], list[bool]]:
    """The result's per-model measurement and the per-item correctness."""
    logliks = measured["mc"]["logliks"]
    if len(logliks) != len(items):
        raise JobError(f"{len(items)} multiple-choice items but {len(logliks)} scored")
    correct = [max(range(len(ll)), key=lambda i: ll[i]) == item.answer_index for item, ll in zip(items, logliks)]
    accuracy = sum(correct) / len(correct)
    low, high = stats.wilson(sum(correct), len(correct))
    per_task: dict[str, list[bool]] = {}
    for item, ok in zip(items, correct):
        per_task.setdefault(item.task, []).append(ok)
    heldout = measured["heldout"]
    generation = measured["generation"]
    if generation["seconds"] <= 0 or generation["tokens"] <= 0:
        raise JobError("generation produced no tokens: cannot measure throughput")
    result = {
        "modelUri": model_uri,
        "qualityScore": round(accuracy, 6),
        "memoryGb": round(max(float(measured["peakMemoryGb"]), 1e-6), 3),
        "memoryKind": measured["memoryKind"],
        "tokensPerSecond": round(generation["tokens"] / generation["seconds"], 3),
        "taskScores": {task: round(sum(oks) / len(oks), 6) for task, oks in sorted(per_task.items())},
        "perplexity": {
            "value": round(stats.perplexity(heldout["nll"], heldout["tokens"]), 4),
            "tokens": int(sum(heldout["tokens"])),
            "items": len(heldout["nll"]),
        },
        "accuracy": {"value": round(accuracy, 6), "low": round(low, 6), "high": round(high, 6), "items": len(correct)},
        "generation": {
            "prompts": int(generation["prompts"]),
            "tokens": int(generation["tokens"]),
            "seconds": round(max(float(generation["seconds"]), 1e-6), 4),
            "batchSize": int(generation["batchSize"]),
        },
    }
    return result, correct


def parse_args(argv: list[str] | None):
    parser = base_parser("qwenops_jobs.evaluate", "Perplexity, accuracy, memory and throughput: baseline vs candidate")
    parser.add_argument("--baseline-uri", type=uri, required=True, help="prefix of the baseline model (with manifest)")
    parser.add_argument("--candidate-uri", type=uri, required=True, help="prefix of the candidate model (with manifest)")
    parser.add_argument("--samples", type=positive_int, required=True, help="items used from each evaluation set")
    parser.add_argument("--min-samples", type=non_negative_int, default=0, help="items each set must have at least (the gate's minimum)")
    parser.add_argument("--gpu-type", help="accelerator the Job runs on (reported; default: what torch reports, 'cpu' on CPU)")
    parser.add_argument("--eval-set", default=BUILTIN_EVAL_SET, help=f"'{BUILTIN_EVAL_SET}' or a URI of a multiple-choice JSONL set")
    parser.add_argument("--batch-size", type=positive_int, default=8, help="generation batch size")
    parser.add_argument("--max-new-tokens", type=positive_int, default=64, help="generated tokens per prompt")
    parser.add_argument("--generation-prompts", type=positive_int, default=16, help="prompts for the throughput measurement")
    add_device_argument(parser)
    args = parser.parse_args(argv)
    if args.eval_set != BUILTIN_EVAL_SET:
        try:
            uri(args.eval_set)
        except Exception as err:  # noqa: BLE001 - argparse reports it
            parser.error(f"--eval-set: {err}")
    if args.gpu_type is not None and not args.gpu_type.strip():
        parser.error("--gpu-type must not be empty")
    return args


def main(argv: list[str] | None = None, *, measurer: Measurer | None = None, s3_client: Any = None) -> int:
    args = parse_args(argv)
    logger = setup_logging("evaluate", args.log_format)

    def body() -> None:
        started = time.monotonic()
        progress(0, "loading the evaluation sets")
        heldout_all, mc_all, heldout_name, mc_name = load_sets(args.eval_set, s3_client=s3_client)
        heldout = select(heldout_all, args.samples, args.min_samples, heldout_name)
        mc = select(mc_all, args.samples, args.min_samples, mc_name)
        generation_prompts = [item.prompt for item in mc[: args.generation_prompts]]
        log(logger, "evaluation sets loaded", evalSet=args.eval_set, heldoutItems=len(heldout), mcItems=len(mc), device=args.device)
        work = Path(args.work_dir)
        work.mkdir(parents=True, exist_ok=True)
        measure = measurer or subprocess_measurer(work)
        summaries: dict[str, dict[str, Any]] = {}
        correctness: dict[str, list[bool]] = {}
        raw: dict[str, dict[str, Any]] = {}
        for index, (role, model_uri) in enumerate((("baseline", args.baseline_uri), ("candidate", args.candidate_uri))):
            base = 5 + index * 45
            progress(base, f"{role}: downloading")
            local = work / role
            if local.exists():
                import shutil

                shutil.rmtree(local)  # a retried pod starts from scratch
            store.download_prefix(model_uri, local, s3_client=s3_client)
            config = modeldir.load_config(local, model_uri)
            modeldir.require_tokenizer(local, model_uri)
            if config.get("quantization_config") and args.device == "cpu":
                log(logger, f"{role}: quantized checkpoint; transformers decompresses it to full-precision weights on CPU (expected)", quantization=config["quantization_config"].get("quant_method"))
            measured = measure(
                MeasureRequest(
                    model_dir=str(local),
                    label=role,
                    device=args.device,
                    heldout=[item.text for item in heldout],
                    mc_prompts=[item.prompt for item in mc],
                    mc_choices=[list(item.choices) for item in mc],
                    generation_prompts=generation_prompts,
                    batch_size=args.batch_size,
                    max_new_tokens=args.max_new_tokens,
                    progress_from=base + 5,
                    progress_to=base + 45,
                    log_format=args.log_format,
                )
            )
            raw[role] = measured
            summaries[role], correctness[role] = summarize(model_uri, measured, mc)
            log(logger, f"{role} measured", **{k: summaries[role][k] for k in ("perplexity", "accuracy", "tokensPerSecond", "memoryGb", "memoryKind")})
        progress(95, "paired deltas")
        quality_delta = stats.accuracy_delta(correctness["baseline"], correctness["candidate"])
        perplexity_delta = stats.perplexity_delta(
            raw["baseline"]["heldout"]["nll"], raw["baseline"]["heldout"]["tokens"],
            raw["candidate"]["heldout"]["nll"], raw["candidate"]["heldout"]["tokens"],
        )
        log(logger, "paired deltas", qualityDelta=quality_delta.to_json(), perplexityDelta=perplexity_delta.to_json())
        result = {
            "kind": "evaluate",
            "simulated": False,
            "evalSet": args.eval_set,
            "samples": len(mc),
            "gpuType": args.gpu_type or raw["baseline"].get("deviceName") or args.device,
            "device": args.device,
            "tool": raw["baseline"]["tool"],
            "baseline": summaries["baseline"],
            "candidate": summaries["candidate"],
            "qualityDelta": quality_delta.to_json(),
            "perplexityDelta": perplexity_delta.to_json(),
            "durationSeconds": round(time.monotonic() - started, 3),
        }
        write_result(args.result_uri, result, s3_client=s3_client)
        log(logger, "result written", resultUri=args.result_uri, seconds=result["durationSeconds"])
        progress(100, "done")

    return run(logger, body)


if __name__ == "__main__":
    raise SystemExit(main())
