"""Dense downstream averages across the scale family (paper App. K): the comparisons behind claims 8 and 9.

The paper's Tables 4 and 5 give every scale's dense averages; from them it claims that the averages rise with
scale (claim 9) and that ReLU and SiLU models reach comparable ones (claim 8). The same comparisons are made here
between our evaluated runs of the scale family (``models.SCALE_FAMILY``): width-depth, MoE and recipe-validation
runs differ from their neighbours in more than size, so they are left out.

A difference between two runs is bootstrapped in pairs over the items (``downstream_data.paired``): the suite
scores every run on the same benchmark items in the same order, so each resampled item counts for both runs at
once, which removes the items' shared difficulty from the interval. Where the per-item scores do not line up, the
two runs' intervals are combined as independent normal errors instead. Every interval covers only the sample of
items; seed-to-seed variation shows only where seeds of a run (``-s1``, ``-s2``) were evaluated too.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..evaluation import results as evres
from ..models import MINI, SCALE_FAMILY
from ..runs import parse_run, run_variant
from .downstream_data import paired
from .dynamics import recipe_label

SCALE_GROUPS = ("C.R.", "R.C.")  # the two averages App. K's claims are about (the complex tasks sit at chance)
FAMILY_COLUMNS = ["run", "model", "activation", "seed", "params", "tokens", "batch", "recipe"]
DIFF_COLUMNS = ["diff", "lo", "hi", "paired"]


def family(res: dict) -> pd.DataFrame:
    """One row per evaluated run of the scale family, by non-embedding parameters: model, activation, seed, the
    training tokens, batch (sequences) and recipe its config.json records (where replayed; "current" or "earlier",
    as the dynamics chapter labels runs), tokens per parameter, and each group's dense average with its interval.
    The runs' other evaluated seeds (``res["seeds"]``, where replayed) follow their seed-0 rows."""
    rows = [row for part in filter(None, (res, res.get("seeds"))) for row in _family_rows(part)]
    columns = FAMILY_COLUMNS + [f"{g}{s}" for g in SCALE_GROUPS for s in ("", " lo", " hi")]
    out = pd.DataFrame(rows, columns=columns)
    out["tokens per parameter"] = out["tokens"].astype(float) / out["params"].astype(float)
    return out.sort_values(["params", "activation", "seed"], kind="stable").reset_index(drop=True)


def _family_rows(part: dict) -> list[dict]:
    """``family``'s rows for one analysed set of runs (the seed-0 runs, or their other seeds)."""
    g, configs, rows = part["groups"], part.get("configs", {}), []
    for run in part["runs"]:
        try:
            model, act = parse_run(run)
        except ValueError:  # a smoke model or a name outside the grammar: not a scale of the family
            continue
        variant = run_variant(run)
        if MINI[model].kind not in SCALE_FAMILY or variant.split != 1:
            continue
        cfg = configs.get(run, {})
        train = cfg.get("train", {})
        row = dict(run=run, model=model, activation=act, seed=variant.seed, params=part["params"][run],
                   tokens=train.get("tokens", np.nan), batch=train.get("batch_size", np.nan),
                   recipe=recipe_label(run, cfg) if train else None)  # fmt: skip
        for group in SCALE_GROUPS:
            d = g[(g["run"] == run) & (g["group"] == group) & (g["setting"] == "dense")]
            score = d.iloc[0][["score", "lo", "hi"]].tolist() if len(d) else [np.nan] * 3
            row |= dict(zip((group, f"{group} lo", f"{group} hi"), score))
        rows.append(row)
    return rows


def between(res: dict, group: str, a: str, b: str) -> tuple[float, float, float, bool]:
    """(run b's dense ``group`` average minus run a's, low, high, paired): bootstrapped in pairs over the items
    the two runs share, or, where their per-item scores do not line up, from the two intervals as independent
    normal errors (paired False)."""
    s = res["scores"]
    rows = s[s["run"].isin([a, b]) & (s["setting"] == "dense")].assign(setting=lambda x: x["run"])
    items = {evres.item_key(t, r, m): res["items"][r].get(evres.item_key(t, "dense", m))
             for r, t, m in zip(rows["run"], rows["task"], rows["metric"])}  # fmt: skip
    diff, lo, hi = paired(rows, items, group, {b: 1.0, a: -1.0})
    if not np.isnan(lo):
        return diff, lo, hi, True
    g = res["groups"]
    ends = [g[(g["run"] == r) & (g["group"] == group) & (g["setting"] == "dense")] for r in (a, b)]
    if any(e.empty for e in ends):
        return np.nan, np.nan, np.nan, False
    (sa, la, ha), (sb, lb, hb) = (e.iloc[0][["score", "lo", "hi"]] for e in ends)
    half = np.hypot(ha - la, hb - lb) / 2  # each interval's half width, combined as independent errors
    return sb - sa, sb - sa - half, sb - sa + half, False


def seed_spread(res: dict) -> pd.DataFrame:
    """Per model, activation and group with two or more evaluated seeds: how many, and the range (largest minus
    smallest) of their dense averages, the only measure of seed-to-seed variation the runs give."""
    fam, rows = family(res), []
    for (model, act), d in fam.groupby(["model", "activation"], sort=False):
        for group in SCALE_GROUPS:
            x = d[group].dropna()
            if len(x) >= 2:
                rows.append(dict(model=model, activation=act, group=group, seeds=len(x), spread=x.max() - x.min()))
    return pd.DataFrame(rows, columns=["model", "activation", "group", "seeds", "spread"])


def rises(res: dict) -> pd.DataFrame:
    """Per activation and group: the seed-0 runs from the smallest to the largest evaluated scale, how many scales,
    the largest-minus-smallest difference with its interval, how many steps between neighbouring scales fall
    beyond their interval, and the largest seed range of that activation and group at any scale (NaN where no
    seeds were evaluated): seeds are trained at a few scales to stand for the seed noise of all of them."""
    fam, spread, rows = family(res), seed_spread(res), []
    base = fam[fam["seed"] == 0]
    for act, d in base.groupby("activation", sort=True):
        for group in SCALE_GROUPS:
            runs = d.dropna(subset=[group])
            row = dict(activation=act, group=group, scales=len(runs))
            if len(runs) >= 2:
                first, last = runs.iloc[0], runs.iloc[-1]
                steps = [between(res, group, x, y) for x, y in zip(runs["run"], runs["run"].iloc[1:])]
                sp = spread[(spread["activation"] == act) & (spread["group"] == group)]["spread"]
                row |= dict(smallest=first["run"], largest=last["run"], falls=sum(hi < 0 for _, _, hi, _ in steps),
                            seed_spread=sp.max() if len(sp) else np.nan)  # fmt: skip
                row |= dict(zip(DIFF_COLUMNS, between(res, group, first["run"], last["run"])))
            rows.append(row)
    columns = ["activation", "group", "scales", "smallest", "largest", *DIFF_COLUMNS, "falls", "seed_spread"]
    return pd.DataFrame(rows, columns=columns)


def act_gaps(res: dict) -> pd.DataFrame:
    """Per evaluated scale with both a seed-0 ReLU and SiLU run, and per group: the ReLU minus SiLU dense average
    with its interval (the same items under both)."""
    fam, rows = family(res), []
    base = fam[fam["seed"] == 0]
    for model, d in base.groupby("model", sort=False):
        by_act = d.set_index("activation")["run"]
        if {"relu", "silu"} <= set(by_act.index):
            for group in SCALE_GROUPS:
                gap = between(res, group, by_act["silu"], by_act["relu"])
                rows.append(dict(model=model, params=d["params"].iloc[0], group=group, **dict(zip(DIFF_COLUMNS, gap))))
    return pd.DataFrame(rows, columns=["model", "params", "group", *DIFF_COLUMNS])
