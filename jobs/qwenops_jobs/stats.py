"""Statistics of the evaluation (pure Python, linear in the number of items).

- ``wilson``: 95 % Wilson score interval of an accuracy.
- ``accuracy_delta``: relative accuracy drop of the candidate in percent,
  (acc_b - acc_c) / acc_b * 100, with a paired t-interval over the SAME items: per-item
  correctness differences d_i = correct_b,i - correct_c,i, mean +- t(0.975, n-1) * sd / sqrt(n),
  scaled by 100 / acc_b (acc_b taken as fixed).
- ``perplexity_delta``: relative perplexity increase in percent, (ppl_c / ppl_b - 1) * 100,
  i.e. exp(D) - 1 where D = NLL_c / T_c - NLL_b / T_b is the difference of the per-token mean
  NLLs; paired interval over items: D's standard error from the per-item influence values
  (a_i - D_c t_i) / mean(t) - (b_i - D_b u_i) / mean(u) (delta method for a ratio of sums),
  D +- t(0.975, n-1) * se, then through exp.

Positive = the candidate is worse.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Sequence

CONFIDENCE = 0.95
# Two-sided 95 % quantiles of Student's t for 1..30 degrees of freedom.
_T975 = (
    12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
    2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930, 2.0860,
    2.0796, 2.0739, 2.0687, 2.0639, 2.0595, 2.0555, 2.0518, 2.0484, 2.0452, 2.0423,
)
ACCURACY_METHOD = "paired t-interval over items on per-item correctness differences (baseline - candidate), scaled by 100 / baseline accuracy"
PERPLEXITY_METHOD = "paired t-interval over items on per-item NLL differences (delta method for the per-token mean), exp-transformed"


def t_quantile_975(df: int) -> float:
    """Student's t 0.975 quantile: exact table to 30 degrees of freedom, then the
    Cornish-Fisher expansion (error < 1e-4)."""
    if df < 1:
        raise ValueError("degrees of freedom must be >= 1")
    if df <= len(_T975):
        return _T975[df - 1]
    z = NormalDist().inv_cdf(0.975)
    return (
        z
        + (z**3 + z) / (4 * df)
        + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
        + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3)
    )


def wilson(correct: int, total: int) -> tuple[float, float]:
    if total <= 0:
        raise ValueError("no items")
    if not 0 <= correct <= total:
        raise ValueError(f"{correct} correct of {total}")
    z = NormalDist().inv_cdf(0.5 + CONFIDENCE / 2)
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if correct == 0 else max(0.0, centre - half)
    high = 1.0 if correct == total else min(1.0, centre + half)
    return low, high


def _mean_sd(values: Sequence[float]) -> tuple[float, float]:
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, 0.0
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))


@dataclass(frozen=True)
class Delta:
    metric: str
    estimate_pct: float
    low_pct: float
    high_pct: float
    items: int
    method: str

    def to_json(self) -> dict:
        return {
            "metric": self.metric,
            "estimatePct": round(self.estimate_pct, 4),
            "lowPct": round(self.low_pct, 4),
            "highPct": round(self.high_pct, 4),
            "confidence": CONFIDENCE,
            "items": self.items,
            "method": self.method,
        }


def accuracy_delta(baseline: Sequence[bool], candidate: Sequence[bool]) -> Delta:
    n = len(baseline)
    if n == 0 or n != len(candidate):
        raise ValueError(f"paired accuracy needs the same items: {len(baseline)} vs {len(candidate)}")
    acc_b = sum(1 for b in baseline if b) / n
    diffs = [float(bool(b)) - float(bool(c)) for b, c in zip(baseline, candidate)]
    mean, sd = _mean_sd(diffs)
    half = t_quantile_975(n - 1) * sd / math.sqrt(n) if n > 1 else 0.0
    method = ACCURACY_METHOD
    scale = 100 / acc_b if acc_b > 0 else 100.0
    if acc_b == 0:
        method += " (baseline accuracy 0: absolute difference in points)"
    return Delta("accuracy", mean * scale, (mean - half) * scale, (mean + half) * scale, n, method)


def perplexity_delta(
    baseline_nll: Sequence[float], baseline_tokens: Sequence[int], candidate_nll: Sequence[float], candidate_tokens: Sequence[int]
) -> Delta:
    n = len(baseline_nll)
    if n == 0 or not (n == len(baseline_tokens) == len(candidate_nll) == len(candidate_tokens)):
        raise ValueError("paired perplexity needs the same items for both models")
    total_b, total_c = sum(baseline_tokens), sum(candidate_tokens)
    if total_b <= 0 or total_c <= 0:
        raise ValueError("no scored tokens")
    mean_b = math.fsum(baseline_nll) / total_b
    mean_c = math.fsum(candidate_nll) / total_c
    diff = mean_c - mean_b
    avg_t_b, avg_t_c = total_b / n, total_c / n
    influence = [
        (nc - mean_c * tc) / avg_t_c - (nb - mean_b * tb) / avg_t_b
        for nb, tb, nc, tc in zip(baseline_nll, baseline_tokens, candidate_nll, candidate_tokens)
    ]
    _, sd = _mean_sd(influence)
    half = t_quantile_975(n - 1) * sd / math.sqrt(n) if n > 1 else 0.0

    def pct(log_ratio: float) -> float:
        return (math.exp(min(log_ratio, 700.0)) - 1) * 100

    return Delta("perplexity", pct(diff), pct(diff - half), pct(diff + half), n, PERPLEXITY_METHOD)


def perplexity(nll: Sequence[float], tokens: Sequence[int]) -> float:
    total = sum(tokens)
    if total <= 0:
        raise ValueError("no scored tokens")
    return math.exp(min(math.fsum(nll) / total, 700.0))
