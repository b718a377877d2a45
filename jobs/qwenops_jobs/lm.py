"""Log-likelihood scoring and generation with a transformers causal LM (torch imported by the
caller's process only: the Job's per-model measurement subprocess and the tiny-model builder).

- ``sequence_scores``: per sequence, the sum of -log p(token) over the tokens from a given
  position on, and how many tokens that is (one forward pass per batch, no sampling);
- perplexity items: the text preceded by the end-of-text token (the document separator), every
  text token scored;
- multiple choice: prompt + choice, scored from the first token that differs from the prompt
  alone (a BPE merge across the boundary is then part of every choice's continuation alike);
  the predicted choice is the one with the highest summed log-likelihood;
- ``generate``: greedy batched generation of exactly ``max_new_tokens`` per prompt (EOS is not
  allowed to end it early, so both models produce the same number of tokens), timed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

MAX_BATCH_TOKENS = 8192
LOGITS_BUDGET_BYTES = 1 << 30  # float32 logits of one batch: vocab x tokens x 4 bytes


@dataclass
class ScoredSequence:
    nll: float
    tokens: int


def _prefix_ids(tokenizer) -> list[int]:
    eos = tokenizer.eos_token_id
    return [int(eos)] if eos is not None else []


def encode(tokenizer, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def sequence_scores(model, sequences: Sequence[Sequence[int]], starts: Sequence[int], *, pad_id: int, device: str) -> list[ScoredSequence]:
    """Sum of -log p(ids[j] | ids[:j]) for j >= starts[i] (starts[i] >= 1) per sequence."""
    import torch

    vocab = int(model.config.get_text_config().vocab_size) if hasattr(model.config, "get_text_config") else int(model.config.vocab_size)
    budget = max(1, min(MAX_BATCH_TOKENS, LOGITS_BUDGET_BYTES // (4 * vocab)))
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    results: list[ScoredSequence | None] = [None] * len(sequences)
    position = 0
    while position < len(order):
        longest = len(sequences[order[position]])
        batch = [order[position]]
        position += 1
        while position < len(order):
            candidate_longest = max(longest, len(sequences[order[position]]))
            if candidate_longest * (len(batch) + 1) > budget:
                break
            longest = candidate_longest
            batch.append(order[position])
            position += 1
        ids = torch.full((len(batch), longest), pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), longest), dtype=torch.long)
        score = torch.zeros((len(batch), longest), dtype=torch.bool)
        for row, index in enumerate(batch):
            seq = sequences[index]
            start = starts[index]
            if start < 1 or start >= len(seq):
                raise ValueError(f"sequence {index}: nothing to score (start {start}, length {len(seq)})")
            ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
            mask[row, : len(seq)] = 1
            score[row, start : len(seq)] = True
        ids, mask, score = ids.to(device), mask.to(device), score.to(device)
        with torch.inference_mode():
            logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
            target = logits.gather(-1, ids[:, 1:].unsqueeze(-1)).squeeze(-1)
            logprobs = target - torch.logsumexp(logits, dim=-1)
            del logits
            scored = score[:, 1:]
            nll = -(logprobs * scored).sum(dim=1)
            counts = scored.sum(dim=1)
        for row, index in enumerate(batch):
            results[index] = ScoredSequence(nll=float(nll[row].item()), tokens=int(counts[row].item()))
    return [r for r in results if r is not None]


def perplexity_items(model, tokenizer, texts: Sequence[str], *, device: str) -> list[ScoredSequence]:
    prefix = _prefix_ids(tokenizer)
    sequences = [prefix + encode(tokenizer, text) for text in texts]
    starts = [len(prefix) if prefix else 1 for _ in texts]
    return sequence_scores(model, sequences, starts, pad_id=pad_id(tokenizer), device=device)


def choice_logliks(model, tokenizer, prompts: Sequence[str], choices: Sequence[Sequence[str]], *, device: str) -> list[list[float]]:
    """Summed log-likelihood of each choice as the continuation of its prompt."""
    prefix = _prefix_ids(tokenizer)
    sequences: list[list[int]] = []
    starts: list[int] = []
    shape: list[int] = []
    for prompt, options in zip(prompts, choices):
        context = prefix + encode(tokenizer, prompt)
        shape.append(len(options))
        for option in options:
            full = prefix + encode(tokenizer, prompt + option)
            common = 0
            while common < min(len(context), len(full)) and context[common] == full[common]:
                common += 1
            if common >= len(full):
                raise ValueError(f"choice {option!r} adds no token to prompt {prompt!r}")
            sequences.append(full)
            starts.append(max(common, 1))
    scored = sequence_scores(model, sequences, starts, pad_id=pad_id(tokenizer), device=device)
    out: list[list[float]] = []
    position = 0
    for count in shape:
        out.append([-s.nll for s in scored[position : position + count]])
        position += count
    return out


def pad_id(tokenizer) -> int:
    for candidate in (tokenizer.pad_token_id, tokenizer.eos_token_id, 0):
        if candidate is not None:
            return int(candidate)
    return 0


@dataclass
class GenerationStats:
    prompts: int
    tokens: int
    seconds: float
    batch_size: int
    texts: list[str]


def generate(model, tokenizer, prompts: Sequence[str], *, batch_size: int, max_new_tokens: int, device: str) -> GenerationStats:
    import torch

    tokenizer.padding_side = "left"
    pad = pad_id(tokenizer)

    def run(chunk: Sequence[str], new_tokens: int) -> tuple[Any, Any]:
        batch = tokenizer(list(chunk), return_tensors="pt", padding=True, add_special_tokens=False).to(device)
        with torch.inference_mode():
            output = model.generate(
                **batch,
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=pad,
            )
        return batch, output

    run(prompts[: min(2, len(prompts))], 2)  # warm-up: first-call allocations are not throughput
    texts: list[str] = []
    tokens = 0
    seconds = 0.0
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        if device == "cuda":
            torch.cuda.synchronize()
        began = time.perf_counter()
        batch, output = run(chunk, max_new_tokens)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds += time.perf_counter() - began
        new = output[:, batch["input_ids"].shape[1] :]
        tokens += int(new.numel())
        texts.extend(tokenizer.batch_decode(new, skip_special_tokens=True))
    return GenerationStats(prompts=len(prompts), tokens=tokens, seconds=seconds, batch_size=batch_size, texts=texts)
