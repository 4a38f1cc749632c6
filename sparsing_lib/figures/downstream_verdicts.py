"""The downstream chapter's verdicts: claims 1, 2, 3 (downstream half), 8 (downstream half), 9 and 10, and every
sentence it quotes.

Each verdict is computed from the intervals of ``downstream_data``'s analysis (and, for claims 8 and 9, the
comparisons across runs of ``downstream_scale``) alone, so that the page's words follow the numbers whatever a
new evaluation brings.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from .. import paper, style
from .downstream_data import CETT_PPL, METHODS, N_BOOT, TABLES, compare_methods, group_rows, truncation
from .downstream_scale import SCALE_GROUPS, act_gaps, family, rises, seed_spread
from .downstream_tables import SETTING_LABEL, ci, label

MARGIN = 1.0  # points: a change smaller than this is what the paper calls negligible (its Table 1 Δ at p = 1 %)
NEAR = 0.05  # within 5 points of chance is "near random": the paper says so of its Table 6 (averages 1-7 above)
PAPER_CONTEXT = 4096  # tokens: the paper's models' max_position_embeddings (its released 2.4B config.json)
GROUP_LABEL = {"C.R.": "commonsense reasoning", "R.C.": "reading comprehension", "complex": "complex tasks",
               "tiny": "tiny-model tasks"}  # fmt: skip


def call(lo: float, hi: float) -> str:
    """What a Δ interval says: a loss, a gain, within noise (covers 0), or no interval (no per-item scores)."""
    if np.isnan(lo) or np.isnan(hi):
        return "no interval"
    return "a loss" if hi < 0 else "a gain" if lo > 0 else "within noise"


def no_data(res: dict) -> str:
    """The paragraph every section shows while no run has an eval.csv: the page builds, and says why it is empty."""
    n = len(res["skipped"])
    return (
        f"No run has a downstream evaluation yet (none of the {n} run folders holds an eval.csv): there are no "
        "results of ours to show here."
    )


def truncation_summary(res: dict, group: str) -> str:
    """One sentence: per run, how many prompts of which of ``group``'s tasks were cut from the left to fit the
    model's context (runs that agree share one clause). A cut few-shot prompt has lost its first examples and a
    cut passage its beginning, so a score on such prompts is not the paper's task at a smaller scale."""
    t = truncation(res, group)
    if t.empty:
        return "No task of this table was scored, so no prompt was cut."
    clauses: dict[str, list[str]] = {}
    for run, d in t.groupby("run", sort=False):
        ctx = d["context"].iloc[0]
        fit = f"to fit the {int(ctx):,}-token context" if np.isfinite(ctx) else "to fit the model's context"
        cut = [f"{r.truncated:,} of {r.items:,} {r.task} prompts" + (f" ({r.shots}-shot)" if r.shots else "")
               for r in d[d["truncated"] > 0].itertuples()]  # fmt: skip
        verb = "was" if len(cut) == 1 and d["truncated"].sum() == 1 else "were"
        clause = f"{style.word_list(cut)} {verb} cut from the left {fit}" if cut else f"no prompt was cut {fit}"
        clauses.setdefault(clause, []).append(label(run))
    return _upper_first("; ".join(f"in {style.word_list(runs)}, {clause}" for clause, runs in clauses.items())) + "."


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
        return f"{name}: Δ {ci(r['delta'], r['lo'], r['hi'], signed=True)} points, {calls[0]}"
    counts = ", ".join(f"{calls.count(c)} {c}" for c in dict.fromkeys(calls))
    w = d.loc[d["delta"].idxmin()]
    return (
        f"{name}: Δ {100 * d['delta'].min():+.1f} to {100 * d['delta'].max():+.1f} points over {len(d)} runs "
        f"({counts}); the largest drop {ci(w['delta'], w['lo'], w['hi'], signed=True)} ({label(w['run'])})"
    )


def chance_summary(res: dict, group: str) -> str:
    """One sentence: in how many runs the dense group average, and how many dense task scores, lie above chance
    beyond their 95 % intervals."""
    g, s = res["groups"], res["scores"]
    dense = g[(g["group"] == group) & (g["setting"] == "dense")] if len(g) else g
    if dense.empty:
        return f"the {GROUP_LABEL[group]} were not evaluated"
    above = int((dense["lo"] > dense["chance"]).sum())
    t = group_rows(s[s["setting"] == "dense"], group)
    t_above = int((t["lo"] > t["chance"]).sum())
    return (
        f"the dense {GROUP_LABEL[group]} average is above chance beyond its interval in {above} of {len(dense)} "
        f"runs ({100 * dense['score'].min():.1f}–{100 * dense['score'].max():.1f} % against a chance level of "
        f"{100 * dense['chance'].mean():.1f} %); {t_above} of {len(t)} dense task scores are above chance beyond "
        "their interval"
    )


def _sizes(params: Iterable[float]) -> str:
    """How our models' non-embedding parameters compare with the paper's 0.1B–1.2B models."""
    p = np.array([v for v in params if np.isfinite(v)])
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
    """(verdict, note) for claims 1, 2, 3 (downstream half), 8 (downstream half), 9 and 10, from the intervals alone.

    1: at CETT-PPL-1 % no run loses more than MARGIN points on C.R. or R.C. (interval above -MARGIN): holds when
       every run-group pair says so, does not hold when most lose more beyond their interval (hi < -MARGIN).
    2: at CETT-PPL-10 % C.R. stays within MARGIN and R.C. loses beyond its interval, run by run.
    3: no Top-k, FAT-ε or zero-threshold point beats CETT at equal sparsity beyond the intervals.
    8: ReLU and SiLU dense C.R. and R.C. averages agree at each scale with both (``act_verdict``).
    9: those averages rise from the smallest to the largest evaluated scale (``scale_verdict``).
    10: the dense complex-task average is within NEAR points of chance (its interval reaches that close)."""
    d, g, out = res["deltas"], res["groups"], {}
    if not res["runs"]:
        return {i: ("untested", "no run has a downstream evaluation yet") for i in (1, 2, 3, 8, 9, 10)}
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
        f"on models {_sizes(res['params'].values())}"
        if len(cx)
        else "the complex tasks were not evaluated",
    )
    out[8], (v9, n9) = act_verdict(res), scale_verdict(res)
    confounds = scale_confounds(res).removeprefix("The scales differ in more than size: ")
    out[9] = (v9, n9 if v9 == "untested" else f"{n9}; confounds: {confounds[:-1]}")
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


def scale_confounds(res: dict) -> str:
    """What differs between the evaluated scales besides size, one clause per scale: the recipe, the tokens per
    parameter and the batch its config.json records; then the seeds and how much smaller the models are."""
    fam = family(res)
    if fam.empty:
        return "No run of the scale family has a downstream evaluation."
    clauses = []
    for model, d in fam[fam["seed"] == 0].groupby("model", sort=False):
        r = d.iloc[0]
        trained = "training recipe not recorded"
        if np.isfinite(r["tokens"]):
            trained = f"{r['recipe']} recipe, {r['tokens per parameter']:.0f} tokens per parameter, a batch of "
            trained += f"{int(r['batch'])} sequences"
        clauses.append(f"{model} ({r['params'] / 1e6:.1f}M: {trained})")
    seeds, sizes = seed_scope(res), _sizes(fam["params"])
    return f"The scales differ in more than size: {style.word_list(clauses)}; {seeds}; models {sizes}."


def seed_scope(res: dict) -> str:
    """A clause: which models have more than one evaluated seed and how far apart those seeds' dense averages lie,
    the only measure of how much two trainings of one model differ downstream (the rise with scale is judged
    against it)."""
    sp, fam = seed_spread(res), family(res)
    if sp.empty:
        return "every run was evaluated at one seed, so nothing measures seed-to-seed variation"
    counts = fam.groupby(["model", "activation"], sort=False)["seed"].count()
    at = [f"{m} ({' and '.join(f'{n} {style.ACT_LABEL.get(a, a)}' for a, n in counts[m].items())})"
          for m in dict.fromkeys(sp["model"])]  # fmt: skip
    ranges = " and ".join(f"{100 * x.max():.1f} ({g})" for g, x in sp.groupby("group", sort=False)["spread"])
    return (
        f"more than one seed was evaluated at {style.word_list(at)}, and the dense averages of one model's seeds "
        f"lie up to {ranges} points apart"
    )


def _rise_word(diff: float, lo: float, hi: float, spread: float) -> str:
    if lo > 0 and not spread >= diff:
        return "a rise beyond its interval" + (" and the seed range" if np.isfinite(spread) else "")
    return "a rise within the seed range" if lo > 0 else "a fall beyond its interval" if hi < 0 else "within noise"


def scale_verdict(res: dict) -> tuple[str, str]:
    """Claim 9 from the dense C.R. and R.C. averages of the seed-0 scale runs, per activation: holds when every
    average rises from the smallest to the largest evaluated scale beyond its paired interval (and beyond the
    seed range where seeds were evaluated) and no step between neighbouring scales falls beyond its interval;
    does not hold when none rises or most fall; untested for an activation with fewer than two scales."""
    r = rises(res)
    tested = r[r["scales"] >= 2]
    acts = sorted(set(r["activation"]) | {"relu", "silu"})
    missing = [style.ACT_LABEL.get(a, a) for a in acts if a not in set(tested["activation"])]
    untested = f"untested for {style.word_list(missing)} (fewer than two evaluated scales)" if missing else ""
    if tested.empty:
        return "untested", "fewer than two scales of the family have a downstream evaluation, for either activation"
    up = (tested["lo"] > 0) & ~(tested["seed_spread"] >= tested["diff"])
    n, good, bad = len(tested), int(up.sum()), int((tested["hi"] < 0).sum())
    if good == n:
        verdict = "holds" if tested["falls"].sum() == 0 else "partly holds"
    else:
        verdict = "does not hold" if good == 0 or 2 * bad > n else "partly holds"
    fam = family(res).set_index("run")
    parts = []
    for x in tested.itertuples():
        a, b = fam.loc[x.smallest], fam.loc[x.largest]
        g = x.group
        falls = f", {x.falls} step{'s' if x.falls > 1 else ''} between neighbours falling" if x.falls else ""
        parts.append(
            f"{style.ACT_LABEL.get(x.activation, x.activation)} {g} {ci(a[g], a[f'{g} lo'], a[f'{g} hi'])} to "
            f"{ci(b[g], b[f'{g} lo'], b[f'{g} hi'])}, Δ {ci(x.diff, x.lo, x.hi, signed=True)} points "
            f"({_rise_word(x.diff, x.lo, x.hi, x.seed_spread)}{falls})"
        )
    counts = tested.groupby("activation")["scales"].max()
    lo, hi = counts.min(), counts.max()
    scales = f"{lo}–{hi} scales" if lo < hi else f"{hi} scales"
    if hi == 2:
        ends = fam.loc[[tested["smallest"].iloc[0], tested["largest"].iloc[0]], "model"]
        scales = f"only two scales, {style.word_list(ends)}"
    note = f"dense averages from the smallest to the largest evaluated scale ({scales}): {'; '.join(parts)}"
    return verdict, note + (f"; {untested}" if untested else "")


def act_verdict(res: dict) -> tuple[str, str]:
    """Claim 8's downstream half: at every evaluated scale with both activations, the ReLU minus SiLU dense C.R.
    and R.C. averages. Comparable when the paired interval lies within ±MARGIN points or covers 0; apart when it
    lies wholly beyond ±MARGIN; holds when all are comparable, does not hold when most are apart."""
    gp, m = act_gaps(res), MARGIN / 100
    if gp.empty:
        return "untested", "no evaluated scale has both a ReLU and a SiLU run"
    inside = (gp["lo"] >= -m) & (gp["hi"] <= m)
    noise = (gp["lo"] <= 0) & (gp["hi"] >= 0)
    apart = (gp["lo"] > m) | (gp["hi"] < -m)
    within, beyond = f"within ±{MARGIN:.0f} point", f"beyond ±{MARGIN:.0f} point"
    reach = f"beyond noise, its interval reaching past ±{MARGIN:.0f} point"
    words = np.where(inside, within, np.where(noise, "within noise", np.where(apart, beyond, reach)))
    parts = [f"{x.model} {x.group} {ci(x.diff, x.lo, x.hi, signed=True)} ({w})"
             for x, w in zip(gp.itertuples(), words)]  # fmt: skip
    k = gp["model"].nunique()
    note = (f"ReLU minus SiLU dense average (points) at the {k} evaluated scale{'s' if k > 1 else ''} with both "
            f"activations: {'; '.join(parts)}")  # fmt: skip
    return _verdict(int((inside | noise).sum()), int(apart.sum()), len(gp)), note


def chance_margin(res: dict) -> str:
    """How far the family's dense averages lie above chance, per group: comparable or flat scores near chance
    say less than they would higher up."""
    fam, g = family(res), res["groups"]
    if fam.empty:
        return "There is no score of ours to set against chance."
    parts = []
    for group in SCALE_GROUPS:
        d = g[g["run"].isin(fam["run"]) & (g["group"] == group) & (g["setting"] == "dense")]
        if len(d):
            above = 100 * (d["score"] - d["chance"])
            parts.append(f"{above.min():+.1f} to {above.max():+.1f} points on {GROUP_LABEL[group]} ({group}, chance "
                         f"{100 * d['chance'].mean():.1f} %)")  # fmt: skip
    return f"These runs' dense averages are {' and '.join(parts).replace(' points on', ' points from chance on', 1)}."


def paper_scale() -> str:
    """The paper's App. K dense averages at its smallest and largest scale, and the range of its ReLU minus SiLU
    differences, from the committed Tables 4 and 5."""
    parts, gaps = [], []
    for group, table in (("C.R.", paper.table4()), ("R.C.", paper.table5())):
        d = table[table["setting"] == "Dense"].pivot(index="scale", columns="activation", values="Avg.")
        ends = [f"{d.loc['0.1B', a]:.1f} to {d.loc['1.2B', a]:.1f} ({style.ACT_LABEL[a]})" for a in ("relu", "silu")]
        parts.append(f"{group} from {' and '.join(ends)}")
        gap = d["relu"] - d["silu"]
        gaps.append(f"{gap.min():+.1f} to {gap.max():+.1f} points ({group})")
    return (
        f"In the paper's Tables 4 and 5 the dense averages rise from 0.1B to 1.2B, {'; '.join(parts)}; its ReLU "
        f"minus SiLU differences are {' and '.join(gaps)}."
    )


def claims(res: dict) -> list[dict]:
    """Claims 1, 2, 3 and 8 (their downstream halves; the perplexity half of 3 is the measuring chapter's, the loss
    half of 8 the dynamics chapter's), 9 and 10, from our runs."""
    return [dict(id=i, verdict=v, basis="our runs", note=f"downstream half: {n}" if i in (3, 8) else n)
            for i, (v, n) in sorted(claim_verdicts(res).items())]  # fmt: skip


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapter quotes, as text; without results, one 'no results yet' sentence."""
    typo = paper.TABLE1_TYPO
    out = {
        "paper_typo": f"{typo['printed']:+.1f} for the {typo['model']} {typo['group']} {typo['setting']} cell, where "
        f"its own Table 4 gives {typo['from_table4']:+.1f}",
        "margin": f"{MARGIN:.0f}",
        "near": f"{100 * NEAR:.0f}",
        "n_boot": f"{N_BOOT:,}",
        "paper_context": f"{PAPER_CONTEXT:,}",
        "table5_truncation": truncation_summary(res, "R.C."),
        "table6_truncation": truncation_summary(res, "complex"),
    }
    verdicts = claim_verdicts(res)
    out |= {
        "scale_verdict": f"claim 9 {verdicts[9][0]}; claim 8 (downstream half) {verdicts[8][0]}",
        "scale_rise": _upper_first(scale_verdict(res)[1]) + ".",  # without the confounds, glued on their own
        "scale_gap": _upper_first(verdicts[8][1]) + ".",
        "scale_confounds": scale_confounds(res),
        "seed_scope": _upper_first(seed_scope(res)) + ".",
        "scale_chance": chance_margin(res),
        "scale_paper": paper_scale(),
    }
    if not res["runs"]:
        out |= dict.fromkeys(("status", "fig3_text", "table1_text", "tiny_text"), no_data(res)) | {"fig3_scope": ""}
        keys = [f"{k}_verdict" for k in ("fig3", "table1", "table4", "table5", "table6", "tiny")]
        return out | dict.fromkeys(keys, "untested: no run has a downstream evaluation yet")
    k, n = len(res["skipped"]), len(res["runs"])
    skipped = f"; {k} run{' has' if k == 1 else 's have'} none yet" if k else ""
    out["status"] = (
        f"{n} run{' has' if n == 1 else 's have'} a downstream evaluation ({', '.join(map(label, res['runs']))}), "
        f"models {_sizes(res['params'].values())}{skipped}."
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
