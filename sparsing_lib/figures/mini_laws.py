"""Laws fitted to our own scale runs: the mini counterparts of Fig. 4's trends, Table 2, Figs. 7 and 8.

The fits are those of the released curves (``refit.refit_released``: the paper's form and the alternatives,
block-bootstrap and profile intervals, AICc, the leave-future-out test), run on our ten scale runs so the
two sources are judged by the same code. Our runs start far earlier in tokens per parameter than the
released curves (which begin near 7.8), so the warm-up rule is stated in tokens per parameter. Each run
has one seed: every interval here covers checkpoint-to-checkpoint noise only, not seed-to-seed spread.
"""

from __future__ import annotations

import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import models, paper, refit, style
from ..checks import check_profile, check_range
from ..laws import ALTERNATIVES, PAPER_FORM, get_form
from ..paths import DATA
from ..profiles import by_profile, provenance
from ..runs import load_runs, parse_run
from .released import N_BOOT_LFO_MAX
from .scale import VERDICT_RATIO, limit_shift, shift_verdict, sparsity_slope, steeper_when_smaller

FOLDER = DATA / "mini_laws"
START_RATIO = 7.8  # tokens per parameter where the authors' released curves begin (median of the ten)
N_BOOT = {"smoke": 5, "full": 1000}
MIN_POINTS = max(get_form(f).n_coef for f in (*PAPER_FORM.values(), *ALTERNATIVES)) + 3  # what laws.fit needs
Z95 = 1.959963984540054
ACTS = ("relu", "silu")


def mini_runs(profile: str) -> dict[str, dict]:
    """Our probed scale runs: the committed ``data/runs`` (replay, full: they are trained on an H200 by
    ``python -m sparsing_lib.run --grid scales``), or the runner's smoke grid trained now in a temporary folder."""
    if check_profile(profile) == "smoke":
        from .. import run  # imports torch; only the smoke profile trains

        folder = run.smoke_runs()
    else:
        folder = DATA / "runs"
    runs = load_runs(folder)
    kinds = {name: models.get_spec(parse_run(name)[0]).kind for name in runs}
    return {n: r for n, r in runs.items() if kinds[n] in (*models.SCALE_FAMILY, "smoke") and "sparsity" in r}


def start_index(tokens, params: float, ratio: float) -> int:
    """Index of the first checkpoint at or beyond ``ratio`` tokens per parameter (len(tokens) if none)."""
    r = np.asarray(tokens, dtype=float) / params
    return int(np.searchsorted(r, ratio * (1 - 1e-9)))


def curves(runs: dict[str, dict], start_ratio: float) -> pd.DataFrame:
    """Every run's checkpoints from ``start_ratio`` tokens per parameter on, as ``refit`` reads curves
    (activation, scale = the run's model, tokens, activation_ratio) plus the parameters."""
    rows = []
    for r in runs.values():
        s, n = r["sparsity"], r["config"]["model"]["non_embedding_params"]
        i = start_index(s["tokens"], n, start_ratio)
        rows.append(
            pd.DataFrame(
                {
                    "activation": r["config"]["activation"],
                    "scale": r["config"]["model"]["name"],
                    "params": n,
                    "tokens": s["tokens"].to_numpy()[i:].astype(float),
                    "activation_ratio": s["activation_ratio"].to_numpy()[i:],
                }
            )
        )
    return pd.concat(rows, ignore_index=True) if rows else pd.DataFrame(columns=["activation", "scale", "tokens"])


def checkpoint_noise(values) -> float:
    """Standard deviation of one checkpoint's value about the smooth trend, from second differences.

    d_i = a_i − (a_{i−1} + a_{i+1})/2 removes any locally linear trend; for independent noise of s.d. σ its
    variance is 1.5·σ². The median absolute deviation makes one kink (a curve's bend) count for little."""
    a = np.asarray(values, dtype=float)
    if len(a) < 4:
        raise ValueError(f"need at least 4 checkpoints to estimate their noise, got {len(a)}")
    d = a[1:-1] - (a[:-2] + a[2:]) / 2
    return float(1.4826 * np.median(np.abs(d - np.median(d))) / np.sqrt(1.5))


def trends(runs: dict[str, dict], start_ratio: float = START_RATIO) -> pd.DataFrame:
    """Per run, the change of the activation ratio to the last checkpoint, from the first stable-phase
    checkpoint and from ``start_ratio`` tokens per parameter, each with a 95% interval ±1.96·√2·σ (two
    checkpoints' noise σ, from ``checkpoint_noise`` over the checkpoints from ``start_ratio`` on, or over all
    of them where fewer than four reach it)."""
    rows = []
    for name, r in runs.items():
        s, n = r["sparsity"], r["config"]["model"]["non_embedding_params"]
        a, t = s["activation_ratio"].to_numpy(), s["tokens"].to_numpy()
        i = start_index(t, n, start_ratio)
        part = a[i:] if len(a) - i >= 4 else a  # a run too short for the start ratio: all its checkpoints
        sigma = checkpoint_noise(part) if len(part) >= 4 else np.nan
        half = Z95 * np.sqrt(2) * sigma
        row = {"run": name, "activation": r["config"]["activation"], "params": n, "noise": sigma}
        for key, j in (("first", 0), ("start", i)):
            ok = j < len(a) - 1
            row[f"{key}_ratio"] = t[j] / n if ok else np.nan
            row[f"{key}_value"] = a[j] if ok else np.nan
            row[f"{key}_change"] = a[-1] - a[j] if ok else np.nan
            row[f"{key}_lo"], row[f"{key}_hi"] = row[f"{key}_change"] - half, row[f"{key}_change"] + half
        row["last"] = a[-1]
        row["epochs"] = float(r["metrics"]["epoch"].iloc[-1])
        rows.append(row)
    return pd.DataFrame(rows).sort_values(["activation", "params"], ignore_index=True)


def direction(lo: float, hi: float) -> str:
    """A change whose 95% interval is [lo, hi]: "rises", "falls", or "no change resolved"."""
    if not np.isfinite(lo) or not np.isfinite(hi):
        return "not measured"
    return "rises" if lo > 0 else "falls" if hi < 0 else "no change resolved"


def settings(n_boot: int = 0, drop_first: int = 0, start_ratio: float = START_RATIO, frac: float = 0.7) -> dict:
    """The fit settings, validated (``n_boot`` 0 = the profile's default)."""
    check_range("n_boot", n_boot, 0, 100_000, int)
    check_range("drop_first", drop_first, 0, 10, int)
    check_range("start_ratio", start_ratio, 0.0, 50.0)
    check_range("frac", frac, 0.3, 0.9)
    return {"n_boot": n_boot, "drop_first": drop_first, "start_ratio": float(start_ratio), "frac": float(frac)}


_EMPTY = {  # the columns the readers below use, for a profile where no run is long enough to fit
    "coef": ["activation", "scale", "form", "name", "value", "ci_lo", "ci_hi"],
    "quality": ["activation", "scale", "form", "rss", "aicc", "converged", "warning"],
    "bands": ["activation", "scale", "tokens", "fit", "lo", "hi"],
    "lfo": ["activation", "scale", "form", "mae", "coverage"],
    "kscan": ["activation", "scale", "k"],
}


def compute(runs: dict[str, dict], n_boot: int, drop_first: int, start_ratio: float, frac: float, **kw) -> dict:
    """``refit.refit_released`` over the runs' curves from ``start_ratio`` on; runs with fewer than
    ``MIN_POINTS`` checkpoints left after the warm-up rule are listed under ``too_short``, not fitted."""
    c = curves(runs, start_ratio)
    size = c.groupby("scale").size() - drop_first
    short = c[c.scale.isin(size.index[size < MIN_POINTS])]
    c = c[~c.scale.isin(short.scale)]
    if c.empty:
        tables = {name: pd.DataFrame(columns=cols) for name, cols in _EMPTY.items()}
    else:
        tables = refit.refit_released(
            c, n_boot, drop_first=drop_first, frac=frac, n_boot_lfo=min(n_boot, N_BOOT_LFO_MAX), **kw
        )
        # a table can come back with no rows and no columns (e.g. no run long enough to hold out its future)
        tables |= {name: pd.DataFrame(columns=cols) for name, cols in _EMPTY.items() if tables[name].empty}
    left = {(r["config"]["activation"], r["config"]["model"]["name"]): 0 for r in runs.values()}
    left |= short.groupby(["activation", "scale"]).size().to_dict()
    fitted = set(zip(c.activation, c.scale))
    rows = [{"activation": a, "scale": m, "n": n} for (a, m), n in left.items() if (a, m) not in fitted]
    tables["too_short"] = pd.DataFrame(rows, columns=["activation", "scale", "n"])
    return tables


def results(profile: str, runs: dict[str, dict] | None = None, **asked) -> dict:
    """Laws fitted to our scale runs (tables as ``refit``'s plus ``too_short``), their trends and settings.

    replay reads ``data/mini_laws/`` (refusing other settings); smoke fits ``runs`` (the chapter's smoke-trained
    toy runs) with a tiny bootstrap and, unless asked otherwise, from their first checkpoint (they end near 3
    tokens per parameter, before the start ratio); full fits the committed runs with 1,000 resamples and writes
    the folder."""
    if profile == "smoke":
        asked.setdefault("start_ratio", 0.0)
    st = settings(**asked)
    runs = mini_runs(profile) if runs is None else runs

    def replay() -> tuple[dict, dict]:
        tables, meta = refit.load_results(FOLDER)
        tables["too_short"] = pd.read_csv(FOLDER / "too_short.csv")
        stored = meta["settings"]
        if any(st[k] != stored[k] for k in ("drop_first", "start_ratio", "frac")) or st["n_boot"] not in (
            0,
            stored["n_boot"],
        ):
            raise ValueError(f"the committed fits use {stored}; you asked for {st}. Use profile='smoke' or 'full'.")
        return tables, meta

    def recompute(prof: str) -> tuple[dict, dict]:
        run = {**st, "n_boot": st["n_boot"] or N_BOOT[prof]}
        start = time.time()
        tables = compute(runs, **run)
        command = "papermill book/data_activation.ipynb out.ipynb -p profile full"
        return tables, {"settings": run, **provenance(command, time.time() - start)}

    def save(r: tuple[dict, dict]) -> None:
        refit.save_results(r[0], FOLDER, r[1])
        r[0]["too_short"].to_csv(FOLDER / "too_short.csv", index=False)

    tables, meta = by_profile(profile, replay, recompute, save)
    return {**tables, "meta": meta, "runs": runs, "trends": trends(runs, meta["settings"]["start_ratio"])}


# ---------------------------------------------------------------------------------------------------------
# Table 2, Figs. 7 and 8 from our runs


def fit_status(warning: str) -> str:
    """One word for a fit's state: "inside bounds", "on a bound (names)" or "not converged"."""
    w = warning if isinstance(warning, str) else ""
    if "did not converge" in w:
        return "not converged"
    return "on a bound (" + w.split("on a bound: ")[1] + ")" if "on a bound" in w else "inside bounds"


def _own(res: dict, table: str) -> pd.DataFrame:
    t = res[table]
    return t[t.form == t.activation.map(PAPER_FORM)] if len(t) else t


def table2(res: dict) -> pd.DataFrame:
    """Mini Table 2: the paper's law per run, coefficients with bootstrap 95% intervals (A0 also profile),
    fit state, RSS, ΔAICc to the best alternative (> 0: an alternative is better) and held-out MAE."""
    rows, q = [], res["quality"]
    for (act, model), g in _own(res, "coef").groupby(["activation", "scale"], sort=False):
        qq = q[(q.activation == act) & (q.scale == model)].set_index("form")
        form = PAPER_FORM[act]
        status = fit_status(qq.loc[form, "warning"])
        alt = qq.drop(index=form).aicc
        row = {"run": f"{model}-{act}", "law": form, "fit": status}
        for name, v in g.set_index("name").iterrows():
            cell = f"{v.value:.3g} [{v.ci_lo:.3g}, {v.ci_hi:.3g}]"
            row["A0 (profile)" if name == "A0_profile" else name] = cell if status == "inside bounds" else status
        lf = res["lfo"]
        lf = lf[(lf.activation == act) & (lf.scale == model)].set_index("form")
        row |= {
            "RSS": qq.loc[form, "rss"],
            "ΔAICc to best alternative": qq.loc[form, "aicc"] - alt.min(),
            "best alternative": alt.idxmin(),
            "held-out MAE (points)": 100 * lf.mae.get(form, np.nan),
        }
        rows.append(row)
    for r in res["too_short"].itertuples():
        rows.append({"run": f"{r.scale}-{r.activation}", "law": PAPER_FORM[r.activation], "fit": "too few checkpoints"})
    cols = ["run", "law", "fit", "alpha", "b", "c", "A0", "A0 (profile)", "RSS", "ΔAICc to best alternative"]
    cols += ["best alternative", "held-out MAE (points)"]
    return pd.DataFrame(rows).reindex(columns=cols)


def limits(res: dict) -> pd.DataFrame:
    """The paper-form limit A0 per run with bootstrap and profile intervals, and whether it is identifiable:
    the fit is inside its bounds and the profile interval does not reach A0's bound (0 or 1)."""
    c, q = _own(res, "coef"), _own(res, "quality").set_index(["activation", "scale"])
    rows = []
    for (act, model), g in c.groupby(["activation", "scale"], sort=False):
        g = g.set_index("name")
        boot, prof = g.loc["A0"], g.loc["A0_profile"]
        ok = fit_status(q.loc[(act, model), "warning"]) == "inside bounds" and 0 < prof.ci_lo and prof.ci_hi < 1
        params = models.get_spec(model).non_embedding_params
        rows.append(
            {"activation": act, "model": model, "params": params, "A0": boot.value, "lo": boot.ci_lo}
            | {"hi": boot.ci_hi, "p_lo": prof.ci_lo, "p_hi": prof.ci_hi, "identifiable": bool(ok)}
        )
    cols = ["activation", "model", "params", "A0", "lo", "hi", "p_lo", "p_hi", "identifiable"]
    return pd.DataFrame(rows, columns=cols).sort_values(["activation", "params"], ignore_index=True)


def fig7(res: dict) -> plt.Figure:
    """Mini Fig. 7: identifiable limits A0 with bootstrap and profile 95% intervals against parameters."""
    lim, marks = limits(res), style.series_style(["bootstrap", "profile"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, act in zip(axes, ACTS):
        ok = lim[(lim.activation == act) & lim.identifiable]
        for key, lo, hi, shift in (("bootstrap", "lo", "hi", 0.97), ("profile", "p_lo", "p_hi", 1.03)):
            yerr = 100 * np.abs(np.vstack([ok.A0 - ok[lo], ok[hi] - ok.A0]))
            x, m = ok.params / 1e6 * shift, marks[key]
            ax.errorbar(
                x, 100 * ok.A0, yerr=yerr, fmt=m["marker"], color=m["color"], capsize=3, label=f"fit, {key} 95%"
            )
        short = res["too_short"]
        gone = [*lim[(lim.activation == act) & ~lim.identifiable].model, *short[short.activation == act].scale]
        note = "not identifiable: " + (", ".join(gone) if gone else "none")
        if ok.empty:
            ax.text(0.5, 0.5, "no identifiable limit", transform=ax.transAxes, ha="center", color="grey")
            ax.set_yticks([])
        ax.text(0.02, 0.02, note, transform=ax.transAxes, fontsize=7, va="bottom")
        ax.set(title=f"{style.ACT_LABEL[act]}: our runs", xlabel="non-embedding parameters (M, log scale)")
        ax.set(xscale="log", ylabel="limit activation ratio (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def _laws(res: dict) -> dict[tuple[str, str], dict[str, float]]:
    """Paper-form coefficients of the identifiable fits (see ``limits``), keyed by (activation, model): a fit
    whose limit runs to a bound has an undetermined shape too, so its derivative is not drawn either."""
    c, lim = _own(res, "coef"), limits(res)
    ok = set(zip(lim.activation[lim.identifiable], lim.model[lim.identifiable]))
    return {(a, m): dict(zip(g.name, g.value)) for (a, m), g in c.groupby(["activation", "scale"]) if (a, m) in ok}


def fig8(res: dict) -> plt.Figure:
    """Mini Fig. 8: d(1 − A)/dD of every identifiable fit against tokens per non-embedding parameter."""
    laws, lim = _laws(res), limits(res)
    looks = style.series_style(list(dict.fromkeys(lim.sort_values("params").model)))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, act in zip(axes, ACTS):
        for r in lim[lim.activation == act].itertuples():
            if (act, r.model) not in laws:
                ax.plot([], [], ls="none", label=f"{r.model}: not identifiable", **looks[r.model])
                continue
            t = res["runs"][f"{r.model}-{act}"]["sparsity"]["tokens"]
            ratio = np.linspace(res["meta"]["settings"]["start_ratio"] or t.min() / r.params, t.max() / r.params, 200)
            y = sparsity_slope(act, laws[(act, r.model)], ratio * r.params)
            ax.plot(ratio, y, lw=1.6, markevery=25, ms=4, label=r.model, **looks[r.model])
        if not any(a == act for a, _ in laws):
            ax.text(0.5, 0.5, "no identifiable fit", transform=ax.transAxes, ha="center", color="grey")
            ax.set_xlim(0, 100)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(VERDICT_RATIO, color="k", lw=0.5, ls=":")
        ax.set(title=f"{style.ACT_LABEL[act]}: our runs", xlabel="training tokens / non-embedding parameters")
        ax.set(ylabel="d(1 − A)/dD  (per billion tokens)", yscale="symlog")
        ax.set_yscale("symlog", linthresh=1e-2)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def faster_when_smaller(res: dict) -> dict[str, bool | None]:
    """Per activation, ``steeper_when_smaller`` over the identifiable fits (None: fewer than two)."""
    laws, lim, out = _laws(res), limits(res), {}
    for act in ACTS:
        ok = lim[(lim.activation == act) & lim.model.map(lambda m, a=act: (a, m) in laws)]
        out[act] = (
            steeper_when_smaller(act, [laws[(act, m)] for m in ok.model], list(ok.params)) if len(ok) > 1 else None
        )
    return out


# ---------------------------------------------------------------------------------------------------------
# Fig. 4 from our runs: the trend of each run


def fig4_trends(res: dict) -> plt.Figure:
    """The change of each run's activation ratio to its last checkpoint, from its first stable-phase
    checkpoint and from the start ratio, with 95% intervals for checkpoint noise."""
    t = res["trends"]
    looks = style.series_style(["first", "start"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    for ax, act in zip(axes, ACTS):
        g = t[t.activation == act].reset_index(drop=True)
        for key, shift, label in (
            ("first", -0.12, "from the first checkpoint"),
            ("start", 0.12, "from the start ratio"),
        ):
            yerr = 100 * np.vstack([g[f"{key}_change"] - g[f"{key}_lo"], g[f"{key}_hi"] - g[f"{key}_change"]])
            m = looks[key]
            ax.errorbar(
                g.index + shift,
                100 * g[f"{key}_change"],
                yerr=yerr,
                fmt=m["marker"],
                color=m["color"],
                capsize=3,
                label=label,
            )
        ax.axhline(0, color="k", lw=0.5)
        ax.set_xticks(g.index, [r.rsplit("-", 1)[0] for r in g.run], rotation=20, fontsize=8)
        ax.set_xlim(-0.5, len(g) - 0.5)
        ax.set(title=f"{style.ACT_LABEL[act]}: our runs", ylabel="change to the last checkpoint (points of %)")
        ax.set_yscale("symlog", linthresh=1.0)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------
# Verdicts, claims and the numbers the chapters quote


def trend_verdict(trends: pd.DataFrame, act: str) -> str:
    """How the runs with ``act`` move from the start ratio to their last checkpoint, against the paper's
    direction (ReLU falls, SiLU rises), counting only changes whose interval excludes zero."""
    t = trends[trends.activation == act]
    if t.empty:
        return f"no {style.ACT_LABEL[act]} run was probed"
    ways = [direction(lo, hi) for lo, hi in zip(t.start_lo, t.start_hi)]
    want = "falls" if act == "relu" else "rises"
    counts = {w: ways.count(w) for w in ("rises", "falls", "no change resolved", "not measured") if w in ways}
    told = ", ".join(f"{w} in {k}" for w, k in counts.items())
    return f"{told} of {len(ways)} runs (the paper: {want})"


def _change(lim: pd.DataFrame) -> tuple[float, float] | None:
    """Change of the identifiable limit from the smallest to the largest such run, and its 95% half-width
    (bootstrap half-widths added in quadrature); None with fewer than two identifiable runs."""
    ok = lim[lim.identifiable]
    if len(ok) < 2:
        return None
    a, b = ok.iloc[0], ok.iloc[-1]
    half = np.hypot((a.hi - a.lo) / 2, (b.hi - b.lo) / 2)
    return float(b.A0 - a.A0), float(half)


def claims(res: dict) -> list[dict]:
    """Claims 6, 7 and 13 (data/claims.csv) as far as our scale runs bear on them (basis "our runs")."""
    t, lim = res["trends"], limits(res)
    out = []
    ways = {act: [direction(r.start_lo, r.start_hi) for r in t[t.activation == act].itertuples()] for act in ACTS}
    status = _own(res, "quality")
    law_ok = {act: int((status[status.activation == act].warning.fillna("") == "").sum()) for act in ACTS}
    n = {act: len(ways[act]) for act in ACTS}
    good = {act: ways[act].count("falls" if act == "relu" else "rises") for act in ACTS}
    if any(ways[a].count("not measured") == n[a] for a in ACTS):
        v = "untested"
    elif all(good[a] == n[a] and law_ok[a] == n[a] for a in ACTS):
        v = "holds"
    elif good["relu"] == 0 and good["silu"] == 0:
        v = "does not hold"
    else:
        v = "partly holds"
    note = (
        f"from {res['meta']['settings']['start_ratio']:g} tokens per parameter, ReLU falls in {good['relu']} of "
        f"{n['relu']} runs and SiLU rises in {good['silu']} of {n['silu']} (95% intervals for checkpoint noise); "
        f"the paper's law fits inside its bounds for {law_ok['relu']} ReLU and {law_ok['silu']} SiLU runs"
    )
    out.append({"id": 6, "verdict": v, "basis": "our runs", "note": note})
    ok = lim[lim.identifiable]
    pairs = ok.pivot(index="model", columns="activation", values="A0").dropna() if len(ok) else pd.DataFrame()
    if pairs.empty or not {"relu", "silu"} <= set(pairs.columns):
        last = t.pivot(index="params", columns="activation", values="last").dropna()
        ratio = (last["silu"] / last["relu"]) if {"relu", "silu"} <= set(last.columns) else pd.Series(dtype=float)
        extra = f"; at the last checkpoint SiLU is {ratio.min():.1f}–{ratio.max():.1f} times ReLU" if len(ratio) else ""
        out.append(
            {
                "id": 7,
                "verdict": "untested",
                "basis": "our runs",
                "note": "no scale has both limits identifiable" + extra,
            }
        )
    else:
        r = pairs["silu"] / pairs["relu"]
        v = "holds" if (r >= 5).all() else "partly holds" if (r > 1).all() else "does not hold"
        note = f"SiLU/ReLU limit ratio {r.min():.1f}–{r.max():.1f} at {len(r)} scale(s) with both limits identifiable"
        out.append({"id": 7, "verdict": v, "basis": "our runs", "note": note})
    per = {act: _change(lim[lim.activation == act]) for act in ACTS}
    kind = {act: "untested" if ch is None else limit_shift(*ch) for act, ch in per.items()}
    v = shift_verdict(list(kind.values()))
    said = [
        f"{style.ACT_LABEL[a]} {100 * ch[0]:+.1f} ± {100 * ch[1]:.1f} points"
        if ch
        else f"{style.ACT_LABEL[a]} no two limits identifiable"
        for a, ch in per.items()
    ]
    note = "limit change from the smallest to the largest identifiable run: " + "; ".join(said)
    out.append({"id": 13, "verdict": v, "basis": "our runs", "note": note})
    return out


def _moves(r) -> str:
    """One run's two trend measurements, in points of activation ratio with their 95% intervals."""
    v = {
        k: 100 * getattr(r, k) for k in ("first_change", "first_lo", "first_hi", "start_change", "start_lo", "start_hi")
    }
    say = [
        f"{v[k + '_change']:+.2f} [{v[k + '_lo']:+.2f}, {v[k + '_hi']:+.2f}]"
        if np.isfinite(v[k + "_lo"])
        else "not measured"
        for k in ("first", "start")
    ]
    model = r.run.rsplit("-", 1)[0]
    start = f"from {r.start_ratio:.1f} tokens per parameter" if np.isfinite(r.start_ratio) else "from the start ratio"
    return f"{model} {say[0]} from the first checkpoint, {say[1]} {start}"


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapters quote about the laws fitted to our runs."""
    t, st, meta = res["trends"], res["meta"]["settings"], res["meta"]
    lim, tab = limits(res), table2(res)
    out = {
        "ml_start_ratio": f"{st['start_ratio']:g}",
        "ml_drop_first": f"{st['drop_first']}",
        "ml_n_boot": f"{st['n_boot']:,}",
        "ml_seconds": f"{meta['seconds']:.0f}" if meta.get("seconds") is not None else "–",
        "ml_hardware": meta.get("hardware", "–"),
        "ml_n_runs": f"{len(t)}",
        "ml_epochs_small": f"{t.loc[t.params.idxmin(), 'epochs']:.1f}" if len(t) else "–",
        "ml_epochs_large": f"{t.loc[t.params.idxmax(), 'epochs']:.1f}" if len(t) else "–",
        "ml_relu_trend": trend_verdict(t, "relu"),
        "ml_silu_trend": trend_verdict(t, "silu"),
    }
    for act in ACTS:
        fits = tab[tab.law == PAPER_FORM[act]]
        out[f"ml_{act}_inside"] = f"{int((fits.fit == 'inside bounds').sum())} of {len(fits)}"
        ok = lim[(lim.activation == act) & lim.identifiable]
        out[f"ml_{act}_limits"] = (
            ", ".join(f"{r.model} {100 * r.A0:.1f} % [{100 * r.lo:.1f}, {100 * r.hi:.1f}]" for r in ok.itertuples())
            or "none"
        )
    for act in ACTS:
        out[f"ml_{act}_moves"] = "; ".join(_moves(r) for r in t[t.activation == act].itertuples()) or "none"
    faster = faster_when_smaller(res)
    word = {True: "holds", False: "does not hold for every pair of neighbouring runs", None: "cannot be tested"}
    out["ml_fig8_relu"], out["ml_fig8_silu"] = word[faster["relu"]], word[faster["silu"]]
    agree = [
        trend_verdict(t, a).startswith(("falls" if a == "relu" else "rises") + f" in {(t.activation == a).sum()} ")
        for a in ACTS
    ]
    status = {2: "reproduced", 1: "partly reproduced", 0: "differs"}[sum(agree)]
    if not np.isfinite(t.get("start_change", pd.Series(dtype=float))).any():
        status = "not measured"
    out["ml_fig4_verdict"] = (
        f"{status} by our runs: from {out['ml_start_ratio']} tokens per parameter, ReLU {out['ml_relu_trend']}; "
        f"SiLU {out['ml_silu_trend']}."
    )
    out["ml_table2_verdict"] = (
        f"the paper's law fits inside its bounds for {out['ml_relu_inside']} ReLU and {out['ml_silu_inside']} "
        "SiLU runs; coefficients of the other fits are not estimates and are not shown."
    )
    out["ml_fig7_verdict"] = (
        f"identifiable SiLU limits: {out['ml_silu_limits']}; identifiable ReLU limits: {out['ml_relu_limits']}."
    )
    out["ml_fig8_verdict"] = (
        f"at {VERDICT_RATIO:.0f} tokens per parameter, 'smaller converges faster' {out['ml_fig8_silu']} for our "
        f"SiLU fits and {out['ml_fig8_relu']} for our ReLU fits (identifiable fits only)."
    )
    return out


def paper_table2() -> pd.DataFrame:
    """The paper's printed Table 2 with readable columns, to sit beside ``table2``."""
    t = paper.table2()
    return pd.DataFrame(
        {"activation": t.activation.map(style.ACT_LABEL), "scale": t.scale, "law": t.activation.map(PAPER_FORM)}
        | {k: t[k] for k in ("alpha", "b", "c", "A0")}
    )
