"""Downstream scores under sparsity (paper §4.1, App. A and K: Fig. 3, Tables 1 and 4-6; claims 1, 2, 3, 10).

Everything is computed from the suite's ``eval.csv`` / ``eval_items.npz`` (format: ``evaluation.results``),
one pair per run folder. Task scores are grouped as the paper averages them: commonsense reasoning (C.R.:
PIQA, SIQA, HellaSwag, WinoGrande, COPA), reading comprehension (R.C.: BoolQ, LAMBADA, TyDiQA F1 and TyDiQA
exact match, four numbers as in the paper's Table 5), the complex tasks of Table 6, and the tasks a model a
hundred times smaller than the paper's can do above chance (tiny: BLiMP, ARC-Easy, OpenBookQA). Each task
counts with its first metric (the one the paper averages); tasks split into several files (BLiMP's paradigms)
are averaged first, so that each benchmark weighs one part of its group.

Uncertainty: a group average's interval combines its tasks' 95 % intervals (independent, normal approximation);
a difference between settings is bootstrapped in pairs over the items, the same items under both, task by task.
Both cover only the sample of items: each run has one seed, and seed-to-seed variation is not in them.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import paper, style
from ..checks import check_choice
from ..evaluation import results as evres
from ..evaluation import stats
from ..paths import DATA
from ..profiles import by_profile

if TYPE_CHECKING:
    from IPython.display import Markdown

Z95 = 1.96
N_BOOT = 2000
MARGIN = 1.0  # points: a change smaller than this is what the paper calls negligible (its Table 1 Δ at p = 1 %)
NEAR = 0.05  # within 5 points of chance is "near random": the paper says so of its Table 6 (averages 1-7 above)
CETT_PPL = ("cett-ppl-1%", "cett-ppl-5%", "cett-ppl-10%")
SETTING_LABEL = {"dense": "Dense", **{s: s.upper() for s in CETT_PPL}}
METHODS = ("cett", "topk_token", "topk_layer", "fat", "zero")  # Fig. 3's series, in legend order
# benchmark key -> the spellings a task name may start with (lower case, letters and digits only)
ALIASES = {"siqa": ("siqa", "socialiqa"), "arceasy": ("arceasy", "arce"), "openbookqa": ("openbookqa", "obqa")}
# each paper table's columns: (column, component); a component is a benchmark key, or key:metric for TyDiQA
TABLES = {
    4: (("PIQA", "piqa"), ("SIQA", "siqa"), ("HellaSwag", "hellaswag"), ("WinoGrande", "winogrande"), ("COPA", "copa")),
    5: (("BoolQ acc", "boolq"), ("LAMBADA acc", "lambada"), ("TyDiQA F1", "tydiqa:f1"), ("TyDiQA acc", "tydiqa:em")),
    6: (("AGIEval acc", "agieval"), ("HumanEval pass@1", "humaneval"), ("MBPP pass@1", "mbpp"),
        ("GSM8K acc", "gsm8k"), ("MMLU acc", "mmlu"), ("BBH acc", "bbh")),
    "tiny": (("BLiMP", "blimp"), ("ARC-Easy", "arceasy"), ("OpenBookQA", "openbookqa")),
}  # fmt: skip
GROUPS = {"C.R.": TABLES[4], "R.C.": TABLES[5], "complex": TABLES[6], "tiny": TABLES["tiny"]}
GROUP_LABEL = {"C.R.": "commonsense reasoning", "R.C.": "reading comprehension", "complex": "complex tasks",
               "tiny": "tiny-model tasks"}  # fmt: skip
FIG3_GROUPS = ("C.R.", "R.C.", "tiny")  # the complex tasks sit at chance: no ranking of methods on them
DELTA_COLUMNS = ["run", "group", "setting", "delta", "lo", "hi"]
PAPER_LOADERS = {4: paper.table4, 5: paper.table5, 6: paper.table6}


# ----------------------------------------------------------------------------- statistics
# ----------------------------------------------------------------------------- reading and grouping


def component(task: str, metric: str, first: str) -> str | None:
    """The part of a paper average a row of eval.csv fills: the benchmark's key when ``metric`` is the task's
    first metric, ``tydiqa:f1`` / ``tydiqa:em`` for TyDiQA's two, None for tasks outside the paper's groups."""
    name, m = re.sub(r"[^a-z0-9]", "", task.lower()), re.sub(r"[^a-z0-9]", "", metric.lower())
    keys = {c.split(":")[0] for cols in GROUPS.values() for _, c in cols}
    key = next((k for k in sorted(keys) if name.startswith(ALIASES.get(k, (k,)))), None)
    if key == "tydiqa":
        return "tydiqa:f1" if m == "f1" else "tydiqa:em" if m in ("em", "exactmatch", "acc") else None
    return key if key and metric == first else None


def _rows(run: str, ev: evres.SuiteResult) -> pd.DataFrame:
    s = ev.scores.copy()
    first = s.drop_duplicates("task").set_index("task")["metric"]
    s["component"] = [component(t, m, first[t]) for t, m in zip(s["task"], s["metric"])]
    s[["lo", "hi"]] = [evres.interval(i) for i in s["interval"]]
    s.insert(0, "run", run)
    return s


def _group_rows(s: pd.DataFrame, group: str) -> pd.DataFrame:
    return s[s["component"].isin([c for _, c in GROUPS[group]])]


def group_average(rows: pd.DataFrame) -> dict:
    """One setting's group average: the mean over components of each component's mean over tasks, with a 95 %
    interval combining the tasks' intervals as independent normal errors (a single task keeps its own), the
    chance level averaged alike, and the mean activation ratio of the rows that measured one."""
    parts = rows.groupby("component", sort=False)
    var = (((rows["hi"] - rows["lo"]) / (2 * Z95)) ** 2).groupby(rows["component"]).sum() / parts.size() ** 2
    score, half = parts["score"].mean().mean(), Z95 * np.sqrt(var.sum()) / parts.ngroups
    lo, hi = (rows["lo"].iloc[0], rows["hi"].iloc[0]) if len(rows) == 1 else (max(score - half, 0), score + half)
    return dict(score=score, lo=lo, hi=hi, chance=parts["chance"].mean().mean(),
                activation_ratio=rows["activation_ratio"].mean(), parts=parts.ngroups)  # fmt: skip


def _groups(s: pd.DataFrame) -> pd.DataFrame:
    out = []
    for group in GROUPS:
        g = _group_rows(s, group)
        for setting, rows in g.groupby("setting", sort=False):
            out.append(dict(run=s["run"].iloc[0], group=group, setting=setting, method=rows["method"].iloc[0],
                            value=rows["value"].iloc[0], **group_average(rows)))  # fmt: skip
    out = pd.DataFrame(out)
    if len(out):  # dense computes every neuron: an unmeasured dense ratio is 1
        out.loc[(out["setting"] == "dense") & out["activation_ratio"].isna(), "activation_ratio"] = 1.0
        out["sparsity"] = 1 - out["activation_ratio"]
    return out


def paired(s: pd.DataFrame, items: dict[str, np.ndarray], group: str, terms: dict[str, float]) -> tuple:
    """(estimate, low, high) of a weighted sum of one run's group averages under several settings, e.g.
    ``{"cett-ppl-1%": 1, "dense": -1}`` for a Δ, bootstrapped in pairs: the same items are resampled under every
    setting, task by task, over the tasks scored under all of them. No interval where per-item scores are missing."""
    g = _group_rows(s, group)
    keys = set.intersection(*(set(zip(g["task"][g["setting"] == k], g["metric"][g["setting"] == k])) for k in terms))
    if not keys:
        return np.nan, np.nan, np.nan
    g = g[[(t, m) in keys for t, m in zip(g["task"], g["metric"])]]
    arrays = {(t, m, k): items.get(evres.item_key(t, k, m)) for t, m in keys for k in terms}
    lengths = {
        (t, m): {len(a) for (t2, m2, _), a in arrays.items() if (t2, m2) == (t, m) and a is not None} for t, m in keys
    }
    if any(a is None for a in arrays.values()) or any(len(n) > 1 for n in lengths.values()):
        est = sum(w * group_average(g[g["setting"] == k])["score"] for k, w in terms.items())
        return est, np.nan, np.nan
    parts: dict[str, list] = {}
    for r in g[g["setting"] == next(iter(terms))].itertuples():
        diff = sum(w * np.asarray(arrays[(r.task, r.metric, k)], float) for k, w in terms.items())
        parts.setdefault(r.component, []).append(diff)
    return stats.parts_average(list(parts.values()), N_BOOT)


def _deltas(s: pd.DataFrame, items: dict[str, np.ndarray]) -> pd.DataFrame:
    """Each setting's group average minus dense, bootstrapped in pairs over the items."""
    out = []
    for group in GROUPS:
        g = _group_rows(s, group)
        if not (g["setting"] == "dense").any():
            continue
        for setting in g["setting"][g["setting"] != "dense"].unique():
            delta, lo, hi = paired(s, items, group, {setting: 1.0, "dense": -1.0})
            out.append(dict(run=s["run"].iloc[0], group=group, setting=setting, delta=delta, lo=lo, hi=hi))
    return pd.DataFrame(out, columns=DELTA_COLUMNS)


def analyse(evals: dict[str, evres.SuiteResult], skipped: Sequence[str] = (), params: dict | None = None) -> dict:
    """Per run: every eval.csv row with its component, the group averages per setting and the Δ against dense.
    ``skipped`` names runs without an evaluation; ``params`` their non-embedding parameters (for labels)."""
    params = params or {}
    order = sorted(evals, key=lambda r: (params.get(r, np.inf), r))
    scores = [_rows(r, evals[r]) for r in order]
    deltas = [_deltas(s, evals[r].items) for r, s in zip(order, scores)]
    return dict(runs=order, skipped=list(skipped), params={r: params.get(r, np.nan) for r in order},
                items={r: evals[r].items for r in order},
                scores=pd.concat(scores or [pd.DataFrame()], ignore_index=True),
                groups=pd.concat([_groups(s) for s in scores] or [pd.DataFrame()], ignore_index=True),
                deltas=pd.concat(deltas or [pd.DataFrame(columns=DELTA_COLUMNS)], ignore_index=True))  # fmt: skip


def _suite():
    """The benchmark suite module; a clear error while this checkout lacks it."""
    name = f"{__package__.rpartition('.')[0]}.evaluation.suite"
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as err:
        if err.name != name:
            raise
        raise RuntimeError(
            "the smoke and full profiles run the benchmark suite (sparsing_lib.evaluation.suite), which this "
            "checkout does not have yet; use profile='replay' to read the committed eval.csv files"
        ) from err


def results(profile: str = "replay", runs: Sequence[str] | None = None) -> dict:
    """The downstream analysis under the profile contract.

    replay reads ``data/runs/*/eval.csv`` (and eval_items.npz) through ``evaluation.results.read``; runs without
    one are listed in ``skipped``. smoke asks the suite's ``smoke()`` for a tiny model scored on synthetic items
    on a CPU, saving nothing. full runs ``suite.evaluate_runs(data/runs, runs)`` on the runs' last checkpoints on
    a GPU, which writes each run's eval.csv with its provenance; the analysis then replays them."""
    folder = DATA / "runs"
    names = sorted(d.name for d in folder.iterdir() if (d / "config.json").exists()) if folder.exists() else []
    picked = [check_choice("runs", r, names) for r in runs] if runs is not None else names

    def replay() -> dict:
        have = [r for r in picked if (folder / r / "eval.csv").exists()]
        size = {r: json.loads((folder / r / "config.json").read_text())["model"]["non_embedding_params"] for r in have}
        out = analyse({r: evres.read(folder / r) for r in have}, [r for r in picked if r not in have], size)
        sweeps = {
            r: evres.read(folder / r / "eval_fig3") for r in have if (folder / r / "eval_fig3" / "eval.csv").exists()
        }
        if sweeps:  # otherwise Fig. 3 reads the main evaluations (``res.get("fig3", res)``)
            out["fig3"] = analyse(sweeps, params=size)
        return out

    def recompute(p: str) -> dict:
        suite = _suite()
        if p == "full":
            suite.evaluate_runs(folder, picked)
            return replay()
        out = suite.smoke(sweeps=suite.SWEEPS)
        out = out if isinstance(out, dict) else {"smoke": out}
        return analyse(out, params={r: ev.meta.get("non_embedding_params", np.nan) for r, ev in out.items()})

    return by_profile(profile, replay, recompute, save=lambda res: None)


# ----------------------------------------------------------------------------- formatting


def label(run: str) -> str:
    """A run's name for tables and legends: ``mini-160x3 ReLU``."""
    model, _, act = run.rpartition("-")
    return f"{model} {style.ACT_LABEL.get(act, act)}" if model else run


def _ci(x: float, lo: float, hi: float, signed: bool = False) -> str:
    f = "{:+.1f}" if signed else "{:.1f}"
    body = f.format(100 * x)
    return body if np.isnan(lo) else f"{body} [{f.format(100 * lo)}, {f.format(100 * hi)}]"


def call(lo: float, hi: float) -> str:
    """What a Δ interval says: a loss, a gain, within noise (covers 0), or no interval (no per-item scores)."""
    if np.isnan(lo) or np.isnan(hi):
        return "no interval"
    return "a loss" if hi < 0 else "a gain" if lo > 0 else "within noise"


def _no_data(res: dict) -> str:
    n = len(res["skipped"])
    return (
        f"No run has a downstream evaluation yet (none of the {n} run folders holds an eval.csv): there are no "
        "results of ours to show here."
    )


# ----------------------------------------------------------------------------- Fig. 3


def fig3(res: dict) -> Figure | Markdown:
    """Score against sparsity (1 - activation ratio, %) for CETT, Top-k, FAT-ε and the zero threshold: one row
    per run with a sweep, panels C.R., R.C. and the tiny-task average; bars are 95 % intervals, the grey line and
    band the dense score, the dashed line chance; large black-edged markers are CETT-PPL-1/5/10 %. Without any
    evaluation it returns a one-paragraph note (IPython Markdown) instead of a figure."""
    res = res.get("fig3", res)  # the sweeps may have run on a subset of items (their own folder)
    if not res["runs"]:
        from IPython.display import Markdown

        return Markdown(_no_data(res))
    g, panels = res["groups"], FIG3_GROUPS
    runs = [r for r in res["runs"] if g[(g["run"] == r) & ~g["setting"].isin(["dense", *CETT_PPL])].size] or res["runs"]
    styles = style.series_style(METHODS)
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.3 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        for ax, group in zip(row, panels):
            d = g[(g["run"] == run) & (g["group"] == group)]
            ax.set(title=f"{label(run)} — {group}", xlabel="sparsity ratio (%)", ylabel="score (%)")
            if d.empty:
                ax.text(0.5, 0.5, "not evaluated", ha="center", va="center", transform=ax.transAxes)
                continue
            dense = d[d["setting"] == "dense"]
            if len(dense):
                dn = dense.iloc[0]
                ax.axhline(100 * dn["score"], color="0.4", lw=1, label="dense")
                ax.axhspan(100 * dn["lo"], 100 * dn["hi"], color="0.85", zorder=0)
            ax.axhline(100 * d["chance"].iloc[0], color="0.3", ls="--", lw=1, label="chance")
            for m in METHODS:
                p = d[(d["method"] == m) & (d["setting"] != "dense") & d["sparsity"].notna()].sort_values("sparsity")
                if p.empty:
                    continue
                err = [100 * (p["score"] - p["lo"]), 100 * (p["hi"] - p["score"])]
                ax.errorbar(100 * p["sparsity"], 100 * p["score"], yerr=err, ms=5, lw=1, capsize=2,
                            label=style.METHOD_LABEL.get(m, m), **styles[m])  # fmt: skip
                ppl = p[p["setting"].isin(CETT_PPL)]
                ax.plot(100 * ppl["sparsity"], 100 * ppl["score"], ls="none", ms=10, mec="black", **styles[m])
                for x, y, s in zip(ppl["sparsity"], ppl["score"], ppl["setting"]):
                    ax.annotate(s.removeprefix("cett-ppl-"), (100 * x, 100 * y), fontsize=7, xytext=(4, 4),
                                textcoords="offset points")  # fmt: skip
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Downstream score against sparsity (our runs; 95 % intervals over items)")
    fig.tight_layout()
    return fig


def compare_methods(res: dict) -> pd.DataFrame:
    """Each Top-k, FAT-ε and zero-threshold point against the CETT curve at the same sparsity, interpolated
    linearly between the two CETT points around it (never extrapolated): the score difference with a paired
    bootstrap interval over the items, and whether CETT is beaten (interval above 0) or better (below 0)."""
    res = res.get("fig3", res)
    out, g = [], res["groups"]
    for (run, group), d in g[g["group"].isin(FIG3_GROUPS)].groupby(["run", "group"]) if len(g) else ():
        c = d[(d["method"] == "cett") & d["sparsity"].notna()].sort_values("sparsity")
        s = res["scores"][res["scores"]["run"] == run]
        for p in d[d["method"].isin(METHODS[1:]) & d["sparsity"].notna()].itertuples():
            i = int(np.searchsorted(c["sparsity"].to_numpy(), p.sparsity))
            if len(c) < 2 or not c["sparsity"].iloc[0] <= p.sparsity <= c["sparsity"].iloc[-1]:
                continue
            a, b = c.iloc[max(i - 1, 0)], c.iloc[max(i, 1)]
            w = (b["sparsity"] - p.sparsity) / (b["sparsity"] - a["sparsity"]) if b["sparsity"] > a["sparsity"] else 1.0
            diff, lo, hi = paired(s, res["items"][run], group, {p.setting: 1.0, a["setting"]: -w, b["setting"]: w - 1})
            out.append(dict(run=run, group=group, method=p.method, setting=p.setting, diff=diff, lo=lo, hi=hi,
                            beaten=lo > 0, better=hi < 0))  # fmt: skip
    return pd.DataFrame(out, columns=["run", "group", "method", "setting", "diff", "lo", "hi", "beaten", "better"])


# ----------------------------------------------------------------------------- tables


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
                    row[label(run)] = _ci(*x.iloc[0][["score", "lo", "hi"]]) if len(x) else None
                else:
                    x = d[(d["run"] == run) & (d["group"] == group) & (d["setting"] == setting)]
                    row[label(run)] = _ci(*x.iloc[0][["delta", "lo", "hi"]], signed=True) if len(x) else None
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
                row[name] = _ci(*(group_average(c)[k] for k in ("score", "lo", "hi"))) if len(c) else None
            a = g[(g["run"] == run) & (g["group"] == group) & (g["setting"] == setting)]
            row["Avg."] = _ci(*a.iloc[0][["score", "lo", "hi"]]) if len(a) else None
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


# ----------------------------------------------------------------------------- verdicts, numbers, claims


def delta_summary(res: dict, group: str, setting: str) -> str:
    """One sentence: what ``setting`` does to a group's average against dense, run by run."""
    d = res["deltas"]
    d = d[(d["group"] == group) & (d["setting"] == setting)]
    name = f"{SETTING_LABEL.get(setting, setting)} on the {GROUP_LABEL[group]} average ({group})"
    if d.empty:
        return f"{name}: not evaluated"
    calls = [call(lo, hi) for lo, hi in zip(d["lo"], d["hi"])]
    if len(d) == 1:
        r = d.iloc[0]
        return f"{name}: Δ {_ci(r['delta'], r['lo'], r['hi'], signed=True)} points, {calls[0]}"
    counts = ", ".join(f"{calls.count(c)} {c}" for c in dict.fromkeys(calls))
    w = d.loc[d["delta"].idxmin()]
    return (
        f"{name}: Δ {100 * d['delta'].min():+.1f} to {100 * d['delta'].max():+.1f} points over {len(d)} runs "
        f"({counts}); the largest drop {_ci(w['delta'], w['lo'], w['hi'], signed=True)} ({label(w['run'])})"
    )


def chance_summary(res: dict, group: str) -> str:
    """One sentence: in how many runs the dense group average, and how many dense task scores, lie above chance
    beyond their 95 % intervals."""
    g, s = res["groups"], res["scores"]
    dense = g[(g["group"] == group) & (g["setting"] == "dense")] if len(g) else g
    if dense.empty:
        return f"the {GROUP_LABEL[group]} were not evaluated"
    above = int((dense["lo"] > dense["chance"]).sum())
    t = _group_rows(s[s["setting"] == "dense"], group)
    t_above = int((t["lo"] > t["chance"]).sum())
    return (
        f"the dense {GROUP_LABEL[group]} average is above chance beyond its interval in {above} of {len(dense)} "
        f"runs ({100 * dense['score'].min():.1f}–{100 * dense['score'].max():.1f} % against a chance level of "
        f"{100 * dense['chance'].mean():.1f} %); {t_above} of {len(t)} dense task scores are above chance beyond "
        "their interval"
    )


def _sizes(res: dict) -> str:
    p = np.array([v for v in res["params"].values() if np.isfinite(v)])
    if not len(p):
        return "of unknown size"
    t3 = paper.table3().set_index("scale")["non_embedding_params"]
    lo, hi = t3["0.1B"] / p.max(), t3["1.2B"] / p.min()
    size = f"{p.min() / 1e6:.1f}" + (f"–{p.max() / 1e6:.1f}" if p.max() > p.min() else "")
    return f"with {size}M non-embedding parameters, {lo:,.0f} to {hi:,.0f} times fewer than the paper's 0.1B–1.2B"


def _verdict(good: int, bad: int, n: int) -> str:
    if n == 0 or good + bad == 0:
        return "untested"
    return "holds" if good == n else "does not hold" if 2 * bad > n else "partly holds"


def _upper_first(text: str) -> str:
    return text[:1].upper() + text[1:]


def _no_overlap(res: dict) -> str:
    """Why no point could be compared with CETT: no sweep, or no sweep point inside CETT's sparsity range."""
    g = res.get("fig3", res)["groups"]
    if not len(g):
        return "no sweep of the other methods was evaluated"
    pts = g[g["method"].isin(METHODS) & g["sparsity"].notna() & (g["setting"] != "dense")]
    cett, other = pts[pts["method"] == "cett"], pts[pts["method"] != "cett"]
    if other.empty or cett.empty:
        return "no sweep of the other methods was evaluated"
    return (
        f"no Top-k, FAT-ε or zero-threshold point lies inside the sparsity range of CETT's points "
        f"({100 * cett['sparsity'].min():.0f}–{100 * cett['sparsity'].max():.0f} % against "
        f"{100 * other['sparsity'].min():.0f}–{100 * other['sparsity'].max():.0f} %), so none is compared at equal "
        "sparsity"
    )


def claim_verdicts(res: dict) -> dict[int, tuple[str, str]]:
    """(verdict, note) for claims 1, 2, 3 (downstream half) and 10, from the intervals alone.

    1: at CETT-PPL-1 % no run loses more than MARGIN points on C.R. or R.C. (interval above -MARGIN): holds when
       every run-group pair says so, does not hold when most lose more beyond their interval (hi < -MARGIN).
    2: at CETT-PPL-10 % C.R. stays within MARGIN and R.C. loses beyond its interval, run by run.
    3: no Top-k, FAT-ε or zero-threshold point beats CETT at equal sparsity beyond the intervals.
    10: the dense complex-task average is within NEAR points of chance (its interval reaches that close)."""
    d, g, out = res["deltas"], res["groups"], {}
    if not res["runs"]:
        return {i: ("untested", "no run has a downstream evaluation yet") for i in (1, 2, 3, 10)}
    one = d[(d["setting"] == "cett-ppl-1%") & d["group"].isin(["C.R.", "R.C."]) & d["lo"].notna()]
    small, large = int((one["lo"] >= -MARGIN / 100).sum()), int((one["hi"] < -MARGIN / 100).sum())
    out[1] = (
        _verdict(small, large, len(one)),
        f"at CETT-PPL-1 %, {small} of {len(one)} run-group averages (C.R., R.C.) lose less than {MARGIN:.0f} point "
        f"within their interval and {large} more; " + delta_summary(res, "C.R.", "cett-ppl-1%") + "; "
        + delta_summary(res, "R.C.", "cett-ppl-1%"),
    )  # fmt: skip
    ten = d[(d["setting"] == "cett-ppl-10%") & d["lo"].notna()].set_index(["run", "group"])
    both = bad = n = 0
    for run in res["runs"]:
        if (run, "C.R.") in ten.index and (run, "R.C.") in ten.index:
            cr, rc, n = ten.loc[(run, "C.R.")], ten.loc[(run, "R.C.")], n + 1
            both += bool(cr["lo"] >= -MARGIN / 100 and rc["hi"] < 0)
            # against: C.R. clearly hurt, or R.C. clearly unhurt (its interval within the margin)
            bad += bool(cr["hi"] < -MARGIN / 100 or (rc["lo"] >= -MARGIN / 100 and rc["hi"] <= MARGIN / 100))
    out[2] = (
        _verdict(both, bad, n),
        f"at CETT-PPL-10 %, C.R. stays within {MARGIN:.0f} point while R.C. loses beyond its interval in {both} of "
        f"{n} runs; against the claim in {bad} (C.R. down by more than {MARGIN:.0f} point beyond its interval, "
        f"or R.C.'s whole interval within ±{MARGIN:.0f} point, far from the paper's drops of up to 6.5 points); "
        + delta_summary(res, "R.C.", "cett-ppl-10%"),
    )
    c = compare_methods(res)
    beaten, better = int(c["beaten"].sum()), int(c["better"].sum())
    out[3] = (
        _verdict(len(c) - beaten, beaten, len(c)),
        f"{len(c)} Top-k, FAT-ε and zero-threshold points compared with CETT at equal sparsity; CETT "
        f"beaten beyond the intervals at {beaten}, better at {better}"
        if len(c)
        else _no_overlap(res),
    )
    cx = g[(g["group"] == "complex") & (g["setting"] == "dense")] if len(g) else g
    near = int((cx["lo"] - cx["chance"] <= NEAR).sum())
    out[10] = (
        _verdict(near, len(cx) - near, len(cx)),
        f"the dense complex-task average is within {100 * NEAR:.0f} points of chance in {near} of {len(cx)} runs, "
        f"on models {_sizes(res)}"
        if len(cx)
        else "the complex tasks were not evaluated",
    )
    missing = _missing_complex(res)
    if missing and len(cx):  # an average over part of Table 6's benchmarks supports the claim only in part
        out[10] = ("partly holds" if out[10][0] == "holds" else out[10][0], f"{out[10][1]}; {missing}")
    return out


def _missing_complex(res: dict) -> str:
    """Which of Table 6's benchmarks no run was scored on ('' when all were, or when nothing was)."""
    done = set(res["scores"]["component"].dropna()) if len(res["scores"]) else set()
    missing = [column.split()[0] for column, key in TABLES[6] if key not in done]
    if not missing or not done:
        return ""
    n = len(TABLES[6])
    return f"{n - len(missing)} of the {n} benchmarks (not evaluated: {', '.join(missing)})"


def claims(res: dict) -> list[dict]:
    """Claims 1, 2, 3 (its downstream half; the perplexity half is the measuring chapter's) and 10, from our runs."""
    return [dict(id=i, verdict=v, basis="our runs", note=f"downstream half: {n}" if i == 3 else n)
            for i, (v, n) in claim_verdicts(res).items()]  # fmt: skip


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapter quotes, as text; without results, one 'no results yet' sentence."""
    typo = paper.TABLE1_TYPO
    out = {
        "paper_typo": f"{typo['printed']:+.1f} for the {typo['model']} {typo['group']} {typo['setting']} cell, where "
        f"its own Table 4 gives {typo['from_table4']:+.1f}",
        "margin": f"{MARGIN:.0f}",
        "near": f"{100 * NEAR:.0f}",
        "n_boot": f"{N_BOOT:,}",
    }
    verdicts = claim_verdicts(res)
    if not res["runs"]:
        out |= dict.fromkeys(("status", "fig3_text", "table1_text", "tiny_text"), _no_data(res)) | {"fig3_scope": ""}
        keys = [f"{k}_verdict" for k in ("fig3", "table1", "table4", "table5", "table6", "tiny")]
        return out | dict.fromkeys(keys, "untested: no run has a downstream evaluation yet")
    k = len(res["skipped"])
    skipped = f"; {k} run{' has' if k == 1 else 's have'} none yet" if k else ""
    out["status"] = (
        f"{len(res['runs'])} runs have a downstream evaluation ({', '.join(map(label, res['runs']))}), models "
        f"{_sizes(res)}{skipped}."
    )
    c = compare_methods(res)
    out["fig3_verdict"] = f"{verdicts[3][0]} ({verdicts[3][1]})"
    f3 = res.get("fig3", res)
    swept = (
        sorted(set(f3["groups"]["run"][~f3["groups"]["setting"].isin(["dense", *CETT_PPL])]))
        if len(f3["groups"])
        else []
    )
    most = int(f3["scores"]["items"].max()) if len(f3["scores"]) else 0
    out["fig3_scope"] = (
        f"The sweeps were scored for {', '.join(map(label, swept))} on at most {most:,} items per task, with their "
        "own dense and CETT-PPL points on the same items, so that every comparison in the figure is paired."
        if swept
        else "No run has the sweeps of Fig. 3 yet."
    )
    by_method = [f"{style.METHOD_LABEL.get(m, m)}: CETT beaten at {int(x['beaten'].sum())} of {len(x)} points, "
                 f"better at {int(x['better'].sum())}" for m, x in c.groupby("method")]  # fmt: skip
    out["fig3_text"] = "; ".join(by_method) + "." if by_method else _upper_first(_no_overlap(res)) + "."
    out["table1_verdict"] = f"claim 1 {verdicts[1][0]}; claim 2 {verdicts[2][0]}"
    out["table1_text"] = " ".join(
        "; ".join(delta_summary(res, grp, s) for s in CETT_PPL) + "." for grp in ("C.R.", "R.C.", "tiny")
    )
    for key, group in ((4, "C.R."), (5, "R.C."), (6, "complex"), ("tiny", "tiny")):
        out[f"table{key}_verdict" if key != "tiny" else "tiny_verdict"] = chance_summary(res, group)
    missing = _missing_complex(res)
    out["table6_verdict"] += f"; claim 10 {verdicts[10][0]}" + (f" on {missing}" if missing else "")
    out["tiny_text"] = "; ".join(delta_summary(res, "tiny", s) for s in CETT_PPL) + "."
    return out
