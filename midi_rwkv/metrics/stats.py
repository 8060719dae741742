"""Statistics for comparing two systems on the same prompts (docs/original-release.md#paired-tests,
with its gaps closed).

Paired by prompt: a Wilcoxon signed-rank test on the per-prompt differences, Cohen's d of those
differences, bootstrap confidence intervals of means, and Holm's correction across the metrics of
one comparison (the original reported uncorrected p-values, when its tests ran at all, see
docs/original-release.md#paired-tests).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def bootstrap_ci(values, level: float = 0.95, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (NaNs dropped); (nan, nan) when empty."""
    values = np.asarray(values, dtype=float)
    values = values[~np.isnan(values)]
    if not len(values):
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(resamples, len(values)))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def cohens_d(differences) -> float:
    """mean(d) / std(d, ddof=1) of paired differences; NaN with fewer than 2 or no spread."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or np.std(d, ddof=1) == 0:
        return float("nan")
    return float(d.mean() / np.std(d, ddof=1))


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni adjusted p-values (NaNs stay NaN and do not count as tests)."""
    p = np.asarray(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    adjusted = np.full(len(p), np.nan)
    order = valid[np.argsort(p[valid], kind="stable")]
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p[index]))
        adjusted[index] = running
    return adjusted.tolist()


@dataclass
class PairedTest:
    metric: str
    n: int  # prompts where both systems have a value
    mean_difference: float  # b - a
    ci: tuple[float, float]  # of the mean difference
    statistic: float
    p_value: float
    p_holm: float
    cohens_d: float


def paired_test(metric: str, a: dict[str, float], b: dict[str, float], seed: int = 0) -> PairedTest:
    """Wilcoxon signed-rank (two-sided, zero_method 'wilcox') on b - a over prompts both have."""
    keys = sorted(k for k in a.keys() & b.keys() if not (np.isnan(a[k]) or np.isnan(b[k])))
    d = np.array([b[k] - a[k] for k in keys], dtype=float)
    statistic = p = float("nan")
    if len(d) and np.any(d != 0):
        from scipy import (
            stats as sps,
        )  # here, not at the top: scipy.stats takes ~1 s to import, and infill needs none of it

        result = sps.wilcoxon(d)
        statistic, p = float(result.statistic), float(result.pvalue)
    mean = float(d.mean()) if len(d) else float("nan")
    return PairedTest(metric, len(d), mean, bootstrap_ci(d, seed=seed), statistic, p, p, cohens_d(d))


def compare(
    metrics: list[str], a: dict[str, dict[str, float]], b: dict[str, dict[str, float]], seed: int = 0
) -> list[PairedTest]:
    """Paired tests of system b against a for each metric (``a[metric][prompt] = value``), Holm-corrected."""
    tests = [paired_test(m, a.get(m, {}), b.get(m, {}), seed) for m in metrics]
    for test, adjusted in zip(tests, holm([t.p_value for t in tests])):
        test.p_holm = adjusted
    return tests
