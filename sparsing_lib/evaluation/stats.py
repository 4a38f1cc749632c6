"""Uncertainty of downstream scores: Wilson intervals, percentile bootstraps, paired differences, group means.

Every bootstrap here is seeded and vectorised (resamples are drawn in blocks of item indices), so a table
rebuilt from the same per-item scores gives the same intervals. Paired bootstraps resample the SAME items
for both settings, which is what makes a 1-point difference between dense and sparse on 2,000 shared items
resolvable although each score alone has an interval several points wide.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np

N_BOOT = 2000
_BLOCK = 1 << 22  # most item indices drawn at once (memory: 32 MiB of int64)


def wilson(successes: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (good near 0 and 1, unlike the normal interval)."""
    if n <= 0:
        return (math.nan, math.nan)
    z = _z(level)
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if successes <= 0 else max(0.0, centre - half)  # exact ends: no 1e-17 rounding past the score
    high = 1.0 if successes >= n else min(1.0, centre + half)
    return (low, high)


def _z(level: float) -> float:
    from scipy.stats import norm

    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level!r}")
    return float(norm.ppf(0.5 + level / 2))


def _boot_means(x: np.ndarray, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Means of ``n_boot`` resamples (with replacement) of ``x`` along its last axis; x: [n] or [k, n]."""
    n = x.shape[-1]
    rows = max(1, _BLOCK // max(n, 1))
    out = []
    for start in range(0, n_boot, rows):
        idx = rng.integers(0, n, size=(min(rows, n_boot - start), n))
        out.append(x[..., idx].mean(-1))
    return np.concatenate(out, axis=-1)


def _percentiles(samples: np.ndarray, level: float) -> tuple[float, float]:
    low, high = np.percentile(samples, [50 * (1 - level), 50 * (1 + level)])
    return float(low), float(high)


def bootstrap_mean(x: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``x`` (items resampled with replacement)."""
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return (math.nan, math.nan)
    return _percentiles(_boot_means(x, n_boot, np.random.default_rng(seed)), level)


def paired_difference(
    a: Sequence[float], b: Sequence[float], n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean(b) - mean(a), low, high): the difference between two settings scored on the same items, with
    a percentile interval from resampling the items jointly."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired scores need the same items: got {a.shape} and {b.shape}")
    if a.size == 0:
        return (math.nan, math.nan, math.nan)
    d = b - a
    return (float(d.mean()), *_percentiles(_boot_means(d, n_boot, np.random.default_rng(seed)), level))


def group_average(
    scores: Mapping[str, Sequence[float]], n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean over tasks of each task's mean score, low, high), each task resampled on its own items.

    Passing per-item differences (sparse - dense) gives the paired interval of a group's average change."""
    return parts_average([[v] for v in scores.values()], n_boot, seed, level)


def parts_average(
    parts: Sequence[Sequence[Sequence[float]]], n_boot: int = N_BOOT, seed: int = 0, level: float = 0.95
) -> tuple[float, float, float]:
    """(mean over parts of the mean over each part's tasks of the task's mean, low, high), every task resampled
    on its own items. A part is what the paper averages as one number: one benchmark, or a family of tasks
    such as BLiMP's 67 paradigms, which then weigh as one benchmark rather than 67."""
    if not parts or any(len(tasks) == 0 for tasks in parts):
        return (math.nan, math.nan, math.nan)
    rng = np.random.default_rng(seed)
    arrays = [[np.asarray(v, dtype=np.float64) for v in tasks] for tasks in parts]
    if any(v.size == 0 for tasks in arrays for v in tasks):
        raise ValueError("a task in the group has no items")
    point = float(np.mean([np.mean([v.mean() for v in tasks]) for tasks in arrays]))
    boots = np.mean([np.mean([_boot_means(v, n_boot, rng) for v in tasks], axis=0) for tasks in arrays], axis=0)
    return (point, *_percentiles(boots, level))
