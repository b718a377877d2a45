"""Scoring of model answers on the evaluation set, and the figures the quality gate reads.

Two task types: multiple choice (``ceval``-style, the answer letter is extracted from free
text) and open dialogue (``dialogue-zh``: the share of keyword groups the answer covers, each
group matched by any of its synonyms). Scores are in [0, 1]; the model's quality score is the
mean of its per-task means, so a task with more items does not drown the others.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from statistics import fmean
from typing import Any

LETTERS = "ABCD"
_PATTERNS = [
    re.compile(r"(?:答案|选项|answer)\s*(?:是|为|is|:|：)?\s*[（(]?\s*([ABCD])\b", re.IGNORECASE),
    re.compile(r"^\s*[（(]?([ABCD])[)）.．、:：\s]", re.IGNORECASE),
    re.compile(r"^\s*([ABCD])\s*$", re.IGNORECASE),
]


@dataclass(frozen=True)
class EvalItem:
    id: str
    task: str
    prompt: str
    choices: list[str] | None = None
    answer: str | None = None
    keywords: list[list[str]] | None = None

    @staticmethod
    def from_json(value: dict[str, Any]) -> "EvalItem":
        task = value.get("task")
        if task not in ("ceval", "dialogue-zh"):
            raise ValueError(f"eval item {value.get('id')!r}: unknown task {task!r}")
        item = EvalItem(
            id=str(value["id"]),
            task=task,
            prompt=str(value["prompt"]),
            choices=value.get("choices"),
            answer=value.get("answer"),
            keywords=value.get("keywords"),
        )
        if task == "ceval" and (not item.choices or len(item.choices) != 4 or item.answer not in LETTERS):
            raise ValueError(f"eval item {item.id}: a ceval item needs 4 choices and an answer A-D")
        if task == "dialogue-zh" and not item.keywords:
            raise ValueError(f"eval item {item.id}: a dialogue item needs keyword groups")
        return item

    def render_prompt(self) -> str:
        if self.task == "ceval":
            options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(self.choices or []))
            return f"以下是单项选择题，请直接给出正确答案的选项字母。\n{self.prompt}\n{options}\n答案："
        return self.prompt


def extract_choice(text: str) -> str | None:
    """The answer letter in a model's reply ("B", "答案是 C", "(A) ...", "D. 铁"), or None."""
    for pattern in _PATTERNS:
        match = pattern.search(text.strip())
        if match:
            return match.group(1).upper()
    return None


def score_item(item: EvalItem, output: str) -> float:
    if item.task == "ceval":
        return 1.0 if extract_choice(output) == item.answer else 0.0
    groups = item.keywords or []
    lowered = output.lower()
    hits = sum(1 for group in groups if any(word.lower() in lowered for word in group))
    return hits / len(groups) if groups else 0.0


def task_scores(items: list[EvalItem], outputs: list[str]) -> dict[str, float]:
    if len(items) != len(outputs):
        raise ValueError(f"{len(items)} items but {len(outputs)} outputs")
    per_task: dict[str, list[float]] = {}
    for item, output in zip(items, outputs):
        per_task.setdefault(item.task, []).append(score_item(item, output))
    return {task: round(fmean(scores), 6) for task, scores in sorted(per_task.items())}


def quality_score(scores: dict[str, float]) -> float:
    return round(fmean(scores.values()), 6) if scores else 0.0


def quality_drop_pct(baseline: float, candidate: float) -> float:
    """Relative drop of the candidate's score vs the baseline's, in percent (negative: better)."""
    if baseline <= 0:
        return 0.0 if candidate >= baseline else 100.0
    return round((baseline - candidate) / baseline * 100, 4)
