"""When a training curve settles: the share of a run's tokens after which a measured series stays close to
where it ends, with an interval from checkpoint-to-checkpoint noise.

The paper remarks (§7) that activation sparsity converges much more slowly than the loss. To compare two
series with different units, each is measured against its own total change over the run: a series has
settled at the first checkpoint from which it stays within ``frac`` of that change of its end level. The end
level is the mean of the last few checkpoints, so one noisy last point does not define it. Noise makes the
settling point jumpy, so its interval shows how far it moves when the series' own checkpoint noise (its
residuals about a running mean in the second half of the run, where the trend is smooth) is added to it once
more, redrawn at random. Adding noise to measured points rather than to a smoothed trend avoids the bias a
smoother puts into a curve that still bends; the price is that the interval is a sensitivity to noise of the
measured size, not a sampling interval. One run gives one seed: it covers checkpoint noise only.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .checks import check_range
from .models import get_spec
from .runs import parse_run

END_POINTS = 3  # checkpoints averaged for a series' end level
TREND_WINDOW = 5  # checkpoints in the running mean that separates trend from noise
SERIES = {"val_loss": "validation loss", "activation_ratio": "activation ratio (CETT-PPL-1%)"}


def settling_fraction(tokens: np.ndarray, y: np.ndarray, frac: float = 0.1, end: int = END_POINTS) -> float:
    """The share of the run's tokens (last checkpoint = 1) at the first checkpoint from which ``y`` stays within
    ``frac`` of its total change (first checkpoint to end level) of its end level (the mean of the last ``end``
    checkpoints). NaN when the series does not change at all."""
    check_range("frac", frac, 0.0, 1.0)
    t, y = np.asarray(tokens, float), np.asarray(y, float)
    level = y[-end:].mean()
    band = frac * abs(y[0] - level)
    if band == 0:
        return float("nan")
    outside = np.flatnonzero(np.abs(y - level) > band)
    first = outside[-1] + 1 if len(outside) else 0
    return float(t[min(first, len(t) - 1)] / t[-1])


def remaining_share(tokens: np.ndarray, y: np.ndarray, at: float = 2 / 3, end: int = END_POINTS) -> float:
    """The share of a series' total change (first checkpoint to end level) still to come after ``at`` of the
    run's tokens: |y(at) - end level| / |y(first) - end level|, y(at) linearly interpolated."""
    t, y = np.asarray(tokens, float), np.asarray(y, float)
    level = y[-end:].mean()
    return float(abs(np.interp(at * t[-1], t, y) - level) / abs(y[0] - level))


def noise_residuals(y: np.ndarray) -> np.ndarray:
    """Checkpoint noise of a series: its residuals about a centred running mean over the second half of the
    run, where the trend is smooth enough that the residuals are noise rather than curvature (centred; the last
    checkpoints, whose window would be cut short, are left out because a cut window lags a trending series)."""
    y = np.asarray(y, float)
    trend = pd.Series(y).rolling(TREND_WINDOW, center=True).mean().to_numpy()  # NaN where the window is cut
    resid = (y - trend)[len(y) // 2 :]
    resid = resid[np.isfinite(resid)]
    return resid - resid.mean() if len(resid) else np.zeros(1)


def settling(tokens: np.ndarray, y: np.ndarray, frac: float = 0.1, n_boot: int = 200, seed: int = 0) -> dict:
    """``settling_fraction`` and ``remaining_share`` of one series, each with a 95% percentile interval over
    ``n_boot`` replicas of the series with its own checkpoint noise (``noise_residuals``, redrawn with
    replacement) added once more: how far the two numbers move under noise of the size measured."""
    t, y = np.asarray(tokens, float), np.asarray(y, float)
    resid, rng = noise_residuals(y), np.random.default_rng(seed)
    boot = [y + rng.choice(resid, len(y)) for _ in range(n_boot)]
    out = dict(settle=settling_fraction(t, y, frac), remaining=remaining_share(t, y))
    for key, fn in (
        ("settle", lambda s: settling_fraction(t, s, frac)),
        ("remaining", lambda s: remaining_share(t, s)),
    ):
        vals = [fn(s) for s in boot]
        lo, hi = np.nanpercentile(vals, [2.5, 97.5]) if n_boot else (np.nan, np.nan)
        out |= {f"{key}_lo": float(lo), f"{key}_hi": float(hi)}
    return out


def run_settling(runs: dict[str, dict], frac: float = 0.1, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """For each probed run (at least four checkpoints), when its validation loss and its CETT-PPL-1% activation
    ratio each settle (``settling``: the share of tokens after which a series stays within ``frac`` of its total
    change of its end level, and the share of that change left after two thirds of the run), with 95% intervals
    from checkpoint noise. ``order`` says whether the activation ratio settles later than the loss, earlier, or
    whether the two intervals overlap."""
    rows = []
    for name, r in runs.items():
        if "sparsity" not in r or len(r["sparsity"]) < 4 or "activation_ratio" not in r["sparsity"]:
            continue
        m, sp = r["metrics"].dropna(subset=["val_loss"]), r["sparsity"]
        row = dict(
            run=name, activation=r["config"]["activation"], params=get_spec(parse_run(name)[0]).non_embedding_params
        )
        for key, df in (("val_loss", m), ("activation_ratio", sp)):
            row |= {f"{key}_{k}": v for k, v in settling(df["tokens"], df[key], frac, n_boot, seed).items()}
        later = row["activation_ratio_settle_lo"] > row["val_loss_settle_hi"]
        earlier = row["activation_ratio_settle_hi"] < row["val_loss_settle_lo"]
        rows.append(row | dict(order="later" if later else "earlier" if earlier else "not separated"))
    return pd.DataFrame(rows)
