"""Width–depth ratio (paper §5.2): Figs. 5 and 6 reproduced by our own runs.

The authors released no data for these figures, so everything here comes from the six ``wd-*-relu``
variants of mini-192x4 (about 1.70M non-embedding parameters each, 50 tokens per parameter) and
mini-192x4-relu itself, which trained on 100 tokens per parameter. To compare at equal data, the reference
is cut at the variants' tokens per parameter before anything is fitted.

Per run, the limit activation ratio is the A0 of the paper's ReLU law where that law is identifiable on the
run (the fit converges away from every bound); otherwise the mean of the last checkpoints stands in, with a
t-interval that covers checkpoint-to-checkpoint noise only (one seed per run). The limit loss is the ``E``
of ``limit_loss.fit_limit_loss``; where that extrapolation is not determined, the comparison falls back to the
mean of the last validation losses. Fig. 5's claim of a linear rise up to a bottleneck and a plateau after
it is tested by comparing a straight line with a rise-then-plateau broken line by AICc.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy import stats

from .. import laws, style
from ..checks import check_range
from ..paths import DATA, ROOT
from ..profiles import by_profile
from ..runs import load_runs
from .limit_loss import FIT_FROM, fit_limit_loss

FORM = laws.PAPER_FORM["relu"]
REFERENCE = "mini-192x4-relu"
PAPER_BOTTLENECK = 114.0
PAPER_PLATEAU = 0.08
PAPER_BEST = (74.0, 282.0)
TAIL = 1 / 6  # share of the tokens whose checkpoints are averaged where a limit cannot be fitted
SLOPE_TAIL = 1 / 3  # share of the tokens whose trend says whether a curve is still moving
MIN_POINTS = 7  # AICc judges a broken line (3 coefficients + noise) from this many ratios on (n - k - 1 >= 2)
DECISIVE = 2.0  # an AICc difference below this does not prefer either model
FITTED, MEAN = "fitted limit A0", f"mean of the checkpoints in the last {TAIL:.0%} of the tokens"


# ----------------------------------------------------------------------------- per run


def _window(tokens, frac: float) -> np.ndarray:
    """The checkpoints in the last ``frac`` of the tokens compared (at least the last two)."""
    t = np.asarray(tokens, dtype=float)
    keep = t >= (1 - frac) * t[-1] if len(t) else np.zeros(0, bool)
    keep[-min(2, len(t)) :] = True
    return keep


def tail_mean(tokens, values, frac: float = TAIL, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of the checkpoints in the last ``frac`` of the tokens, with a Student-t interval. A window in
    tokens, not a count of checkpoints, because the reference run's checkpoints are twice as far apart.
    The interval treats those checkpoints as independent draws around a level, so it measures checkpoint
    noise only (not seed-to-seed spread, and not a drift that continues after the last checkpoint)."""
    v = np.asarray(values, dtype=float)[_window(tokens, frac)]
    if len(v) < 2:
        return float(v.mean()) if len(v) else np.nan, np.nan, np.nan
    half = stats.t.ppf(0.5 + level / 2, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v))
    return float(v.mean()), float(v.mean() - half), float(v.mean() + half)


def tail_slope(tokens, values, frac: float = SLOPE_TAIL, level: float = 0.95) -> tuple[float, float, float]:
    """Slope of a straight line through the checkpoints in the last ``frac`` of the tokens, per 10M tokens,
    with its t-interval: whether a curve is still moving at the end, which a tail mean cannot say."""
    keep = _window(tokens, frac)
    t, v = np.asarray(tokens, dtype=float)[keep] / 1e7, np.asarray(values, dtype=float)[keep]
    if len(v) < 3:
        return np.nan, np.nan, np.nan
    fit = stats.linregress(t, v)
    half = stats.t.ppf(0.5 + level / 2, len(v) - 2) * fit.stderr
    return float(fit.slope), float(fit.slope - half), float(fit.slope + half)


def limit_ratio(tokens, ratio, n_boot: int = 100, seed: int = 0) -> dict:
    """The limit activation ratio of one run: the A0 of the paper's ReLU law with its block-bootstrap and
    profile intervals where the law is identifiable, else the mean of the last checkpoints (``how`` says
    which, ``fit_note`` why the law was not used)."""
    try:
        f = laws.fit(tokens, ratio, FORM, profile=False)  # intervals only for a law that will be used
        note = f.warning
        if f.ok:
            f = laws.fit(tokens, ratio, FORM, n_boot=n_boot, seed=seed)
    except ValueError as err:  # too few checkpoints for the law
        f, note = None, str(err).split(":")[0]
    if f is not None and f.ok:
        lo, hi = f.ci.get("A0", (np.nan, np.nan))
        plo, phi = f.ci["A0_profile"]
        return dict(how=FITTED, value=f.params["A0"], lo=lo, hi=hi, profile_lo=plo, profile_hi=phi, fit_note="")
    mean, lo, hi = tail_mean(tokens, ratio)
    return dict(how=MEAN, value=mean, lo=lo, hi=hi, profile_lo=np.nan, profile_hi=np.nan, fit_note=note)


def limit_loss(tokens, loss, n_boot: int = 100, seed: int = 0) -> dict:
    """``limit_loss.fit_limit_loss`` on the validation losses from ``FIT_FROM`` of the run on, with a word
    for the fits that are not determined: the limit on a bound (0, or the lowest measured loss) or an
    interval that reaches 0 (the data do not bound the extrapolation)."""
    t, y = np.asarray(tokens, dtype=float), np.asarray(loss, dtype=float)
    keep = t >= FIT_FROM * t[-1]
    failed = dict(limit=np.nan, limit_lo=np.nan, limit_hi=np.nan, limit_status="not fitted")
    if keep.sum() < 5:  # three coefficients need at least two points more than they are to be a fit
        return failed
    try:
        fit = fit_limit_loss(t[keep], y[keep], n_boot, seed)
    except (RuntimeError, ValueError, TypeError):  # no convergence
        return failed
    return dict(limit=fit["limit"], limit_lo=fit["lo"], limit_hi=fit["hi"], limit_status=fit["status"])


def tokens_per_param_cap(runs: dict[str, dict]) -> float | None:
    """The tokens per parameter the width–depth variants reached (the largest among them), or None when
    the runs hold no variant (the smoke grid): the reference is cut here to compare at equal data."""
    ends = [
        r["metrics"]["tokens"].iloc[-1] / r["config"]["model"]["non_embedding_params"]
        for r in runs.values()
        if r["config"]["model"]["kind"] == "width_depth"
    ]
    return max(ends) if ends else None


def points(runs: dict[str, dict], cap: float | None, n_boot: int = 100, seed: int = 0) -> pd.DataFrame:
    """One row per run, by width/depth ratio: its shape, the data it is compared on (cut at ``cap`` tokens
    per parameter), its limit activation ratio and its limit and last validation losses."""
    rows = []
    for name, r in runs.items():
        model, s, m = r["config"]["model"], r["sparsity"], r["metrics"].dropna(subset=["val_loss"])
        n = model["non_embedding_params"]
        if cap is not None:
            end = cap * n * (1 + 1e-3)
            s, m = s[s["tokens"] <= end], m[m["tokens"] <= end]
        row = dict(run=name, width=model["d_model"], depth=model["n_layers"], heads=model["n_heads"])
        row |= dict(ratio=model["d_model"] / model["n_layers"], head_dim=model["head_dim"], params=n)
        row |= dict(tokens_per_param=m["tokens"].iloc[-1] / n, checkpoints=len(s))
        row["epochs"] = float(r["metrics"].loc[r["metrics"]["tokens"] <= m["tokens"].iloc[-1], "epoch"].iloc[-1])
        row["truncated"] = len(m) < len(r["metrics"].dropna(subset=["val_loss"]))
        row["last_ratio"] = float(s["activation_ratio"].iloc[-1])
        row["tail_ratio"] = tail_mean(s["tokens"], s["activation_ratio"])[0]
        row |= dict(zip(("slope", "slope_lo", "slope_hi"), tail_slope(s["tokens"], s["activation_ratio"])))
        row |= limit_ratio(s["tokens"], s["activation_ratio"], n_boot, seed)
        row |= limit_loss(m["tokens"], m["val_loss"], n_boot, seed)
        row |= dict(zip(("loss_tail", "loss_tail_lo", "loss_tail_hi"), tail_mean(m["tokens"], m["val_loss"])))
        rows.append(row | dict(loss_last=float(m["val_loss"].iloc[-1])))
    return pd.DataFrame(rows).sort_values("ratio", ignore_index=True)


# ----------------------------------------------------------------------------- across runs


def _line_rss(X: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    coef, *_ = np.linalg.lstsq(X, y, rcond=None)
    r = X @ coef - y
    return coef, float(r @ r)


def plateau_fit(x, y, n_grid: int = 400) -> dict:
    """Least squares of the broken line ``y = a + b·min(x, k)`` (a linear rise up to the bottleneck k, flat
    after it), k searched on a log grid between the second-smallest and second-largest x so that each side
    keeps two points. Returns a, b, k, rss and the profile-likelihood 95% interval of k on that grid,
    widened by one grid step on each side so that the grid's resolution never makes it too narrow."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    xs = np.sort(x)
    grid = np.geomspace(xs[1], xs[-2], n_grid)
    fits = [_line_rss(np.column_stack([np.ones_like(x), np.minimum(x, k)]), y) for k in grid]
    rss = np.array([f[1] for f in fits])
    i = int(rss.argmin())
    inside = np.flatnonzero(len(x) * np.log(np.maximum(rss, 1e-300) / max(rss[i], 1e-300)) <= stats.chi2.ppf(0.95, 1))
    lo, hi = grid[max(inside.min() - 1, 0)], grid[min(inside.max() + 1, n_grid - 1)]  # widened by the grid's step
    return dict(a=fits[i][0][0], b=fits[i][0][1], k=grid[i], rss=rss[i], k_lo=lo, k_hi=hi)


def shape_test(x, y) -> dict:
    """Straight line against rise-then-plateau, by AICc (``laws.aicc``; the bottleneck counts as a
    coefficient). ``preferred`` is "plateau", "line" or "neither" (|ΔAICc| < 2), or "too few points".
    ``rise`` tests the paper's rising half alone: the slope of a line through the ratios up to the paper's
    bottleneck, with its t-interval."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict = dict(n=len(np.unique(x)), preferred="too few points")
    low = x <= PAPER_BOTTLENECK
    if low.sum() >= 3 and np.ptp(x[low]) > 0:
        fit = stats.linregress(x[low], y[low])
        half = stats.t.ppf(0.975, low.sum() - 2) * fit.stderr
        out.update(rise_slope=fit.slope, rise_lo=fit.slope - half, rise_hi=fit.slope + half, n_rise=int(low.sum()))
    if out["n"] < 4:  # the broken line needs two points on each side of its bottleneck
        return out
    line, line_rss = _line_rss(np.column_stack([np.ones_like(x), x]), y)
    plat = plateau_fit(x, y)
    out.update(
        line_a=line[0],
        line_b=line[1],
        line_rss=line_rss,
        aicc_line=laws.aicc(line_rss, len(x), 2),
        aicc_plateau=laws.aicc(plat["rss"], len(x), 3),
        **{f"plateau_{k}": v for k, v in plat.items()},
    )
    out["delta"] = out["aicc_line"] - out["aicc_plateau"]  # > 0 favours the plateau
    if out["n"] < MIN_POINTS:
        out["preferred"] = "too few for AICc"
        return out
    out["preferred"] = "plateau" if out["delta"] >= DECISIVE else "line" if out["delta"] <= -DECISIVE else "neither"
    return out


def best_region(df: pd.DataFrame) -> dict:
    """Where the loss is best: the lowest point and every ratio whose 95% interval overlaps the lowest
    point's. Uses the fitted limit losses when every one is determined, else the mean of the last
    validation losses. ``deep_worse``: the smallest ratio's interval lies wholly above the best one's."""
    if len(df) < 3:
        return dict(quantity="too few points")
    use_limit = bool((df["limit_status"] == "determined").all())
    v, lo, hi = (
        df[c]
        for c in (("limit", "limit_lo", "limit_hi") if use_limit else ("loss_tail", "loss_tail_lo", "loss_tail_hi"))
    )
    b = int(v.idxmin())
    region = df.loc[(lo <= hi[b]) & (hi >= lo[b]), "ratio"]
    deep = int(df["ratio"].idxmin())
    return dict(
        quantity="fitted limit loss" if use_limit else "mean of the last validation losses",
        best_run=df.loc[b, "run"],
        best_ratio=df.loc[b, "ratio"],
        region_lo=region.min(),
        region_hi=region.max(),
        deep_worse=bool(deep != b and lo[deep] > hi[b]),
        deep_run=df.loc[deep, "run"],
        in_paper=bool(PAPER_BEST[0] <= df.loc[b, "ratio"] <= PAPER_BEST[1]),
        within_paper=bool(PAPER_BEST[0] <= region.min() and region.max() <= PAPER_BEST[1]),
    )


# ----------------------------------------------------------------------------- profiles


def _analyse(runs: dict[str, dict], names: list[str], n_boot: int, seed: int) -> dict:
    runs = {n: runs[n] for n in names if n in runs and "sparsity" in runs[n]}
    if not runs:
        raise ValueError(f"none of the runs {', '.join(names)} is probed in this folder")
    cap = tokens_per_param_cap(runs)
    df = points(runs, cap, n_boot, seed)
    return dict(
        points=df,
        cap=cap,
        shape=shape_test(df["ratio"], df["value"]),
        shape_tail=shape_test(df["ratio"], df["tail_ratio"]),
        shape_no_widest=shape_test(df["ratio"].iloc[:-1], df["value"].iloc[:-1]),
        loss=best_region(df),
        runs={n: runs[n] for n in df["run"]},
    )


def results(profile: str = "replay", n_boot: int = 100, seed: int = 0) -> dict:
    """The seven points of Figs. 5 and 6 under the profile contract. replay analyses the committed
    ``data/runs`` (about 20 s on two cores, so nothing is cached); smoke trains the runner's smoke grid
    (two tiny models, CPU) in a temporary folder and treats them as the only points; full trains the
    width–depth grid with the runner on a CUDA GPU into ``data/runs`` (each run's provenance is in its
    env.json) and analyses it."""
    check_range("n_boot", n_boot, 0, 2000, int)
    from .. import run  # the runner imports torch; only the training profiles need it

    def replay() -> dict:
        return _analyse(load_runs(DATA / "runs"), run.GRIDS["width_depth"], n_boot, seed)

    def recompute(p: str) -> dict:
        if p == "smoke":
            out, code = run.smoke_runs(), 0
        else:
            import torch

            if not torch.cuda.is_available():
                raise RuntimeError(
                    "profile='full' trains the width-depth grid (python -m sparsing_lib.run --grid width_depth) "
                    "and needs a CUDA GPU (the committed runs used one NVIDIA H200); use 'replay' here"
                )
            out = DATA / "runs"
            code = run.main(["--grid", "width_depth", "--out", str(out), "--ckpt", str(ROOT / ".scratch" / "ckpt")])
        if code:
            raise RuntimeError(f"the runner reported failed runs in {out}; see each run's env.json")
        return _analyse(load_runs(out), run.GRIDS[p if p == "smoke" else "width_depth"], n_boot, seed)

    return by_profile(profile, replay, recompute, save=lambda res: None)


# ----------------------------------------------------------------------------- figures


def _bars(ax: plt.Axes, x, y, lo, hi, **kw) -> None:
    """Error bars from interval ends; where an interval is missing the point is drawn alone."""
    y = np.asarray(y, dtype=float)
    err = np.vstack([y - lo, np.asarray(hi, dtype=float) - y]).reshape(2, -1)
    ax.errorbar(x, y, yerr=np.where(np.isfinite(err), err, 0), capsize=3, **kw)


def fig5(res: dict) -> Figure:
    """Fig. 5. Left: each run's CETT-PPL-1% activation ratio against tokens per parameter (cut at the
    variants' data), with the paper's law where it is identifiable. Right: the limit against the width/depth
    ratio, filled markers for fitted A0 (block-bootstrap 95% interval), hollow squares for the mean of the
    last checkpoints (t-interval, checkpoint noise only); the line and broken-line fits, and the paper's
    bottleneck and plateau level for reference."""
    df, looks = res["points"], style.series_style(list(res["points"]["run"]))
    fig, (left, right) = plt.subplots(1, 2, figsize=(12.5, 4.6))
    for row in df.itertuples():
        r, st = res["runs"][row.run], looks[row.run]
        s, n = r["sparsity"], row.params
        s = s[s["tokens"] <= row.tokens_per_param * n * (1 + 1e-3)]
        label = f"{row.run} (d/L {row.ratio:.0f})"
        left.plot(s["tokens"] / n, 100 * s["activation_ratio"], ms=3.5, lw=0.8, label=label, **st)
        if row.how == FITTED:
            f = laws.fit(s["tokens"], s["activation_ratio"], FORM, profile=False)
            t = np.linspace(s["tokens"].min(), s["tokens"].max(), 200)
            left.plot(t / n, 100 * f.predict(t), color=st["color"], lw=1.6, ls="--")
    left.plot([], [], color="grey", ls="--", label="paper's ReLU law, fitted")
    left.set(xlabel="training tokens / non-embedding parameters", ylabel="activation ratio (%)")
    left.set_title("CETT-PPL-1% activation ratio along training", fontsize=10)
    left.set_ylim(top=left.get_ylim()[1] * 1.3)
    left.legend(fontsize=7, ncols=2, loc="upper center")
    for how, filled in ((FITTED, True), (MEAN, False)):
        g = df[df["how"] == how]
        for row in g.itertuples():
            c = looks[row.run]["color"]
            mark = dict(marker="o" if filled else "s", mfc=c if filled else "none", color=c, ms=7)
            _bars(right, row.ratio, 100 * row.value, 100 * row.lo, 100 * row.hi, **mark)
        right.plot([], [], "o" if filled else "s", color="grey", mfc="grey" if filled else "none", label=how)
    sh = res["shape"]
    x = np.linspace(0, max(df["ratio"].max() * 1.05, 1.15 * PAPER_BOTTLENECK), 300)
    if "line_a" in sh:
        right.plot(x, 100 * (sh["line_a"] + sh["line_b"] * x), color="grey", lw=1, label="straight line")
        right.plot(
            x,
            100 * (sh["plateau_a"] + sh["plateau_b"] * np.minimum(x, sh["plateau_k"])),
            color="k",
            lw=1,
            ls="-.",
            label=f"rise then plateau (bottleneck {sh['plateau_k']:.0f})",
        )
    right.axvline(PAPER_BOTTLENECK, label="paper: bottleneck ≈ 114", **style.PAPER_LINE)
    right.axhline(100 * PAPER_PLATEAU, color=style.PAPER_LINE["color"], lw=1, ls=":", label="paper: plateau ≈ 8 %")
    right.set(xlabel="width-depth ratio", ylabel="limit of activation ratio (%)", xlim=(0, x.max()))
    right.set_title("Limit against width/depth (colours as on the left)", fontsize=10)
    right.legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig6(res: dict) -> Figure:
    """Fig. 6: validation loss against the width/depth ratio: the mean of the last validation losses
    (t-interval, checkpoint noise only), the fitted limit E with its bootstrap interval where it is
    determined, and the last measured loss; the paper's best interval shaded."""
    df = res["points"]
    marks = style.series_style([MEAN, "limit", "last"])
    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.axvspan(*PAPER_BEST, color=style.PAPER_LINE["color"], alpha=0.1, label="paper: best interval 74–282")
    label = f"mean of the validation losses in the last {TAIL:.0%} of the tokens"
    _bars(ax, df["ratio"], df["loss_tail"], df["loss_tail_lo"], df["loss_tail_hi"], ms=6, label=label, **marks[MEAN])
    ok = df[df["limit_status"] == "determined"]
    if len(ok):
        label = "fitted limit E (where determined)"
        _bars(
            ax, ok["ratio"], ok["limit"], ok["limit_lo"], ok["limit_hi"], ls="none", ms=6, label=label, **marks["limit"]
        )
    ax.plot(df["ratio"], df["loss_last"], ls="none", ms=6, mfc="none", label="last validation loss", **marks["last"])
    for row in df.itertuples():  # short shape labels (width × layers) keep close neighbours legible
        xy, label = (
            (row.ratio, row.loss_tail_hi if np.isfinite(row.loss_tail_hi) else row.loss_tail),
            f"{row.width}×{row.depth}",
        )
        ax.annotate(label, xy, textcoords="offset points", xytext=(0, 5), ha="center", fontsize=7)
    ax.set(
        xlabel="width-depth ratio (labels: width × layers)",
        ylabel="validation loss (nats)",
        xlim=(-12, max(df["ratio"].max() * 1.1, 300)),
    )
    ax.set_title(f"Loss at {_cap_words(res)}", fontsize=10)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- table, numbers, claims


def _cap_words(res: dict) -> str:
    return f"{res['cap']:.0f} tokens per parameter" if res["cap"] else "the end of training"


def _interval(lo: float, hi: float, scale: float = 1.0, digits: int = 2) -> str | None:
    return f"{scale * lo:.{digits}f}–{scale * hi:.{digits}f}" if np.isfinite(lo) and np.isfinite(hi) else None


def table(res: dict) -> pd.DataFrame:
    """The points of Figs. 5 and 6 with every number behind them, one row per run by width/depth ratio."""
    df = res["points"]
    return pd.DataFrame(
        {
            "run": df["run"],
            "width × layers": [f"{w} × {d}" for w, d in zip(df["width"], df["depth"])],
            "width / depth": df["ratio"],
            "heads × head dim": [f"{h} × {d}" for h, d in zip(df["heads"], df["head_dim"])],
            "non-embedding parameters (M)": df["params"] / 1e6,
            "tokens per parameter compared": df["tokens_per_param"],
            "epochs": df["epochs"],
            "checkpoints": df["checkpoints"],
            "limit activation ratio (%)": 100 * df["value"],
            "95% interval (%)": [_interval(a, b, 100) for a, b in zip(df["lo"], df["hi"])],
            "profile-likelihood interval (%)": [
                _interval(a, b, 100) for a, b in zip(df["profile_lo"], df["profile_hi"])
            ],
            "how the limit was obtained": [
                h if not note else f"{h} (law {note})" for h, note in zip(df["how"], df["fit_note"])
            ],
            "last activation ratio (%)": 100 * df["last_ratio"],
            f"activation ratio trend, last {SLOPE_TAIL:.0%} of tokens (points per 10M tokens)": [
                f"{100 * s:+.2f} ({_interval(a, b, 100)})" if np.isfinite(s) else None
                for s, a, b in zip(df["slope"], df["slope_lo"], df["slope_hi"])
            ],
            "limit loss E": [v if s == "determined" else None for v, s in zip(df["limit"], df["limit_status"])],
            "E: 95% interval or status": [
                _interval(a, b, digits=3) if s == "determined" else s
                for a, b, s in zip(df["limit_lo"], df["limit_hi"], df["limit_status"])
            ],
            f"mean validation loss, last {TAIL:.0%} of tokens": df["loss_tail"],
            "its 95% interval": [_interval(a, b, digits=3) for a, b in zip(df["loss_tail_lo"], df["loss_tail_hi"])],
            "last validation loss": df["loss_last"],
        }
    )


def _rise_phrase(sh: dict) -> str:
    if "rise_slope" not in sh:
        return "too few ratios up to 114 to test the rise"
    sign = "rises" if sh["rise_lo"] > 0 else "falls" if sh["rise_hi"] < 0 else "shows no clear slope"
    return (
        f"up to 114 the limit {sign} with the ratio ({100 * sh['rise_slope']:+.3f} points per unit of width/depth, "
        f"95% {100 * sh['rise_lo']:+.3f} to {100 * sh['rise_hi']:+.3f}, {sh['n_rise']} ratios)"
    )


def _shape_phrase(sh: dict) -> str:
    if sh["preferred"] == "too few points":
        return f"{sh['n']} distinct ratio(s) are too few to compare a line with a broken line"
    where = (
        f"bottleneck {sh['plateau_k']:.0f} (95% {sh['plateau_k_lo']:.0f}–{sh['plateau_k_hi']:.0f}), "
        f"plateau {100 * (sh['plateau_a'] + sh['plateau_b'] * sh['plateau_k']):.1f} %"
    )
    head = {
        "plateau": "AICc prefers a rise then a plateau to a straight line",
        "line": "AICc prefers a straight line to a rise then a plateau",
        "neither": "the data cannot tell a straight line from a rise then a plateau",
        "too few for AICc": f"{sh['n']} ratios are too few for AICc to judge a broken line (it needs {MIN_POINTS})",
    }[sh["preferred"]]
    rss = f"residual sums of squares {1e4 * sh['line_rss']:.1f} and {1e4 * sh['plateau_rss']:.1f} (%²)"
    aicc = f"AICc of the line minus the broken line: {sh['delta']:+.1f}; " if sh["n"] >= MIN_POINTS else ""
    return f"{head} ({aicc}{rss}; best broken line: {where})"


def _sentences(res: dict) -> dict[str, str]:
    """The chapter's computed sentences: which halves of the claims our points reproduce, and the confounds."""
    df, sh, loss = res["points"], res["shape"], res["loss"]
    out = {
        "rise_sentence": "The rising half of the paper's claim "
        + (
            "cannot be tested" if "rise_lo" not in sh else "is reproduced" if sh["rise_lo"] > 0 else "is not reproduced"
        ),
        "plateau_sentence": {
            "plateau": "The plateau is reproduced",
            "line": f"The plateau is not supported on all {sh['n']} ratios",
            "neither": "The plateau can be neither confirmed nor excluded",
        }.get(sh["preferred"], "The plateau cannot be tested"),
        "shape_no_widest": _shape_phrase(res["shape_no_widest"]),
        "heads": ", ".join(f"{h} × {d} at width {w}" for h, d, w in zip(df["heads"], df["head_dim"], df["width"])),
    }
    high = df[df["ratio"] > PAPER_BOTTLENECK]
    out["level_above"] = (
        f"beyond the paper's bottleneck our points lie at {100 * high['value'].min():.1f}–"
        f"{100 * high['value'].max():.1f} %"
        if len(high)
        else "no point lies beyond the paper's bottleneck"
    )
    if loss["quantity"] == "too few points":
        out["deep_sentence"] = (
            "Neither the deepest nor the widest model can be compared with the best from so few points"
        )
        out["wide_sentence"] = "every point is in the table below"
        return out
    best = df.set_index("run").loc[loss["best_run"]]
    wide = df.iloc[-1]
    wide_worse = bool(wide["loss_tail_lo"] > best["loss_tail_hi"]) and wide["run"] != loss["best_run"]
    out["deep_sentence"] = f"The deepest model {'is' if loss['deep_worse'] else 'is not clearly'} worse than the best"
    out["wide_sentence"] = f"the widest, {wide['run']}, {'is worse too' if wide_worse else 'is not clearly worse'}"
    return out


def numbers(res: dict) -> dict[str, str]:
    """The numbers and verdicts the width–depth chapter quotes, formatted."""
    df, sh, tail, loss = res["points"], res["shape"], res["shape_tail"], res["loss"]
    fitted = df[df["how"] == FITTED]
    rising = df[df["slope_lo"] > 0]
    out = {
        "n_points": f"{len(df)}",
        "ratio_range": f"{df['ratio'].min():.0f}–{df['ratio'].max():.0f}",
        "cap": _cap_words(res),
        "epochs": f"{df['epochs'].min():.2f}–{df['epochs'].max():.2f}",
        "n_fitted": f"{len(fitted)} of {len(df)}",
        "fitted_runs": ", ".join(fitted["run"]) or "none",
        "n_rising": f"{len(rising)} of {len(df)}",
        "rising_runs": ", ".join(rising["run"]) or "none",
        "limit_range": f"{100 * df['value'].min():.1f}–{100 * df['value'].max():.1f} %",
        "rise": _rise_phrase(sh),
        "shape": _shape_phrase(sh),
        "shape_tail": _shape_phrase(tail),
        "n_loss_determined": f"{int((df['limit_status'] == 'determined').sum())} of {len(df)}",
        "tail": f"{TAIL:.0%}",
        "slope_tail": f"{SLOPE_TAIL:.0%}",
    }
    out |= _sentences(res)
    worst = df.loc[df["loss_tail"].idxmax()]
    out["worst"] = f"{worst['run']} (width/depth {worst['ratio']:.0f}, {worst['loss_tail']:.3f} nats)"
    ref = df[df["run"] == REFERENCE]
    out["reference"] = (
        f"{REFERENCE} is cut to its first {int(ref['checkpoints'].iloc[0])} probed checkpoints "
        f"({ref['tokens_per_param'].iloc[0]:.0f} tokens per parameter, {ref['epochs'].iloc[0]:.2f} epochs)"
        if len(ref) and bool(ref["truncated"].iloc[0])
        else "no run was cut"
    )
    out["fig5_verdict"] = f"{_rise_phrase(sh)}; {_shape_phrase(sh)}."
    if loss["quantity"] == "too few points":
        out["best"] = out["fig6_verdict"] = f"{len(df)} point(s) are too few to locate a best interval"
    else:
        out["best"] = (
            f"the lowest {loss['quantity']} is at width/depth {loss['best_ratio']:.0f} ({loss['best_run']}); "
            f"ratios {loss['region_lo']:.0f}–{loss['region_hi']:.0f} are within its interval"
        )
        deep = "is" if loss["deep_worse"] else "is not clearly"
        inside = df[(df["ratio"] >= loss["region_lo"]) & (df["ratio"] <= loss["region_hi"])]["ratio"]
        k = int(inside.between(*PAPER_BEST).sum())
        paper = f"of which {k} of {len(inside)} in the paper's 74–282"
        out["fig6_verdict"] = (
            f"{out['best']}, {paper}; the deepest model ({loss['deep_run']}) {deep} worse than the best."
        )
    return out


def claims(res: dict) -> list[dict]:
    """Claims 11 (Fig. 5: linear rise to a bottleneck near 114, then a plateau) and 12 (Fig. 6: very deep
    models lose; best interval 74–282), judged on our runs."""
    n, sh, loss = numbers(res), res["shape"], res["loss"]
    rise = "rise_lo" in sh and sh["rise_lo"] > 0
    if "rise_lo" not in sh:
        v11 = "untested"
    elif rise and sh["preferred"] == "plateau" and sh["plateau_k_lo"] <= PAPER_BOTTLENECK <= sh["plateau_k_hi"]:
        v11 = "holds"
    elif rise:
        v11 = "partly holds"
    else:
        v11 = "does not hold"
    if loss["quantity"] == "too few points":
        v12 = "untested"
    else:
        hits = int(loss["deep_worse"]) + int(loss["in_paper"] and loss["within_paper"])
        v12 = ("does not hold", "partly holds", "holds")[hits]
    return [
        dict(id=11, verdict=v11, basis="our runs", note=n["fig5_verdict"]),
        dict(id=12, verdict=v12, basis="our runs", note=n["fig6_verdict"]),
    ]
