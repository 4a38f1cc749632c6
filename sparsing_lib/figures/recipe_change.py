"""What the final sweep's single recipe changed: each run it replaced, kept in ``data/replaced/<revision>/``
(``benchmarks/keep_replaced.py``), beside the run of the same name now in ``data/runs``. The two differ in the
recipe (batch, warm-up, tokens) and are otherwise the same model, seed and corpus, so the difference is the
recipe's effect at that scale, for one seed. Some runs were trained again with the very same recipe and seed (to
evaluate them in one session); those reruns (``reruns``) differ only by GPU non-determinism, and measure how far
that alone moves a run, the yardstick for both the recipe comparisons and the seed ranges of the controls chapter."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import style
from ..paths import data_file
from ..runs import load_runs, parse_run
from ..train_config import recorded_config
from . import mini_laws

USED = "used in this book"  # the version of a run in data/runs


def _row(r: dict, trend: pd.Series | None) -> dict:
    t, s = recorded_config(r["config"]["train"]), r.get("sparsity")
    return {
        "batch (sequences)": t.batch_size,
        "warm-up (M tokens)": t.warmup_steps * t.tokens_per_step / 1e6,
        "tokens (M)": r["metrics"]["tokens"].iloc[-1] / 1e6,
        "final validation loss": r["metrics"]["val_loss"].dropna().iloc[-1],
        "CETT-PPL-1% ratio (%)": 100 * s["activation_ratio"].iloc[-1] if s is not None else np.nan,
        "change from start (points)": 100 * trend["start_change"] if trend is not None else np.nan,
        "change lo": 100 * trend["start_lo"] if trend is not None else np.nan,
        "change hi": 100 * trend["start_hi"] if trend is not None else np.nan,
    }


def compare(replaced: dict[str, dict[str, dict]], current: dict[str, dict]) -> pd.DataFrame:
    """One row per run and version for every run name found both among the replaced runs (``replaced``:
    revision -> runs kept from it) and in ``current``: each version (``recipe``: "replaced, <revision>" or
    ``USED``) with its batch, warm-up and tokens, whether its recorded training config is the used version's
    (``same recipe``: a rerun), the final validation loss, the last checkpoint's CETT-PPL-1% activation ratio and
    its change from the start ratio (``mini_laws.trends``, with its checkpoint-noise interval)."""
    versions = [(f"replaced, {rev}", runs) for rev, runs in sorted(replaced.items())] + [(USED, current)]
    names = sorted(set().union(*(set(r) for _, r in versions[:-1])) & set(current)) if replaced else []
    rows = []
    for label, runs in versions:
        here = [n for n in names if n in runs]
        probed = {n: runs[n] for n in here if "sparsity" in runs[n]}
        trend = mini_laws.trends(probed).set_index("run") if probed else pd.DataFrame()
        for n in here:
            model, act = parse_run(n)
            tr = trend.loc[n] if n in trend.index else None
            same = runs[n]["config"]["train"] == current[n]["config"]["train"]
            row = {"run": n, "model": model, "activation": act, "recipe": label, "same recipe": same}
            rows.append(row | _row(runs[n], tr))
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


def _interval(r: pd.Series) -> str:
    return f"{r['change from start (points)']:+.2f} [{r['change lo']:+.2f}, {r['change hi']:+.2f}]"


def sentence(df: pd.DataFrame) -> str:
    """Per replaced run and kept version of another recipe: how the batch, the final validation loss, the
    activation ratio and its change moved from that version to the run the book uses (reruns: ``rerun_sentence``)."""
    other = df[~df["same recipe"]].sort_values("run", kind="stable") if len(df) else df
    if other.empty:
        return "No run of this profile has replaced an earlier run of the same name and another recipe."
    used = df[df["recipe"] == USED].set_index("run")
    parts = []
    for _, e in other.iterrows():
        c = used.loc[e["run"]]
        loss, ratio = c["final validation loss"], c["CETT-PPL-1% ratio (%)"]
        parts.append(
            f"{e['run']}, {e['batch (sequences)']} sequences a step ({e['recipe']}) against {c['batch (sequences)']} "
            f"({USED}): final validation loss {e['final validation loss']:.3f} against {loss:.3f} nats "
            f"({loss - e['final validation loss']:+.3f}), CETT-PPL-1% activation ratio "
            f"{e['CETT-PPL-1% ratio (%)']:.1f} against {ratio:.1f} %, its change from the start ratio "
            f"{_interval(e)} against {_interval(c)} points"
        )
    return "; ".join(parts) + "."


def reruns(df: pd.DataFrame) -> pd.DataFrame:
    """Per run trained more than once with the same recorded recipe and seed: how many trainings, and the range
    (largest minus smallest) over them of the final validation loss, the last activation ratio and its change from
    the start ratio; what GPU non-determinism alone does to one run."""
    cols = ["run", "activation", "trainings", "final validation loss", "CETT-PPL-1% ratio (%)",
            "change from start (points)"]  # fmt: skip
    if df.empty:
        return pd.DataFrame(columns=cols)
    same = df[df["same recipe"]]
    rows = [
        {"run": n, "activation": g["activation"].iloc[0], "trainings": len(g)}
        | {c: g[c].max() - g[c].min() for c in cols[3:]}
        for n, g in same.groupby("run", sort=True)
        if len(g) > 1
    ]
    return pd.DataFrame(rows, columns=cols)


def rerun_sentence(df: pd.DataFrame) -> str:
    """The reruns (``reruns``) in words: per run, the trainings and the ranges of its numbers."""
    r = reruns(df)
    if r.empty:
        return "No run of this profile was trained twice with the same recipe and seed."
    return "; ".join(
        f"{x['run']} ({x['trainings']} trainings): final validation loss over {x['final validation loss']:.3f} "
        f"nats, last activation ratio over {x['CETT-PPL-1% ratio (%)']:.2f} points, its change from the start "
        f"ratio over {x['change from start (points)']:.2f} points"
        for _, x in r.iterrows()
    )


def results(profile: str = "replay") -> pd.DataFrame:
    """The comparison of the committed runs (replay and full: each ``data/replaced/<revision>`` against
    ``data/runs``); the smoke profile trains no replaced run, so it compares none (``compare`` is tested on its
    own)."""
    if profile == "smoke":
        return compare({}, {})
    kept = data_file("replaced")
    revisions = sorted(p for p in kept.iterdir() if p.is_dir()) if kept.is_dir() else []
    kept_runs = {p.name: load_runs(p, variants=True) for p in revisions}  # a seed run's reruns are kept too
    return compare(kept_runs, load_runs(data_file("runs"), variants=True))
