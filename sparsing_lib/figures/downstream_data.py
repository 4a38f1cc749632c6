"""Downstream evaluation results as the paper averages them (paper §4.1, App. A and K), for Fig. 3 and Tables 1, 4-6.

Everything is computed from the suite's ``eval.csv`` / ``eval_items.npz`` (format: ``evaluation.results``),
one pair per run folder. Task scores are grouped as the paper averages them: commonsense reasoning (C.R.:
PIQA, SIQA, HellaSwag, WinoGrande, COPA), reading comprehension (R.C.: BoolQ, LAMBADA, TyDiQA F1 and TyDiQA
exact match, four numbers as in the paper's Table 5), the complex tasks of Table 6, and the tasks a model a
hundred times smaller than the paper's can do above chance (tiny: BLiMP, ARC-Easy, OpenBookQA). Each task
counts with its first metric (the one the paper averages); tasks split into several files (BLiMP's paradigms)
are averaged first, so that each benchmark weighs one part of its group.

Uncertainty: a group average's interval combines its tasks' 95 % intervals (independent, normal approximation);
a difference between settings is bootstrapped in pairs over the items, the same items under both, task by task.
Both cover only the sample of items, not seed-to-seed variation: that shows only where other seeds of a run
(``-s1``, ``-s2``) were evaluated, which ``results`` analyses apart (``res["seeds"]``) so that the tables and
verdicts over runs keep one run per model and activation.

This module analyses; ``downstream_tables`` and ``downstream`` (Fig. 3) present, ``downstream_verdicts`` judges.
"""

from __future__ import annotations

import importlib
import json
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from ..checks import check_choice
from ..evaluation import results as evres
from ..evaluation import stats
from ..paths import DATA
from ..profiles import by_profile
from ..runs import plain_name, run_folders, run_variant

Z95 = 1.96
N_BOOT = 2000
CETT_PPL = ("cett-ppl-1%", "cett-ppl-5%", "cett-ppl-10%")
METHODS = ("cett", "topk_token", "topk_layer", "fat", "zero")  # Fig. 3's series, in legend order
# benchmark key -> the spellings a task name may start with (lower case, letters and digits only)
ALIASES = {"siqa": ("siqa", "socialiqa"), "arceasy": ("arceasy", "arce"), "openbookqa": ("openbookqa", "obqa")}
# task names that start like a benchmark key but are scored apart from the paper's average of it: AGIEval's MATH
# cloze set is generation-scored, while the paper's AGIEval is its likelihood-scored choices (evaluation.tasks)
APART = ("agievalmath",)
# each paper table's columns: (column, component); a component is a benchmark key, or key:metric for TyDiQA
TABLES = {
    4: (("PIQA", "piqa"), ("SIQA", "siqa"), ("HellaSwag", "hellaswag"), ("WinoGrande", "winogrande"), ("COPA", "copa")),
    5: (("BoolQ acc", "boolq"), ("LAMBADA acc", "lambada"), ("TyDiQA F1", "tydiqa:f1"), ("TyDiQA acc", "tydiqa:em")),
    6: (("AGIEval acc", "agieval"), ("HumanEval pass@1", "humaneval"), ("MBPP pass@1", "mbpp"),
        ("GSM8K acc", "gsm8k"), ("MMLU acc", "mmlu"), ("BBH acc", "bbh")),
    "tiny": (("BLiMP", "blimp"), ("ARC-Easy", "arceasy"), ("OpenBookQA", "openbookqa")),
}  # fmt: skip
GROUPS = {"C.R.": TABLES[4], "R.C.": TABLES[5], "complex": TABLES[6], "tiny": TABLES["tiny"]}
FIG3_GROUPS = ("C.R.", "R.C.", "tiny")  # the complex tasks sit at chance: no ranking of methods on them
DELTA_COLUMNS = ["run", "group", "setting", "delta", "lo", "hi"]


def component(task: str, metric: str, first: str) -> str | None:
    """The part of a paper average a row of eval.csv fills: the benchmark's key when ``metric`` is the task's
    first metric, ``tydiqa:f1`` / ``tydiqa:em`` for TyDiQA's two, None for tasks outside the paper's groups."""
    name, m = re.sub(r"[^a-z0-9]", "", task.lower()), re.sub(r"[^a-z0-9]", "", metric.lower())
    if name.startswith(APART):
        return None
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


def group_rows(s: pd.DataFrame, group: str) -> pd.DataFrame:
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
        g = group_rows(s, group)
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
    g = group_rows(s, group)
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
        g = group_rows(s, group)
        if not (g["setting"] == "dense").any():
            continue
        for setting in g["setting"][g["setting"] != "dense"].unique():
            delta, lo, hi = paired(s, items, group, {setting: 1.0, "dense": -1.0})
            out.append(dict(run=s["run"].iloc[0], group=group, setting=setting, delta=delta, lo=lo, hi=hi))
    return pd.DataFrame(out, columns=DELTA_COLUMNS)


def analyse(
    evals: dict[str, evres.SuiteResult],
    skipped: Sequence[str] = (),
    params: dict | None = None,
    context: dict | None = None,
) -> dict:
    """Per run: every eval.csv row with its component, the group averages per setting and the Δ against dense.
    ``skipped`` names runs without an evaluation; ``params`` their non-embedding parameters (for labels);
    ``context`` their context lengths in tokens (eval.csv counts the prompts cut to fit; the length is in
    eval.json's ``context`` where the suite recorded it)."""
    params, context = params or {}, context or {}
    order = sorted(evals, key=lambda r: (params.get(r, np.inf), r))
    scores = [_rows(r, evals[r]) for r in order]
    deltas = [_deltas(s, evals[r].items) for r, s in zip(order, scores)]
    return dict(runs=order, skipped=list(skipped), params={r: params.get(r, np.nan) for r in order},
                context={r: context.get(r, evals[r].meta.get("context", np.nan)) for r in order},
                items={r: evals[r].items for r in order},
                scores=pd.concat(scores or [pd.DataFrame()], ignore_index=True),
                groups=pd.concat([_groups(s) for s in scores] or [pd.DataFrame()], ignore_index=True),
                deltas=pd.concat(deltas or [pd.DataFrame(columns=DELTA_COLUMNS)], ignore_index=True))  # fmt: skip


def truncation(res: dict, group: str) -> pd.DataFrame:
    """Per run and task of ``group``'s table (in eval.csv's order): the prompts cut from the left to fit the
    context, of the items scored, with the run's context and the task's shots. Read from the dense rows: a task's
    prompts are the same under every setting, so its count is too."""
    columns = ["run", "task", "truncated", "items", "shots", "context"]
    s = res["scores"]
    if not len(s):
        return pd.DataFrame(columns=columns)
    d = group_rows(s[s["setting"] == "dense"], group).drop_duplicates(["run", "task"])
    return d.assign(context=d["run"].map(res["context"]))[columns].reset_index(drop=True)


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
    names = [d.name for d in run_folders(folder, marker="config.json")]
    picked = [check_choice("runs", r, names) for r in runs] if runs is not None else names

    def read(names: list[str], skipped: Sequence[str] = ()) -> dict:
        cfg = {r: json.loads((folder / r / "config.json").read_text()) for r in names}
        size = {r: c["model"]["non_embedding_params"] for r, c in cfg.items()}
        context = {r: c["train"]["seq_len"] for r, c in cfg.items()}  # a run is evaluated at its training length
        out = analyse({r: evres.read(folder / r) for r in names}, skipped, size, context)
        out["configs"] = cfg  # training tokens, batch and recipe: the confounds beside a comparison across runs
        return out

    def replay() -> dict:
        have = [r for r in picked if (folder / r / "eval.csv").exists()]
        out = read(have, [r for r in picked if r not in have])
        out["seeds"] = read(other_seeds(have))
        sweeps = {
            r: evres.read(folder / r / "eval_fig3") for r in have if (folder / r / "eval_fig3" / "eval.csv").exists()
        }
        if sweeps:  # otherwise Fig. 3 reads the main evaluations (``res.get("fig3", res)``)
            out["fig3"] = analyse(sweeps, params=out["params"])
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


def other_seeds(runs: Sequence[str], folder: Path = DATA / "runs") -> list[str]:
    """The evaluated runs in ``folder`` that are another seed of one of ``runs`` (same model, activation and
    whole split), in name order: the only measure of how much two trainings of one model differ downstream."""
    found = []
    for d in run_folders(folder, variants=True, marker="eval.csv"):
        v = run_variant(d.name) if plain_name(d.name) in runs else None  # a name outside the grammar has none
        if v is not None and v.seed and v.split == 1:
            found.append(d.name)
    return found


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
