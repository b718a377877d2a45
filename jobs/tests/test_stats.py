"""The evaluation's statistics on inputs with known answers."""

import math
import random

import pytest

from qwenops_jobs import stats


def test_t_quantiles():
    assert stats.t_quantile_975(1) == pytest.approx(12.7062, abs=1e-4)
    assert stats.t_quantile_975(10) == pytest.approx(2.2281, abs=1e-4)
    assert stats.t_quantile_975(30) == pytest.approx(2.0423, abs=1e-4)
    # Beyond the table: the Cornish-Fisher expansion against published values.
    assert stats.t_quantile_975(40) == pytest.approx(2.0211, abs=2e-4)
    assert stats.t_quantile_975(60) == pytest.approx(2.0003, abs=2e-4)
    assert stats.t_quantile_975(120) == pytest.approx(1.9799, abs=2e-4)
    assert stats.t_quantile_975(10**6) == pytest.approx(1.95996, abs=1e-4)
    with pytest.raises(ValueError):
        stats.t_quantile_975(0)


def test_wilson_interval():
    low, high = stats.wilson(5, 10)
    assert (low, high) == (pytest.approx(0.2366, abs=1e-4), pytest.approx(0.7634, abs=1e-4))
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(0.2775, abs=1e-4)
    low, high = stats.wilson(10, 10)
    assert low == pytest.approx(0.7225, abs=1e-4) and high == 1.0
    low, high = stats.wilson(81, 263)
    assert (low, high) == (pytest.approx(0.2553, abs=1e-4), pytest.approx(0.3662, abs=1e-4))
    with pytest.raises(ValueError):
        stats.wilson(3, 0)
    with pytest.raises(ValueError):
        stats.wilson(11, 10)


def test_paired_accuracy_delta_by_hand():
    # acc_b = 1, acc_c = 0.5; differences [0, 0, 1, 1]: mean 0.5, sd sqrt(1/3), t(3) = 3.1824.
    delta = stats.accuracy_delta([True, True, True, True], [True, True, False, False])
    half = 3.1824 * math.sqrt(1 / 3) / 2
    assert delta.estimate_pct == pytest.approx(50.0)
    assert delta.low_pct == pytest.approx((0.5 - half) * 100, abs=1e-3)
    assert delta.high_pct == pytest.approx((0.5 + half) * 100, abs=1e-3)
    assert delta.items == 4 and delta.metric == "accuracy"
    document = delta.to_json()
    assert document["confidence"] == 0.95 and "paired t-interval" in document["method"]


def test_paired_accuracy_delta_scales_by_the_baseline_and_is_zero_width_when_identical():
    baseline = [True] * 60 + [False] * 40
    delta = stats.accuracy_delta(baseline, baseline)
    assert (delta.estimate_pct, delta.low_pct, delta.high_pct) == (0.0, 0.0, 0.0)
    candidate = [True] * 48 + [False] * 52  # 12 of the 60 right answers lost
    delta = stats.accuracy_delta(baseline, candidate)
    assert delta.estimate_pct == pytest.approx(20.0)  # (0.6 - 0.48) / 0.6
    assert delta.low_pct > 0  # clearly worse: the interval excludes 0
    better = stats.accuracy_delta(candidate, baseline)
    assert better.estimate_pct < 0
    with pytest.raises(ValueError):
        stats.accuracy_delta([True], [True, False])


def test_pairing_makes_the_interval_narrower_than_unpaired_noise():
    rng = random.Random(7)
    baseline = [rng.random() < 0.7 for _ in range(400)]
    candidate = [b if rng.random() < 0.97 else not b for b in baseline]  # 3 % of items flip
    delta = stats.accuracy_delta(baseline, candidate)
    assert delta.high_pct - delta.low_pct < 6  # percent points of relative accuracy


def test_paired_perplexity_delta():
    tokens = [10, 20, 30, 40]
    # The candidate's NLL is 0.1 nats per token higher on every item: exactly exp(0.1) - 1.
    delta = stats.perplexity_delta([t * 2.0 for t in tokens], tokens, [t * 2.1 for t in tokens], tokens)
    assert delta.estimate_pct == pytest.approx((math.exp(0.1) - 1) * 100)
    assert delta.low_pct == pytest.approx(delta.estimate_pct) and delta.high_pct == pytest.approx(delta.estimate_pct)
    assert delta.metric == "perplexity"


def test_paired_perplexity_delta_interval_by_hand():
    tokens = [10, 10, 10, 10]
    baseline = [20.0, 20.0, 20.0, 20.0]
    candidate = [21.0, 22.0, 20.0, 21.0]  # per-token differences 0.1, 0.2, 0.0, 0.1
    delta = stats.perplexity_delta(baseline, tokens, candidate, tokens)
    diffs = [0.1, 0.2, 0.0, 0.1]
    mean = sum(diffs) / 4
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / 3)
    half = 3.1824 * sd / 2
    assert delta.estimate_pct == pytest.approx((math.exp(mean) - 1) * 100)
    assert delta.low_pct == pytest.approx((math.exp(mean - half) - 1) * 100, abs=1e-3)
    assert delta.high_pct == pytest.approx((math.exp(mean + half) - 1) * 100, abs=1e-3)
    assert stats.perplexity([20.0] * 4, tokens) == pytest.approx(math.exp(2.0))


def test_statistics_are_linear_in_the_items():
    import time

    n = 200_000
    baseline = [i % 3 != 0 for i in range(n)]
    candidate = [i % 4 != 0 for i in range(n)]
    tokens = [50] * n
    started = time.perf_counter()
    stats.accuracy_delta(baseline, candidate)
    stats.perplexity_delta([100.0] * n, tokens, [101.0] * n, tokens)
    assert time.perf_counter() - started < 5
