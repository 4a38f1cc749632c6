"""The downstream tables (paper Tables 1, 4-6, the tiny-task table and the scale table of App. K): our runs' scores
beside the paper's.

Every cell is a score or a Δ in points with its 95 % interval, formatted from the analysis of
``downstream_data``; the paper's printed rows for its smallest models (0.1B) follow ours.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .. import paper, style
from .downstream_data import CETT_PPL, GROUPS, TABLES, group_average
from .downstream_scale import SCALE_GROUPS, family

SETTING_LABEL = {"dense": "Dense", **{s: s.upper() for s in CETT_PPL}}
PAPER_LOADERS = {4: paper.table4, 5: paper.table5, 6: paper.table6}


def label(run: str) -> str:
    """A run's name for tables and legends: ``mini-160x3 ReLU``."""
    model, _, act = run.rpartition("-")
    return f"{model} {style.ACT_LABEL.get(act, act)}" if model else run


def ci(x: float, lo: float, hi: float, signed: bool = False) -> str:
    """A fraction as points with its 95 % interval, ``45.0 [44.1, 45.9]`` (signed for a Δ); the bare number where
    there is no interval (no per-item scores), so that a cell never shows an interval it does not have."""
    f = "{:+.1f}" if signed else "{:.1f}"

    def pts(v: float) -> str:
        return f.format(round(100 * v, 1) + 0.0)  # + 0.0: a value that rounds to zero prints as 0.0, never -0.0

    return pts(x) if np.isnan(lo) else f"{pts(x)} [{pts(lo)}, {pts(hi)}]"


def table1(res: dict) -> pd.DataFrame:
    """Paper Table 1 beside ours: per group the dense average and each CETT-PPL-p% Δ against it (points, 95 %
    intervals; Δ bootstrapped in pairs over items), one column per run, then the paper's 0.1B models and its
    average over ten. Without an evaluation: the paper's printed table alone."""
    printed = paper.table1().drop(columns=["paper_version", "source"])
    if not res["runs"]:
        return printed
    pt, g, d = printed.set_index(["group", "setting"]), res["groups"], res["deltas"]
    rows = []
    for group in ("C.R.", "R.C.", "tiny"):
        for setting in ("dense", *CETT_PPL):
            shown = "Dense" if setting == "dense" else f"Δ {SETTING_LABEL[setting]}"
            row = {"group": group, "setting": shown}
            for run in res["runs"]:
                if setting == "dense":
                    x = g[(g["run"] == run) & (g["group"] == group) & (g["setting"] == "dense")]
                    row[label(run)] = ci(*x.iloc[0][["score", "lo", "hi"]]) if len(x) else None
                else:
                    x = d[(d["run"] == run) & (d["group"] == group) & (d["setting"] == setting)]
                    row[label(run)] = ci(*x.iloc[0][["delta", "lo", "hi"]], signed=True) if len(x) else None
            for col in ("0.1B ReLU", "0.1B SiLU", "Avg."):
                key = (group, shown)
                row[f"paper {col}" if col != "Avg." else "paper Avg. (ten models)"] = (
                    pt.loc[key, col] if key in pt.index else np.nan
                )
            rows.append(row)
    return pd.DataFrame(rows)


def task_table(res: dict, which: int | str) -> pd.DataFrame:
    """Per-task scores (%, 95 % intervals) of every run under dense and CETT-PPL-p%, with the group average,
    followed by the paper's rows for its smallest models (0.1B ReLU and SiLU) where it printed the table."""
    cols = TABLES[which]
    s, g, rows = res["scores"], res["groups"], []
    group = next(k for k, v in GROUPS.items() if v == cols)
    for run in res["runs"]:
        for setting in ("dense", *CETT_PPL):
            r = s[(s["run"] == run) & (s["setting"] == setting)]
            if r.empty:
                continue
            row = {"model": label(run), "setting": SETTING_LABEL[setting]}
            for name, comp in cols:
                c = r[r["component"] == comp]
                row[name] = ci(*(group_average(c)[k] for k in ("score", "lo", "hi"))) if len(c) else None
            a = g[(g["run"] == run) & (g["group"] == group) & (g["setting"] == setting)]
            row["Avg."] = ci(*a.iloc[0][["score", "lo", "hi"]]) if len(a) else None
            row["chance"] = f"{100 * a.iloc[0]['chance']:.1f}" if len(a) else None
            rows.append(row)
    if which in PAPER_LOADERS:
        printed = PAPER_LOADERS[which]()
        for p in printed[printed["scale"] == "0.1B"].to_dict("records"):
            row = {"model": f"paper {p['scale']} {style.ACT_LABEL[p['activation']]}", "setting": p["setting"]}
            rows.append(row | {name: f"{p[name]:.1f}" for name, _ in cols} | {"Avg.": f"{p['Avg.']:.1f}"})
    return pd.DataFrame(rows)


def table4(res: dict) -> pd.DataFrame:
    """Paper Table 4 (commonsense reasoning) beside ours; see ``task_table``."""
    return task_table(res, 4)


def table5(res: dict) -> pd.DataFrame:
    """Paper Table 5 (reading comprehension: BoolQ, LAMBADA, TyDiQA F1 and exact match) beside ours."""
    return task_table(res, 5)


def table6(res: dict) -> pd.DataFrame:
    """Paper Table 6 (AGIEval, HumanEval, MBPP, GSM8K, MMLU, BBH) beside ours."""
    return task_table(res, 6)


def table_tiny(res: dict) -> pd.DataFrame:
    """The tasks our models can do above chance (BLiMP, ARC-Easy, OpenBookQA); the paper has no such table."""
    return task_table(res, "tiny")


def table_scale(res: dict) -> pd.DataFrame:
    """App. K across scales: per evaluated run of the scale family, its size, what it was trained on (tokens,
    batch, recipe: the confounds of a comparison across scales) and its dense C.R. and R.C. averages with 95 %
    intervals; then the paper's dense averages per scale (Tables 4 and 5, sizes from Table 3)."""
    rows = [{"model": r["model"], "activation": style.ACT_LABEL[r["activation"]], "seed": r["seed"],
             "non-embedding parameters (M)": r["params"] / 1e6, "training tokens (M)": r["tokens"] / 1e6,
             "tokens per parameter": r["tokens per parameter"], "batch (sequences)": r["batch"], "recipe": r["recipe"],
             **{f"{g} dense (%)": ci(r[g], r[f"{g} lo"], r[f"{g} hi"]) if np.isfinite(r[g]) else None
                for g in SCALE_GROUPS}}
            for r in family(res).to_dict("records")]  # fmt: skip
    t3 = paper.table3().set_index("scale")["non_embedding_params"]
    avg = {g: t[t["setting"] == "Dense"].set_index(["scale", "activation"])["Avg."]
           for g, t in zip(SCALE_GROUPS, (paper.table4(), paper.table5()))}  # fmt: skip
    for scale, act in avg["C.R."].index:
        rows.append({"model": f"paper {scale}", "activation": style.ACT_LABEL[act],
                     "non-embedding parameters (M)": t3[scale] / 1e6,
                     **{f"{g} dense (%)": f"{avg[g][(scale, act)]:.1f}" for g in SCALE_GROUPS}})  # fmt: skip
    return pd.DataFrame(rows)
