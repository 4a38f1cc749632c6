"""The limit loss of a training run: ``loss = E + B·D^-β`` fitted to its validation losses, with a bootstrap
interval and a word on whether the data determine ``E``. Its own module because two chapters extrapolate with
it: the scale runs (dynamics, Fig. 14) and the width-depth variants (Fig. 6)."""

from __future__ import annotations

import numpy as np
from scipy.optimize import curve_fit

FIT_FROM = 0.1  # the limit fit uses validation points from this fraction of a run's tokens on (drops warm-up)
BOUND_TOL = 1e-3  # nats: a limit this close to 0 or to the lowest loss sits on the fit's bound (losses are ~3 nats)


def _power_law(d: np.ndarray, limit: float, b: float, beta: float) -> np.ndarray:
    return limit + b * d ** (-beta)


def _fit(d: np.ndarray, loss: np.ndarray) -> np.ndarray:
    lo = float(loss.min())
    p0 = [lo - 0.2, (loss[0] - lo + 0.2) * d[0] ** 0.5, 0.5]
    bounds = ([0.0, 0.0, 0.0], [lo, np.inf, 5.0])
    return curve_fit(_power_law, d, loss, p0=p0, bounds=bounds, maxfev=20000)[0]


def fit_limit_loss(tokens: np.ndarray, loss: np.ndarray, n_boot: int = 200, seed: int = 0) -> dict:
    """Fit ``loss = E + B·D^-β`` (D in millions of tokens) and return the limit ``E`` with a 95% percentile
    bootstrap interval over the points (``n_boot`` resamples; 0 gives no interval). The limit is bounded
    above by the lowest observed loss: a limit above a measured loss would mean the loss rises again.
    ``status`` says whether the data determine it: "on a bound" (the optimiser stopped at 0 or at the lowest
    loss, so the form, not the data, set the limit), "interval reaches 0" (no interval, or one that the data
    do not bound from below) or "determined"."""
    d, y = np.asarray(tokens, float) / 1e6, np.asarray(loss, float)
    limit, b, beta = _fit(d, y)
    boots, rng = [], np.random.default_rng(seed)
    for _ in range(n_boot):
        idx = np.sort(rng.integers(0, len(d), len(d)))
        if len(np.unique(idx)) < 4:
            continue
        try:
            boots.append(_fit(d[idx], y[idx])[0])
        except RuntimeError:  # a resample the optimiser cannot fit is left out, and counted
            continue
    lo_hi = np.percentile(boots, [2.5, 97.5]) if boots else (np.nan, np.nan)
    if limit <= BOUND_TOL or limit >= y.min() - BOUND_TOL:
        status = "on a bound"
    elif not np.isfinite(lo_hi[0]) or lo_hi[0] <= BOUND_TOL:
        status = "interval reaches 0"
    else:
        status = "determined"
    return dict(
        status=status,
        limit=float(limit),
        lo=float(lo_hi[0]),
        hi=float(lo_hi[1]),
        b=float(b),
        beta=float(beta),
        n_points=len(d),
        n_boot=len(boots),
    )
