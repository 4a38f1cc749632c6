"""Controls for every comparison across our scales: seed noise and repetition of the corpus.

The paper trains each model once on web-scale data. Our mini family trains once per scale on a 54M-token corpus,
so the larger scales repeat it more (``run.TOKENS_PER_PARAM`` with a fixed corpus), and the change of the ReLU
activation ratio with data (``mini_laws.trends``) differs between scales. Three controls bound what that
difference can mean: the spread across seeds of one scale (the sweep's extra seeds and the committed
``data/seeds`` set of an earlier recipe), the smallest scale trained on 1/8 and 1/32 of the split for the same
tokens (8x and 32x the passes), and every scale cut to its first passes over the split. The trends, their
checkpoint-noise intervals and the start ratio are those of ``mini_laws``, called, not re-derived.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import models, run, style
from ..checks import check_profile, check_range
from ..paths import DATA, ROOT
from ..profiles import by_profile
from ..run import EXTRA_SEEDS, REPETITION_MODEL, REPETITION_SPLITS, SEED_MODELS
from ..runs import Variant, load_runs, parse_run, run_name, run_variant
from ..stability import run_stability
from ..train_config import recorded_config
from . import dynamics, mini_laws

PREFIX_PASSES = {"smoke": 0.4, "replay": 3.0, "full": 3.0}  # smoke: the tiny runs make 0.6 passes in all
MIN_PREFIX_CHECKPOINTS = 3  # checkpoints from the start ratio on that a prefix needs for a change to be read
SMOKE_VARIANTS = [f"{models.TINY.name}-{a}-{v}" for v in ("s1", "f8") for a in mini_laws.ACTS]
EARLIER = "earlier seed set"  # data/seeds: three seeds of mini-160x3, first recipe
SWEEP = "sweep"
ACTS = mini_laws.ACTS


def recipe_label(name: str, config: dict) -> str:
    """Which recipe a run trained with, in words: the current one, or an earlier one named by its recorded batch
    and warm-up. The rule is ``dynamics.recipe_label``'s (the runs table's), so the two chapters cannot disagree
    about a run; seeds of different recipes are never pooled. ``name`` is the run's own name, without the seed
    set's folder that the keys of the earlier set carry."""
    if dynamics.recipe_label(name, config) == "current":
        return "current recipe"
    t = config["train"]
    return f"earlier recipe (batch {t['batch_size']}, warm-up {recorded_config(t).warmup_steps} steps)"


def _model(name: str) -> str:
    return parse_run(name)[0]


def _passes(run: dict) -> float:
    """Passes over the share of the split the run trained on, as the runs table counts them."""
    return dynamics.run_passes(run["metrics"], run["config"])


def _final_loss(run: dict) -> float:
    v = run["metrics"]["val_loss"].dropna()
    return float(v.iloc[-1]) if len(v) else np.nan


# ---------------------------------------------------------------------------------------------------------
# Loading


@functools.cache
def smoke_variants() -> Path:
    """The tiny model's seed-1 and 1/8-split runs (``SMOKE_VARIANTS``), trained on CPU once per process into a
    temporary folder beside the runner's smoke grid (``run.smoke_runs``), which is left untouched."""
    out = Path(tempfile.mkdtemp(prefix="sparsing-controls-")) / "runs"
    argv = ["--grid", "smoke", "--slice", ",".join(SMOKE_VARIANTS), "--profile", "smoke", "--corpus", "smoke"]
    if run.main(argv + ["--out", str(out), "--ckpt", str(out.parent / "ckpt"), "--jobs", "2"]):
        raise RuntimeError(f"the grid runner reported failed runs in {out}; see each run's env.json")
    return out


def control_runs() -> list[str]:
    """The sweep's runs this chapter reads: the extra seeds, the repetition runs and their plain twins."""
    keep = {*run.SEED_MODELS, run.REPETITION_MODEL}
    return [n for n in run.GRIDS["sweep"] if parse_run(n)[0] in keep]


def load(profile: str) -> dict:
    """The plain scale runs (``mini_laws.mini_runs``), every variant run (unstable ones too, so that the table
    shows every run of the control with its verdict) and the committed seed set of ``data/seeds``
    (replay and full; smoke trains its own variants and reads no committed data)."""
    plain = mini_laws.mini_runs(profile)
    if profile == "smoke":
        return {"plain": plain, "variants": load_runs(smoke_variants(), True, True), "earlier": {}}
    variants = {n: r for n, r in load_runs(DATA / "runs", True, True).items() if run_variant(n).is_variant}
    earlier = {f"{d.name}/{n}": r for d in sorted((DATA / "seeds").glob("seed*")) for n, r in load_runs(d).items()}
    return {"plain": plain, "variants": variants, "earlier": earlier}


# ---------------------------------------------------------------------------------------------------------
# 1. Seed noise


def seed_table(plain: dict, variants: dict, earlier: dict, start_ratio: float) -> pd.DataFrame:
    """One row per run of every seed set: the sweep's seeds of a model on the whole split (seed 0 = its plain
    run, where another seed exists) and the earlier set; final validation loss, last activation ratio and the
    ``mini_laws`` change from ``start_ratio`` with its checkpoint-noise interval."""
    picked = {}
    seeded = {parse_run(n) for n, v in ((n, run_variant(n)) for n in variants) if v.seed and v.split == 1}
    for name, r in {**plain, **variants}.items():
        if parse_run(name) in seeded and run_variant(name).split == 1 and "sparsity" in r:
            picked[name] = (SWEEP, run_variant(name).seed, r)
    for name, r in earlier.items():
        picked[name] = (EARLIER, int(r["config"]["train"]["seed"]), r)
    cols = ["set", "model", "activation", "recipe", "seed", "run", "val_loss", "last", "stability"]
    if not picked:
        return pd.DataFrame(columns=cols + ["start_change", "start_lo", "start_hi"])
    t = mini_laws.trends({n: r for n, (_, _, r) in picked.items()}, start_ratio).set_index("run")
    rows = [
        {"set": s, "model": r["config"]["model"]["name"], "activation": r["config"]["activation"]}
        | {
            "recipe": recipe_label(n.rsplit("/", 1)[-1], r["config"]),
            "seed": seed,
            "run": n,
            "val_loss": _final_loss(r),
        }
        | {"last": t.loc[n, "last"], "stability": run_stability(r).verdict}
        | {k: t.loc[n, k] for k in ("start_ratio", "start_change", "start_lo", "start_hi")}
        for n, (s, seed, r) in picked.items()
    ]
    return pd.DataFrame(rows).sort_values(["set", "model", "activation", "seed"], ignore_index=True)


def seed_spread(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per seed set, model, activation and recipe: the seeds, and the range (max − min) over them of the final
    validation loss, the last activation ratio and the change from the start ratio, beside the mean
    checkpoint-noise 95% half-width of that change (what one run's interval covers)."""
    rows = []
    for (s, m, a, rec), g in seeds.groupby(["set", "model", "activation", "recipe"], sort=False):
        row = {"set": s, "model": m, "activation": a, "recipe": rec, "n": len(g), "seeds": list(g.seed)}
        for key in ("val_loss", "last", "start_change"):
            row[f"{key}_range"] = float(g[key].max() - g[key].min()) if len(g) > 1 else np.nan
        row["half_width"] = float(((g.start_hi - g.start_lo) / 2).mean())
        rows.append(row)
    cols = ["set", "model", "activation", "recipe", "n", "seeds", "val_loss_range", "last_range", "start_change_range"]
    return pd.DataFrame(rows, columns=cols + ["half_width"])


def yardstick(spread: pd.DataFrame, act: str, key: str) -> tuple[float, str]:
    """The largest seed range of ``key`` over the seed sets of ``act`` with two or more seeds, and where it comes
    from: the most conservative noise a difference between scales must beat (NaN and "" with no such set)."""
    g = spread[(spread.activation == act) & (spread.n > 1)].dropna(subset=[f"{key}_range"])
    if g.empty:
        return np.nan, ""
    r = g.loc[g[f"{key}_range"].idxmax()]
    return float(r[f"{key}_range"]), f"{r.n} seeds of {r.model}, {r.set}, {r.recipe}"


def ratio_at(run: dict, tpp: float) -> float:
    """The activation ratio at ``tpp`` tokens per parameter, linear in log tokens between the two checkpoints
    around it (NaN outside the probed range)."""
    s, n = run["sparsity"], run["config"]["model"]["non_embedding_params"]
    x = np.log(s["tokens"].to_numpy(float) / n)
    if not x[0] - 1e-9 <= np.log(tpp) <= x[-1] + 1e-9:
        return np.nan
    return float(np.interp(np.log(tpp), x, s["activation_ratio"].to_numpy(float)))


def neighbours(trends: pd.DataFrame, plain: dict, spread: pd.DataFrame) -> pd.DataFrame:
    """Differences between neighbouring scales (by parameters) in the change from the start ratio and in the
    activation ratio at the largest tokens per parameter both reach, each beside the seed yardstick and the
    checkpoint-noise 95% half-width of the difference; ``exceeds``: |difference| above the yardstick."""
    rows = []
    for act in ACTS:
        t = trends[trends.activation == act].sort_values("params").reset_index(drop=True)
        ych, _ = yardstick(spread, act, "start_change")
        ylast, _ = yardstick(spread, act, "last")
        for a, b in zip(t.itertuples(), t.iloc[1:].itertuples()):
            ra, rb = plain[a.run], plain[b.run]
            tpp = min(float(x["config"]["tokens_per_param"]) for x in (ra, rb))
            d_change, d_ratio = b.start_change - a.start_change, ratio_at(rb, tpp) - ratio_at(ra, tpp)
            half = np.hypot(a.start_hi - a.start_change, b.start_hi - b.start_change)
            row = {"activation": act, "pair": f"{_model(a.run)} → {_model(b.run)}", "change_diff": d_change}
            row |= {"noise_half": half, "seed_change": ych, "exceeds_change": abs(d_change) > ych, "matched_tpp": tpp}
            rows.append(row | {"ratio_diff": d_ratio, "seed_last": ylast, "exceeds_ratio": abs(d_ratio) > ylast})
    cols = ["activation", "pair", "change_diff", "noise_half", "seed_change", "exceeds_change", "matched_tpp"]
    return pd.DataFrame(rows, columns=cols + ["ratio_diff", "seed_last", "exceeds_ratio"])


# ---------------------------------------------------------------------------------------------------------
# 2. Repetition at fixed scale, 3. the first passes of every scale


def repetition_table(plain: dict, variants: dict, start_ratio: float, model: str = REPETITION_MODEL) -> pd.DataFrame:
    """The seed-0 runs of ``model`` on the whole split and on 1/k of it (``REPETITION_SPLITS``), per activation:
    share, passes, final validation loss and its rise above its minimum, the change from ``start_ratio``
    (``mini_laws.trends``), its direction and the stability verdict; a row per missing run, marked so."""
    rows = []
    for act in ACTS:
        for k in (1, *REPETITION_SPLITS):
            name = run_name(model, act, Variant(split=k))
            r = (plain if k == 1 else variants).get(name)
            row = {"run": name, "activation": act, "split": k, "trained": r is not None and "sparsity" in r}
            if row["trained"]:
                t = mini_laws.trends({name: r}, start_ratio).iloc[0]
                val = r["metrics"]["val_loss"].dropna()
                row |= {"passes": _passes(r), "val_loss": _final_loss(r), "overfit": float(val.iloc[-1] - val.min())}
                row |= {k2: t[k2] for k2 in ("start_ratio", "start_change", "start_lo", "start_hi", "last")}
                row |= {"direction": mini_laws.direction(t.start_lo, t.start_hi), "stability": run_stability(r).verdict}
            rows.append(row)
    cols = ["run", "activation", "split", "trained", "passes", "val_loss", "overfit", "start_ratio", "start_change"]
    return pd.DataFrame(rows).reindex(columns=cols + ["start_lo", "start_hi", "last", "direction", "stability"])


def restrict(r: dict, passes: float) -> dict:
    """Run ``r`` cut to its checkpoints within the first ``passes`` over the share of the split it trained on
    (counted as the runs table counts them, ``dynamics.split_tokens``), metrics.csv alike: what a run stopped
    there would hold if its recipe does not depend on its length (``prefix_table``'s ``exact``)."""
    m, s = r["metrics"], r["sparsity"]
    keep = s["tokens"].to_numpy(float) / dynamics.split_tokens(r["config"]) <= passes + 1e-9
    last = s["step"][keep].max() if keep.any() else -1
    return {**r, "sparsity": s[keep].reset_index(drop=True), "metrics": m[m["step"] <= last].reset_index(drop=True)}


def prefix_table(plain: dict, passes: float, start_ratio: float) -> pd.DataFrame:
    """Every scale run cut to its first ``passes`` over the split (``restrict``): how far the cut reaches in tokens
    per parameter, how many checkpoints it keeps from ``start_ratio`` on, whether it qualifies (at least
    ``MIN_PREFIX_CHECKPOINTS``) and why not, whether a run stopped there would have had the same weights, and for
    those that qualify the ``mini_laws`` change within the cut, beside the whole run's."""
    rows, whole = [], mini_laws.trends(plain, start_ratio).set_index("run") if plain else None
    for name, r in plain.items():
        cut, n = restrict(r, passes), r["config"]["model"]["non_embedding_params"]
        tok = cut["sparsity"]["tokens"].to_numpy(float)
        after = len(tok) - mini_laws.start_index(tok, n, start_ratio)
        end = tok[-1] / n if len(tok) else np.nan
        ok = after >= MIN_PREFIX_CHECKPOINTS
        why = f"only {after} probed checkpoint(s) from the start ratio to the cut" if after else ""
        why = why or f"the cut ends at {end:.1f} tokens per parameter, before the start ratio"
        t = r["config"]["train"]
        row = {"run": name, "activation": r["config"]["activation"], "params": n, "passes": _passes(r)}
        row |= {"cut_tpp": end, "n_after": after, "qualifies": ok, "why": "" if ok else why}
        row |= {
            "exact": bool(t.get("warmup_tokens")) and not t.get("decay_frac"),
            "whole_change": whole.loc[name, "start_change"],
        }
        if ok:
            p = mini_laws.trends({name: cut}, start_ratio).iloc[0]
            row |= {k: p[k] for k in ("start_ratio", "start_change", "start_lo", "start_hi")}
            row["direction"] = mini_laws.direction(p.start_lo, p.start_hi)
        rows.append(row)
    cols = ["run", "activation", "params", "passes", "cut_tpp", "n_after", "qualifies", "why", "exact", "whole_change"]
    out = pd.DataFrame(rows).reindex(
        columns=cols + ["start_ratio", "start_change", "start_lo", "start_hi", "direction"]
    )
    return out.sort_values(["activation", "params"], ignore_index=True)


# ---------------------------------------------------------------------------------------------------------
# Results


def results(profile: str = "replay", prefix_passes: float = 0.0) -> dict:
    """Every control under the profile contract. replay reads ``data/runs`` (variants included) and ``data/seeds``;
    smoke trains the tiny model's seed-1 and 1/8-split variants beside the runner's smoke grid (CPU, a few
    minutes); full trains the sweep's control runs (``control_runs``) into ``data/runs`` on a GPU (each run's
    provenance in its env.json, so nothing more is saved). ``prefix_passes`` 0 = the profile's default."""
    check_profile(profile)
    passes = check_range("prefix_passes", prefix_passes, 0.0, 50.0) or PREFIX_PASSES[profile]
    start = 0.0 if profile == "smoke" else mini_laws.START_RATIO  # as mini_laws: the tiny runs end near 3

    def recompute(p: str) -> dict:
        if p == "full":
            argv = ["--grid", "sweep", "--slice", ",".join(control_runs()), "--out", str(DATA / "runs")]
            if run.main(argv + ["--ckpt", str(ROOT / ".scratch" / "ckpt")]):
                raise RuntimeError(f"the runner reported failed runs in {DATA / 'runs'}; see each run's env.json")
        return collect(load(p), passes, start, models.TINY.name if p == "smoke" else REPETITION_MODEL)

    return by_profile(profile, lambda: recompute("replay"), recompute, save=lambda res: None)


def collect(data: dict, passes: float, start_ratio: float, rep_model: str = REPETITION_MODEL) -> dict:
    """The controls' tables from loaded runs (``load``'s dict: plain, variants, earlier)."""
    plain = data["plain"]
    seeds = seed_table(plain, data["variants"], data["earlier"], start_ratio)
    spread = seed_spread(seeds)
    trends = mini_laws.trends(plain, start_ratio) if plain else pd.DataFrame(columns=["run", "activation", "params"])
    res = dict(data, passes=passes, start_ratio=start_ratio, rep_model=rep_model, trends=trends, seeds=seeds)
    res |= {"spread": spread, "neighbours": neighbours(trends, plain, spread)}
    res["repetition"] = repetition_table(plain, data["variants"], start_ratio, rep_model)
    res["most_passes"] = max((_passes(r) for r in plain.values()), default=np.nan)
    return res | {"prefix": prefix_table(plain, passes, start_ratio)}


# ---------------------------------------------------------------------------------------------------------
# Figures and tables


def fig_seeds(res: dict) -> plt.Figure:
    """The change of the activation ratio from the start ratio against parameters: each scale run (seed 0) with
    its checkpoint-noise 95% interval, and every run of each seed set at its scale."""
    t, s = res["trends"], res["seeds"]
    lab = s.set + ", " + s.model + ", " + s.recipe
    sets = list(dict.fromkeys(lab))
    looks = style.series_style(["scale runs (seed 0)", *sets])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, act in zip(axes, ACTS):
        g = t[t.activation == act]
        yerr = 100 * np.vstack([g.start_change - g.start_lo, g.start_hi - g.start_change])
        m = looks["scale runs (seed 0)"]
        ax.errorbar(g.params / 1e6, 100 * g.start_change, yerr=yerr, fmt=m["marker"], color=m["color"], capsize=3)
        ax.plot([], [], ls="none", label="scale runs (seed 0), 95% checkpoint noise", **m)
        for k, label in enumerate(sets):
            h = s[(s.activation == act) & (lab == label)]
            x = h.model.map(lambda n: models.get_spec(n).non_embedding_params / 1e6) * (1.04 + 0.04 * k)
            ax.plot(x, 100 * h.start_change, ls="none", mfc="none", ms=7, label=f"seeds: {label}", **looks[label])
        ax.axhline(0, color="k", lw=0.5)
        ax.set(
            xscale="log", xlabel="non-embedding parameters (M, log scale)", title=f"{style.ACT_LABEL[act]}: our runs"
        )
        ax.set(ylabel=f"change from {res['start_ratio']:g} tokens/param to the end (points)")
        ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig_repetition(res: dict) -> plt.Figure:
    """Activation ratio against tokens per parameter for the repetition model on the whole split and on 1/k of
    it, one panel per activation; a missing run is named in the legend, not drawn."""
    rep = res["repetition"]
    looks = style.series_style([f"1/{k}" if k > 1 else "whole split" for k in (1, *REPETITION_SPLITS)])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, act in zip(axes, ACTS):
        for r in rep[rep.activation == act].itertuples():
            key = f"1/{r.split}" if r.split > 1 else "whole split"
            if not r.trained:
                ax.plot([], [], ls="none", label=f"{key}: not trained yet", **looks[key])
                continue
            run = (res["plain"] if r.split == 1 else res["variants"])[r.run]
            s, n = run["sparsity"], run["config"]["model"]["non_embedding_params"]
            ax.plot(s.tokens / n, 100 * s.activation_ratio, ms=4, label=f"{key} ({r.passes:.1f} passes)", **looks[key])
        if res["start_ratio"]:
            ax.axvline(res["start_ratio"], color="k", lw=0.5, ls=":")
        ax.set(xscale="log", xlabel="training tokens / non-embedding parameters", ylabel="activation ratio (%)")
        ax.set(title=f"{style.ACT_LABEL[act]}: {res['rep_model']}, our runs")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _interval(lo: float, hi: float) -> str:
    return f"[{100 * lo:+.2f}, {100 * hi:+.2f}]" if np.isfinite([lo, hi]).all() else "–"


def seeds_table(res: dict) -> pd.DataFrame:
    """Each seed's run: final validation loss, last activation ratio, the change from the start ratio."""
    s = res["seeds"]
    return pd.DataFrame(
        {"seed set": s.set, "model": s.model, "activation": s.activation.map(style.ACT_LABEL), "recipe": s.recipe}
        | {"seed": s.seed, "final validation loss": s.val_loss, "last activation ratio (%)": 100 * s["last"]}
        | {"change from the start ratio (points)": 100 * s.start_change}
        | {"95% interval, checkpoint noise": [_interval(a, b) for a, b in zip(s.start_lo, s.start_hi)]}
        | {"stability": s.stability}
    )


def neighbours_table(res: dict) -> pd.DataFrame:
    """Differences between neighbouring scales beside the largest seed range (``neighbours``)."""
    d = res["neighbours"]
    if d.empty:
        return pd.DataFrame(columns=["activation", "scales"])
    yes = {True: "yes", False: "no"}
    return pd.DataFrame(
        {"activation": d.activation.map(style.ACT_LABEL), "scales": d.pair}
        | {"difference in change (points)": 100 * d.change_diff, "checkpoint noise, 95% (points)": 100 * d.noise_half}
        | {"largest seed range (points)": 100 * d.seed_change}
        | {"exceeds it": [yes[v] if np.isfinite(y) else "–" for v, y in zip(d.exceeds_change, d.seed_change)]}
        | {"matched tokens per parameter": d.matched_tpp, "difference in activation ratio (points)": 100 * d.ratio_diff}
        | {"largest seed range of the last ratio (points)": 100 * d.seed_last}
        | {"exceeds it (ratio)": [yes[v] if np.isfinite(y) else "–" for v, y in zip(d.exceeds_ratio, d.seed_last)]}
    )


def repetition_display(res: dict) -> pd.DataFrame:
    """The repetition runs (``repetition_table``) with readable columns; missing runs marked."""
    r = res["repetition"]
    return pd.DataFrame(
        {"run": r.run, "activation": r.activation.map(style.ACT_LABEL), "share": "1/" + r.split.astype(str)}
        | {"passes": r.passes, "final validation loss": r.val_loss, "rise above its minimum (nats)": r.overfit}
        | {"change from the start ratio (points)": 100 * r.start_change.astype(float)}
        | {"95% interval, checkpoint noise": [_interval(a, b) for a, b in zip(r.start_lo, r.start_hi)]}
        | {"direction": r.direction.where(r.trained, "not trained yet"), "stability": r.stability}
    )


def prefix_display(res: dict) -> pd.DataFrame:
    """The first-passes cut of every scale run (``prefix_table``) with readable columns."""
    p = res["prefix"]
    return pd.DataFrame(
        {"run": p.run, "passes in all": p.passes, "cut ends at (tokens per parameter)": p.cut_tpp}
        | {"checkpoints from the start ratio": p.n_after}
        | {"qualifies": [("yes" if q else f"no: {w}") for q, w in zip(p.qualifies, p.why)]}
        | {"same weights as a run stopped there": p.exact.map({True: "yes", False: "no (warm-up: 1 % of the run)"})}
        | {"change within the cut (points)": 100 * p.start_change}
        | {"95% interval, checkpoint noise": [_interval(a, b) for a, b in zip(p.start_lo, p.start_hi)]}
        | {"direction": p.direction, "change over the whole run (points)": 100 * p.whole_change}
    )


# ---------------------------------------------------------------------------------------------------------
# Verdicts and the numbers the chapter quotes


def _pts(x: float) -> str:
    return f"{100 * x:+.2f}"


def sweep_seed_status(res: dict) -> str:
    """Which of the sweep's extra-seed runs exist, and where the seed noise therefore comes from."""
    sp = res["spread"]
    have = "; ".join(
        f"{r.model} {style.ACT_LABEL[r.activation]} (seeds {', '.join(map(str, r.seeds))}, {r.recipe})"
        for r in sp[sp.set == SWEEP].itertuples()
    )
    old = sp[sp.set == EARLIER]
    told = f"{old.n.max()} seeds of {style.word_list(dict.fromkeys(old.model))}, first recipe" if len(old) else "none"
    if have:
        return f"seed sets of the family: {have}; the {EARLIER}: {told}"
    plan = f"{style.word_list(SEED_MODELS)}, seeds {style.word_list(map(str, EXTRA_SEEDS))}, ReLU and SiLU"
    return (
        f"none of the family's extra-seed runs ({plan}) is trained yet; the seed noise here is the {EARLIER}'s: {told}"
    )


def seed_sentence(res: dict, act: str) -> str:
    """Per seed set of ``act``: the ranges over its seeds, and the change's range against one run's interval."""
    g = res["spread"][(res["spread"].activation == act) & (res["spread"].n > 1)]
    return (
        "; ".join(
            f"{r.model} ({r.set}, {r.n} seeds): final validation loss over {r.val_loss_range:.3f} nats, last "
            f"activation ratio over {100 * r.last_range:.2f} points, change from the start ratio over "
            f"{100 * r.start_change_range:.2f} points, {r.start_change_range / r.half_width:.1f} times the "
            f"{100 * r.half_width:.2f}-point checkpoint-noise 95% half-width of one run's change"
            for r in g.itertuples()
        )
        or f"no {style.ACT_LABEL[act]} model has two or more seeds"
    )


def neighbour_sentence(res: dict, act: str) -> str:
    """How many neighbouring-scale differences of ``act`` exceed the largest seed range, and the family's span."""
    d, c = res["neighbours"], res["trends"].query("activation == @act").start_change
    d = d[d.activation == act] if len(d) else d
    (y, where), ylast = yardstick(res["spread"], act, "start_change"), yardstick(res["spread"], act, "last")[0]
    if len(d) == 0 or not np.isfinite(y):
        return "fewer than two scales" if len(d) == 0 else "no seed set with two or more seeds to weigh them against"
    over = [f"{r.pair} {_pts(r.change_diff)}" for r in d.itertuples() if r.exceeds_change]
    under = [f"{r.pair} {_pts(r.change_diff)}" for r in d.itertuples() if not r.exceeds_change]
    return (
        f"{len(over)} of {len(d)} differences between neighbouring scales in the change exceed the largest seed "
        f"range ({100 * y:.2f} points, {where}): {', '.join(over) or 'none'}; within it: {', '.join(under) or 'none'}. "
        f"Across the family the change spans {100 * (c.max() - c.min()):.2f} points, {(c.max() - c.min()) / y:.1f} "
        f"times that range. At matched tokens per parameter, {int(d.exceeds_ratio.sum())} of {len(d)} differences in "
        f"the activation ratio exceed the largest seed range of the last activation ratio ({100 * ylast:.2f} points)"
    )


def repetition_sentence(res: dict, act: str) -> tuple[str, str]:
    """(code, sentence) for repetition at fixed scale: "fall" or "rise" where the shift of the change from the whole
    split exceeds both its checkpoint-noise 95% half-width and the largest seed range, "none" where it does not,
    "untrained" where no share of the split is trained. Judged at the first trained share whose passes reach those
    of the family's most repeated scale run (``most_passes``; the largest share where none does): that is the
    repetition the scale trend could owe to it, while a share far beyond it, where the model learns its text by
    heart, tests a regime no scale run is in (its memorisation is named beside its shift)."""
    r, t = res["repetition"].query("activation == @act").set_index("split"), res["trends"]
    missing, whole = list(r.run[~r.trained]), r.loc[1]
    tried = [k for k in REPETITION_SPLITS if r.loc[k, "trained"]]
    if not whole.trained or not tried:
        return "untrained", f"not trained yet: {style.word_list(missing)}"
    said, shifts = [f"whole split ({whole.passes:.1f} passes) {_pts(whole.start_change)} points"], {}
    for k in tried:
        v, w = r.loc[k], whole
        d, h = v.start_change - w.start_change, np.hypot(v.start_hi - v.start_change, w.start_hi - w.start_change)
        shifts[k] = d, h
        memo = f", validation loss {v.overfit:.2f} nats above its minimum: memorised" * (v.stability == "overfit")
        said.append(f"1/{k} ({v.passes:.1f} passes{memo}) {_pts(v.start_change)}, a shift of {_pts(d)} ± {100 * h:.2f}")
    most = res["most_passes"]
    past = [k for k in tried if r.loc[k].passes >= most]
    k = past[0] if past else tried[-1]
    shift, half = shifts[k]
    bar = np.nanmax([half, yardstick(res["spread"], act, "start_change")[0]])
    code = "fall" if shift < -bar else "rise" if shift > bar else "none"
    reach = "the first share past" if past else "the largest share trained, short of"
    said.append(f"judged at 1/{k}, {reach} the {most:.1f} passes of the most repeated scale run")
    g = t[t.activation == act].sort_values("params")
    trend = g.start_change.iloc[-1] - whole.start_change
    if len(g) > 1:
        said.append(
            f"the scale trend to {_model(g.run.iloc[-1])} is {_pts(trend)}, of which that shift is {shift / trend:.0%}"
        )
    return code, "; ".join(said) + (f"; not trained yet: {style.word_list(missing)}" if missing else "")


def prefix_sentences(res: dict) -> dict[str, str]:
    """Which scales qualify for the first-passes cut and why the others do not, whether the cut equals a stopped
    run, and the ReLU verdict at the largest qualifying scale, beside the smallest scale over the same window."""
    relu, n, out = res["prefix"].query("activation == 'relu'"), f"{res['passes']:g}", {}
    ok, no = relu[relu.qualifies], relu[~relu.qualifies]
    out["ct_prefix_qualify"] = f"{style.word_list(map(_model, ok.run)) or 'no scale'} qualify; " + (
        "; ".join(f"{_model(r.run)} does not: {r.why}" for r in no.itertuples()) or "none is left out"
    )
    same, other = (style.word_list(map(_model, relu.run[e])) or "none" for e in (relu.exact, ~relu.exact))
    out["ct_prefix_exact"] = f"the cut holds the weights of a run stopped there for {same}" + (
        f"; not for {other}, whose warm-up was 1 % of the whole run, so a run stopped early would have warmed up for "
        "fewer steps"
        if other != "none"
        else ""
    )
    t = res["trends"].query("activation == 'relu'")
    falls = [_model(r.run) for r in t.itertuples() if mini_laws.direction(r.start_lo, r.start_hi) == "falls"]
    out["ct_prefix_falls"] = style.word_list(falls) or "no scale"
    if ok.empty:
        out |= {"ct_prefix_code": "none", "ct_prefix_window": "none", "ct_prefix_verdict": "no scale qualifies"}
        return out
    # the cut tests the fall where a scale that falls over its whole run can be cut; else at the largest cut scale
    cut = ok.run.map(_model)
    cut_falls = ok[cut.isin(falls)]
    top, small = (cut_falls if len(cut_falls) else ok).iloc[-1], relu.run.iloc[0]
    which = "the largest scale cut there whose whole run falls" if len(cut_falls) else "the largest scale cut there"
    out["ct_prefix_which"] = which
    out["ct_prefix_uncut"] = style.word_list(m for m in falls if m not in set(cut))
    # the smallest scale over the cut's window, with the 95% half-width of two of its checkpoints (as mini_laws)
    w = ratio_at(res["plain"][small], top.cut_tpp) - ratio_at(res["plain"][small], top.start_ratio)
    half = mini_laws.Z95 * np.sqrt(2) * t.set_index("run").noise[small]
    out["ct_prefix_code"], out["ct_prefix_window"] = top.direction, mini_laws.direction(w - half, w + half)
    out["ct_prefix_top"], out["ct_prefix_small"] = _model(top.run), _model(small)
    out["ct_prefix_verdict"] = (
        f"the fall {'appears' if top.direction == 'falls' else 'does not appear'} within {n} passes: {which}, "
        f"{_model(top.run)}, changes by {_pts(top.start_change)} "
        f"{_interval(top.start_lo, top.start_hi)} points from {top.start_ratio:.1f} to {top.cut_tpp:.1f} tokens per "
        f"parameter ({top.direction}; over its whole run {_pts(top.whole_change)}), while over whole runs ReLU falls "
        f"at {out['ct_prefix_falls']}. Over the same tokens per parameter, {_model(small)} "
        f"({relu.passes.iloc[0]:.1f} passes in all) changes by {_pts(w)} ± {100 * half:.2f} points "
        f"({out['ct_prefix_window']})"
    )
    return out


REPETITION_SAYS = {  # code of ``repetition_sentence`` -> verdict; the chapter's summary opens with SUMMARY[code]
    "untrained": "the repetition runs are not trained yet",
    "fall": "repetition alone moves the ReLU change towards a fall, as at the larger scales",
    "rise": "repetition alone moves the ReLU change towards a rise, against the larger scales' fall",
    "none": "repetition alone, as much as the scale runs see, does not move the ReLU change beyond checkpoint noise "
    "and the largest seed range",
}
SUMMARY = {
    "untrained": "Whether repetition alone moves the ReLU trend at a fixed scale is not known until the runs on "
    "shares of the split are trained.",
    "fall": "Part of the scale trend of ReLU may be repetition: repetition alone moves it towards the fall.",
    "rise": "Repetition alone moves the ReLU trend away from the larger scales' fall: it does not explain that fall.",
    "none": "Repetition alone, as much as the scale runs see, leaves the ReLU trend of the smallest scale where it is: "
    "it does not explain the larger scales' fall, unless larger models respond to repetition differently (untested).",
}
PREFIX_SAYS = {  # (code of the cut at the scale it tests, same-window code at the smallest) -> text
    "falls": "Within {n} passes the ReLU ratio of {top}, {which}, already falls, and so does {small}'s over the "
    "same tokens per parameter within its first pass: a fall this early marks neither scale nor repetition.",
    "falls alone": "Within {n} passes the ReLU ratio of {top}, {which}, already falls, and {small}'s does not over "
    "the same tokens per parameter: that fall goes with scale, not with repeated passes.",
    "other": "Within {n} passes the ReLU ratio of {top}, {which}, does not fall ({code}).",
    "none": "No scale reaches the start ratio with enough checkpoints within {n} passes to test the cut.",
}
UNCUT_SAYS = (  # appended where scales whose whole runs fall could not be cut
    " The scales whose whole runs fall but cannot be cut ({uncut}) reach too few tokens per parameter within {n} "
    "passes: this control cannot tell whether their fall needs the repeated passes."
)


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapter quotes."""
    d, e = res["neighbours"], [_passes(r) for r in res["plain"].values()]
    out = {"ct_start_ratio": f"{res['start_ratio']:g}", "ct_passes": f"{res['passes']:g}"}
    out |= {"ct_seed_status": sweep_seed_status(res), "ct_rep_model": res["rep_model"]}
    out["ct_passes_range"] = f"{min(e):.1f} to {max(e):.1f}" if e else "–"
    t = res["trends"].query("activation == 'relu'")
    ways = {_model(r.run): mini_laws.direction(r.start_lo, r.start_hi) for r in t.itertuples()}
    word = {"no change resolved": "shows no resolved change"}
    said = [
        f"{word.get(w, w)} at {style.word_list(m for m, v in ways.items() if v == w)}"
        for w in dict.fromkeys(ways.values())
    ]
    out["ct_relu_ways"] = "; ".join(said) or "no ReLU scale run is probed"
    for act in ACTS:
        out[f"ct_seed_{act}"], out[f"ct_neigh_{act}"] = seed_sentence(res, act), neighbour_sentence(res, act)
        out[f"ct_rep_code_{act}"], out[f"ct_rep_{act}"] = repetition_sentence(res, act)
    k = {a: f"{int(d[d.activation == a].exceeds_change.sum())} of {int((d.activation == a).sum())}" for a in ACTS}
    out["ct_fig_seeds_verdict"] = (
        f"{k['relu']} ReLU and {k['silu']} SiLU differences between neighbouring scales exceed the largest seed range"
        if len(d) and np.isfinite(d.seed_change).any()
        else "no seed set with two or more seeds, or fewer than two scales"
    )
    out["ct_rep_verdict"], first = REPETITION_SAYS[out["ct_rep_code_relu"]], SUMMARY[out["ct_rep_code_relu"]]
    out |= prefix_sentences(res)
    pre, win = out["ct_prefix_code"], out["ct_prefix_window"]
    key = pre if pre == "none" else ("falls" if win == "falls" else "falls alone") if pre == "falls" else "other"
    said = {"top": out.get("ct_prefix_top"), "small": out.get("ct_prefix_small"), "code": pre}
    said |= {"which": out.get("ct_prefix_which"), "uncut": out.get("ct_prefix_uncut"), "n": f"{res['passes']:g}"}
    # no uncut list where no scale qualifies: "none" says so alone
    second = PREFIX_SAYS[key].format(**said) + (UNCUT_SAYS.format(**said) if said["uncut"] else "")
    out["ct_summary"] = f"{first} {second}"
    return out
