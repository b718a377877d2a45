"""The canary judge's statistics fixture (test/fixtures/scipy-reference.json) against real scipy.

The TypeScript judge (src/analysis/statistics.ts) is checked against the committed fixture by
test/unit/analysis/statistics.test.ts; this recomputes every value with scipy, so a fixture that
drifted from what scipy says fails here. Regenerate with `python scripts/scipy-reference.py`.
"""

from __future__ import annotations

import importlib.util
import json
import math

from conftest import REPO_ROOT

SCRIPT = REPO_ROOT / "scripts" / "scipy-reference.py"


def _reference_module():
    spec = importlib.util.spec_from_file_location("scipy_reference", SCRIPT)
    assert spec and spec.loader, f"cannot load {SCRIPT}"
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_fixture_matches_scipy():
    try:
        import scipy  # noqa: F401
    except ImportError as err:  # never a skip: setup installs it (jobs/requirements-test.txt)
        raise AssertionError("scipy is missing from the jobs venv: run make setup") from err
    module = _reference_module()
    committed = json.loads(module.FIXTURE.read_text())
    fresh = module.build_reference()
    assert [c["name"] for c in committed["mannWhitneyU"]] == [c["name"] for c in fresh["mannWhitneyU"]]
    for old, new in zip(committed["mannWhitneyU"], fresh["mannWhitneyU"]):
        assert old["x"] == new["x"] and old["y"] == new["y"], f"inputs of {old['name']} changed"
        assert old["u1"] == new["u1"], old["name"]
        for key in ("pGreater", "pTwoSided"):
            assert math.isclose(old[key], new[key], rel_tol=1e-9, abs_tol=1e-300), (old["name"], key)
    assert module.close(committed, fresh), "fixture differs from scipy: rerun scripts/scipy-reference.py"


def test_reference_values_are_what_scipy_documents():
    """A few values by hand, so a broken generator cannot agree with a broken fixture."""
    from scipy import stats

    # 1 error in 30 vs none: Fisher one-sided p = 1/2 exactly (30 of 60 rows are the canary's).
    assert stats.fisher_exact([[1, 29], [0, 30]], alternative="greater").pvalue == 0.5
    # P(X >= 1) for Binomial(30, 0.01) = 1 - 0.99^30.
    p = stats.binomtest(1, 30, 0.01, alternative="greater").pvalue
    assert math.isclose(p, 1 - 0.99**30, rel_tol=1e-12)
    # Fully separated samples: U1 = n1 * n2.
    res = stats.mannwhitneyu([4, 5, 6], [1, 2, 3], alternative="greater", method="asymptotic")
    assert res.statistic == 9
