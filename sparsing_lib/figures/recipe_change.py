"""What the final sweep's single recipe changed: each run it replaced, kept in ``data/replaced``
(``benchmarks/keep_replaced.py``), beside the run of the same name now in ``data/runs``. The two differ in the
recipe (batch, warm-up, tokens) and are otherwise the same model, seed and corpus, so the difference is the
recipe's effect at that scale, for one seed (GPU kernels are not deterministic, so even a rerun of the same
recipe moves a little: ``data/runs/README.md`` gives 0.01 nats of validation loss for mini-336x7)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style
from ..paths import data_file
from ..runs import load_runs, parse_run
from . import mini_laws


def _row(r: dict, trend: pd.Series | None) -> dict:
    t, s = r["config"]["train"], r.get("sparsity")
    return {
        "batch (sequences)": t["batch_size"],
        "warm-up (M tokens)": (t.get("warmup_tokens") or t["warmup_frac"] * t["tokens"]) / 1e6,
        "tokens (M)": r["metrics"]["tokens"].iloc[-1] / 1e6,
        "final validation loss": r["metrics"]["val_loss"].dropna().iloc[-1],
        "CETT-PPL-1% ratio (%)": 100 * s["activation_ratio"].iloc[-1] if s is not None else np.nan,
        "change from start (points)": 100 * trend["start_change"] if trend is not None else np.nan,
        "change lo": 100 * trend["start_lo"] if trend is not None else np.nan,
        "change hi": 100 * trend["start_hi"] if trend is not None else np.nan,
    }


def compare(replaced: dict[str, dict], current: dict[str, dict]) -> pd.DataFrame:
    """One row per run and recipe ("earlier": the replaced folder, "current": the one in data/runs) for every
    run name found in both: the recipe's batch, warm-up and tokens, the final validation loss, the last
    checkpoint's CETT-PPL-1% activation ratio and its change from the start ratio (``mini_laws.trends``, with
    its checkpoint-noise interval)."""
    names = sorted(set(replaced) & set(current))
    rows = []
    for label, runs in (("earlier", replaced), ("current", current)):
        probed = {n: runs[n] for n in names if "sparsity" in runs[n]}
        trend = mini_laws.trends(probed).set_index("run") if probed else pd.DataFrame()
        for n in names:
            model, act = parse_run(n)
            tr = trend.loc[n] if n in trend.index else None
            rows.append({"run": n, "model": model, "activation": act, "recipe": label} | _row(runs[n], tr))
    return pd.DataFrame(rows)


def table(df: pd.DataFrame) -> pd.DataFrame:
    """The comparison as shown: one row per run and recipe (earlier first), the change with its interval in
    one column."""
    if df.empty:
        return df
    d = df.sort_values("run", kind="stable")
    out = d.drop(columns=["change lo", "change hi", "model"])
    out["activation"] = d["activation"].map(style.ACT_LABEL)
    out["change from start (points)"] = [
        f"{c:+.2f} [{lo:+.2f}, {hi:+.2f}]" if np.isfinite(c) else None
        for c, lo, hi in zip(d["change from start (points)"], d["change lo"], d["change hi"])
    ]
    return out.set_index(["run", "recipe"])


def sentence(df: pd.DataFrame) -> str:
    """Per replaced run: how the final validation loss, the activation ratio and its change moved."""
    if df.empty:
        return "No run of this profile has been replaced by a run of the current recipe."
    parts = []
    for n, g in df.groupby("run", sort=True):
        e, c = g.set_index("recipe").loc["earlier"], g.set_index("recipe").loc["current"]
        parts.append(
            f"{n}: batch {e['batch (sequences)']} to {c['batch (sequences)']} sequences, final validation loss "
            f"{e['final validation loss']:.3f} to {c['final validation loss']:.3f} nats "
            f"({c['final validation loss'] - e['final validation loss']:+.3f}), CETT-PPL-1% activation ratio "
            f"{e['CETT-PPL-1% ratio (%)']:.1f} to {c['CETT-PPL-1% ratio (%)']:.1f} %, its change from the start "
            f"ratio {e['change from start (points)']:+.2f} [{e['change lo']:+.2f}, {e['change hi']:+.2f}] to "
            f"{c['change from start (points)']:+.2f} [{c['change lo']:+.2f}, {c['change hi']:+.2f}] points"
        )
    return "; ".join(parts) + "."


def results(profile: str = "replay") -> pd.DataFrame:
    """The comparison of the committed runs (replay and full: ``data/replaced`` against ``data/runs``); the
    smoke profile trains no replaced run, so it compares none (``compare`` is tested on its own)."""
    if profile == "smoke":
        return compare({}, {})
    return compare(load_runs(data_file("replaced")), load_runs(data_file("runs")))
