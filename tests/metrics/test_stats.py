"""Statistics against scipy and hand-computed values on known data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from midi_rwkv.metrics import bootstrap_ci, cohens_d, compare, holm, paired_test

A = {f"p{i}": v for i, v in enumerate([0.61, 0.55, 0.70, 0.42, 0.58, 0.66, 0.49, 0.52, 0.60, 0.71, 0.45, 0.63])}
SHIFT = [0.08, 0.03, 0.11, -0.02, 0.05, 0.09, 0.04, 0.12, -0.01, 0.07, 0.06, 0.10]
B = {k: v + d for (k, v), d in zip(A.items(), SHIFT)}


def test_paired_test_matches_scipy_wilcoxon_and_d():
    test = paired_test("cp", A, B)
    d = np.array([B[k] - A[k] for k in sorted(A)])
    expected = sps.wilcoxon(d)
    assert test.n == 12
    assert test.statistic == pytest.approx(expected.statistic)
    assert test.p_value == pytest.approx(expected.pvalue)
    assert test.mean_difference == pytest.approx(np.mean(SHIFT))
    assert test.cohens_d == pytest.approx(np.mean(d) / np.std(d, ddof=1))
    assert test.ci[0] < test.mean_difference < test.ci[1]


def test_paired_test_skips_prompts_missing_or_nan_in_either():
    b = dict(B, p0=float("nan"))
    del b["p1"]
    assert paired_test("cp", A, b).n == 10


def test_holm_by_hand():
    # sorted 0.01, 0.02, 0.04 with 3 tests: 0.03, max(0.03, 0.04), max(0.04, 0.04)
    assert holm([0.04, 0.01, 0.02]) == pytest.approx([0.04, 0.03, 0.04])
    adjusted = holm([0.5, float("nan"), 0.01])
    assert adjusted[0] == pytest.approx(0.5) and math.isnan(adjusted[1]) and adjusted[2] == pytest.approx(0.02)


def test_compare_applies_holm_across_metrics():
    tests = compare(["cp", "gs"], {"cp": A, "gs": A}, {"cp": B, "gs": B})
    assert tests[0].p_holm == pytest.approx(min(1.0, 2 * tests[0].p_value))


def test_cohens_d_and_bootstrap_edge_cases():
    assert cohens_d([1.0, 2.0, 3.0]) == pytest.approx(2.0)
    assert math.isnan(cohens_d([1.0]))
    assert math.isnan(cohens_d([2.0, 2.0]))
    assert all(math.isnan(x) for x in bootstrap_ci([float("nan")]))


def test_bootstrap_ci_matches_the_normal_interval_of_the_mean():
    """For 400 normal draws, the percentile bootstrap of the mean is close to mean +- z * s / sqrt(n)."""
    values = np.random.default_rng(7).normal(3.0, 2.0, size=400)
    half = lambda z: z * values.std(ddof=1) / math.sqrt(len(values))  # noqa: E731
    for level, z in ((0.95, 1.959964), (0.5, 0.674490)):
        low, high = bootstrap_ci(values, level=level, resamples=8000, seed=1)
        assert low == pytest.approx(values.mean() - half(z), abs=0.1 * half(z))
        assert high == pytest.approx(values.mean() + half(z), abs=0.1 * half(z))
    assert bootstrap_ci(values, seed=3) == bootstrap_ci(values, seed=3)
