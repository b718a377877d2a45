#!/usr/bin/env python3
"""Reference values for the canary judge's statistics (src/analysis/statistics.ts), from scipy.

Writes test/fixtures/scipy-reference.json: fixed inputs and what scipy computes for them,
    - scipy.stats.mannwhitneyu(x, y, method="asymptotic", use_continuity=True),
      alternative "greater" and "two-sided", on weighted samples expanded to plain arrays;
    - scipy.stats.fisher_exact(table, alternative="greater");
    - scipy.stats.binomtest(k, n, p, alternative="greater" / "less").
The vitest unit test test/unit/analysis/statistics.test.ts checks the TypeScript functions
against the file; jobs/tests/test_scipy_reference.py recomputes it with real scipy and
checks that the committed file still matches.

    python3 -m venv /tmp/scipy-venv && /tmp/scipy-venv/bin/pip install scipy
    /tmp/scipy-venv/bin/python scripts/scipy-reference.py            # rewrite the fixture
    /tmp/scipy-venv/bin/python scripts/scipy-reference.py --check    # compare only
"""

from __future__ import annotations

import json
import math
import random
import sys
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "test" / "fixtures" / "scipy-reference.json"


def _log_grid_sample(rng: random.Random, n: int, median_ms: float, sigma: float) -> dict:
    """Lognormal latencies binned like the probe does: 1 % log grid from 1 us, 4 significant digits."""
    g = math.log1p(0.01)
    counts: dict[float, int] = {}
    for _ in range(n):
        v = median_ms * math.exp(rng.gauss(0.0, sigma))
        k = math.floor(math.log(v / 0.001) / g)
        centre = float(f"{0.001 * math.exp((k + 0.5) * g):.4g}")
        counts[centre] = counts.get(centre, 0) + 1
    values = sorted(counts)
    return {"values": values, "counts": [counts[v] for v in values]}


def _mwu_cases() -> list[dict]:
    rng = random.Random(20261206)
    buckets = [5, 10, 20, 40, 80, 160, 250, 500, 1000, 2500, 5000, 10000, 20000]
    cases = [
        {
            "name": "distinct values, canary higher",
            "x": {"values": [3, 5, 6, 8, 9, 11, 12], "counts": [1] * 7},
            "y": {"values": [1, 2, 4, 7, 10], "counts": [1] * 5},
        },
        {
            "name": "weighted samples with ties across and within samples",
            "x": {"values": [100, 110, 120, 150, 300], "counts": [5, 10, 3, 2, 1]},
            "y": {"values": [90, 100, 105, 120], "counts": [4, 8, 6, 2]},
        },
        {
            "name": "canary lower (greater fails, two-sided small)",
            "x": {"values": [10, 11, 12, 13], "counts": [6, 7, 8, 9]},
            "y": {"values": [12, 13, 14, 15, 16], "counts": [5, 6, 7, 8, 9]},
        },
        {
            "name": "identical distributions",
            "x": {"values": [50, 60, 70, 80], "counts": [10, 20, 20, 10]},
            "y": {"values": [50, 60, 70, 80], "counts": [10, 20, 20, 10]},
        },
        {
            "name": "histogram buckets (vLLM-like le bounds in ms, every observation at its bucket bound)",
            "x": {"values": buckets, "counts": [0, 0, 3, 20, 60, 90, 70, 40, 12, 4, 1, 0, 0]},
            "y": {"values": buckets, "counts": [0, 1, 8, 45, 95, 80, 50, 15, 5, 1, 0, 0, 0]},
        },
        {
            "name": "log-grid lognormal A/A, 300 vs 300",
            "x": _log_grid_sample(rng, 300, 120.0, 0.35),
            "y": _log_grid_sample(rng, 300, 120.0, 0.35),
        },
        {
            "name": "log-grid lognormal canary 1.5x, 300 vs 298",
            "x": _log_grid_sample(rng, 300, 180.0, 0.35),
            "y": _log_grid_sample(rng, 298, 120.0, 0.35),
        },
        {
            "name": "log-grid lognormal canary 3x, 400 vs 400 (deep tail p-value)",
            "x": _log_grid_sample(rng, 400, 360.0, 0.25),
            "y": _log_grid_sample(rng, 400, 120.0, 0.25),
        },
        {
            "name": "log-grid small samples 1.1x, 30 vs 30",
            "x": _log_grid_sample(rng, 30, 132.0, 0.3),
            "y": _log_grid_sample(rng, 30, 120.0, 0.3),
        },
    ]
    return cases


FISHER_TABLES = [
    [[1, 29], [0, 30]],
    [[6, 294], [0, 300]],
    [[0, 30], [0, 30]],
    [[3, 97], [1, 99]],
    [[20, 980], [5, 995]],
    [[50, 50], [10, 90]],
    [[200, 9800], [100, 9900]],
    [[2, 298], [9, 291]],
    [[30, 0], [0, 30]],
]

BINOMIAL_CASES = [
    [1, 30, 0.01],
    [0, 30, 0.01],
    [6, 300, 0.01],
    [3, 1000, 0.01],
    [10, 100, 0.05],
    [25, 1000, 0.01],
    [1100, 100000, 0.01],
    [5, 300, 0.01],
    [30, 30, 0.5],
]


def _expand(sample: dict) -> list[float]:
    out: list[float] = []
    for v, c in zip(sample["values"], sample["counts"]):
        out.extend([float(v)] * int(c))
    return out


def build_reference() -> dict:
    import scipy
    from scipy import stats

    mwu = []
    for case in _mwu_cases():
        x, y = _expand(case["x"]), _expand(case["y"])
        greater = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic", use_continuity=True)
        two = stats.mannwhitneyu(x, y, alternative="two-sided", method="asymptotic", use_continuity=True)
        mwu.append(
            {
                **case,
                "n1": len(x),
                "n2": len(y),
                "u1": float(greater.statistic),
                "pGreater": float(greater.pvalue),
                "pTwoSided": float(two.pvalue),
            }
        )
    fisher = []
    for table in FISHER_TABLES:
        res = stats.fisher_exact(table, alternative="greater")
        fisher.append({"table": table, "pGreater": float(res.pvalue)})
    binomial = []
    for k, n, p in BINOMIAL_CASES:
        binomial.append(
            {
                "k": k,
                "n": n,
                "p": p,
                "pGreater": float(stats.binomtest(k, n, p, alternative="greater").pvalue),
                "pLess": float(stats.binomtest(k, n, p, alternative="less").pvalue),
            }
        )
    return {
        "generatedBy": "scripts/scipy-reference.py",
        "scipy": scipy.__version__,
        "mannWhitneyU": mwu,
        "fisherExactGreater": fisher,
        "binomialTest": binomial,
    }


def close(a, b, rel: float = 1e-9, abs_tol: float = 1e-300) -> bool:
    """Deep comparison: numbers within a relative tolerance, everything else equal."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(close(a[k], b[k], rel, abs_tol) for k in a if k != "scipy")
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(close(p, q, rel, abs_tol) for p, q in zip(a, b))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return math.isclose(a, b, rel_tol=rel, abs_tol=abs_tol)
    return a == b


def main(argv: list[str]) -> int:
    reference = build_reference()
    if "--check" in argv:
        committed = json.loads(FIXTURE.read_text())
        if close(committed, reference):
            print(f"{FIXTURE} matches scipy {reference['scipy']}")
            return 0
        print(f"{FIXTURE} differs from scipy {reference['scipy']}: rerun without --check", file=sys.stderr)
        return 1
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(reference, indent=1) + "\n")
    print(f"wrote {FIXTURE} (scipy {reference['scipy']})")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
