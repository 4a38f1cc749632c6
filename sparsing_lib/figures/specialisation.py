"""Neuron specialisation across scales (paper §5.3, Figs. 9, 10 and 16), reproduced by our own runs.

The paper explains why the limit activation ratio hardly depends on scale by activation patterns that look
alike across scales: the distribution of per-neuron activation frequencies on each data domain (Fig. 9; per
layer in Fig. 16) and the average activation ratio of each token (Fig. 10). We read the counterparts our
runner records (``neuron_frequency.npz``, ``vocab_ratios.npz``; CETT-PPL-1% thresholds, see
``probes.probe_checkpoints`` and the format in ``runs``) at the LAST checkpoint of every dense scale run.

"Alike" is made a number: the distance between two frequency distributions is the mean vertical gap between
their sorted curves (the 1-Wasserstein distance, in points of activation frequency), with a percentile
bootstrap over neurons. Per-vocabulary-token ratios are compared by their correlation and mean absolute
difference over the tokens both runs saw, with a paired bootstrap over vocabulary tokens.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import run, style
from ..checks import check_choice, check_range
from ..models import SCALE_FAMILY
from ..paths import DATA, ROOT, data_file
from ..profiles import by_profile
from ..runs import load_arrays, load_runs

__all__ = [
    "results",
    "layer_index",
    "sorted_curve",
    "distance_pp",
    "bootstrap_distance",
    "token_agreement",
    "fig9",
    "fig16",
    "fig10",
    "numbers",
    "claims",
]

TOLERANCE_PP = 2.0  # a judgement: sorted curves within 2 points on average read as coinciding on a 0-100 axis
MIN_CORRELATION = 0.7  # a judgement: per-token ratios share their pattern across scales if r >= 0.7
POSITIONS = ("first", "middle", "last")
GRID = 1000  # quantile levels on which two sorted curves are compared
UNIT = "vocabulary token"  # Fig. 10's unit: ratios averaged over every occurrence of a token (runs format 2)


def layer_index(n_layers: int, position: str) -> int:
    """The layer the paper's Fig. 16 calls first, (exact) middle or last; middle is ``n_layers // 2``
    (the upper one of the two middles for an even depth)."""
    check_choice("position", position, POSITIONS)
    return {"first": 0, "middle": n_layers // 2, "last": n_layers - 1}[position]


def sorted_curve(freq: np.ndarray, n: int = GRID, axis_last: bool = False) -> np.ndarray:
    """Activation frequencies of ``freq`` (one value per neuron) at ``n`` evenly spaced neuron ratios, most
    frequently active neuron first: Fig. 9's curve on a grid shared by models of any width. With
    ``axis_last`` each row of a 2-D ``freq`` is one population (the bootstrap's resamples); the linear
    interpolation between order statistics is numpy's default quantile."""
    x = np.sort(np.asarray(freq, dtype=float) if axis_last else np.ravel(freq).astype(float), axis=-1)[..., ::-1]
    pos = (np.arange(n) + 0.5) / n * (x.shape[-1] - 1)
    lo = np.floor(pos).astype(int)
    hi, frac = np.minimum(lo + 1, x.shape[-1] - 1), pos - lo
    return x[..., lo] * (1 - frac) + x[..., hi] * frac


def distance_pp(a: np.ndarray, b: np.ndarray) -> float:
    """Mean vertical gap between the sorted frequency curves of ``a`` and ``b`` in percentage points (the
    1-Wasserstein distance of the two distributions): how far apart the curves of Fig. 9 are."""
    return float(100 * np.abs(sorted_curve(a) - sorted_curve(b)).mean())


def bootstrap_distance(a: np.ndarray, b: np.ndarray, n_boot: int, seed: int = 0) -> tuple[float, float, float]:
    """``distance_pp`` of two neuron populations with a 95% percentile interval from resampling each model's
    neurons with replacement (the neurons are the sample; one seed per run, so training noise is not in it).
    A resampled distance is biased upwards, so near zero the interval can lie above the estimate: calling two
    curves similar only when the whole interval is below the tolerance is then conservative."""
    a, b = np.ravel(a).astype(float), np.ravel(b).astype(float)
    value = distance_pp(a, b)
    if n_boot < 2:
        return value, np.nan, np.nan
    rng = np.random.default_rng(seed)
    ra = a[rng.integers(0, a.size, (n_boot, a.size))]
    rb = b[rng.integers(0, b.size, (n_boot, b.size))]
    boot = 100 * np.abs(sorted_curve(ra, axis_last=True) - sorted_curve(rb, axis_last=True)).mean(axis=1)
    lo, hi = np.percentile(boot, [2.5, 97.5])
    return value, float(lo), float(hi)


def token_agreement(x: np.ndarray, y: np.ndarray, block: int, n_boot: int, seed: int = 0) -> dict[str, float]:
    """Pearson r and mean |x − y| (points) of paired per-token ratios, with 95% percentile intervals from a
    paired bootstrap over blocks of ``block`` consecutive units (a probe window for positions, whose tokens
    share a context; 1 for vocabulary tokens)."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.size % block:
        raise ValueError(f"need paired ratios in whole blocks of {block}, got {x.shape} and {y.shape}")
    out = dict(r=float(np.corrcoef(x, y)[0, 1]), mad=float(100 * np.abs(x - y).mean()), n=x.size)
    if n_boot < 2:
        return out | dict(r_lo=np.nan, r_hi=np.nan, mad_lo=np.nan, mad_hi=np.nan)
    xb, yb = x.reshape(-1, block), y.reshape(-1, block)
    rng = np.random.default_rng(seed)
    draw = rng.integers(0, len(xb), (n_boot, len(xb)))
    bx, by = xb[draw].reshape(n_boot, -1), yb[draw].reshape(n_boot, -1)
    cx, cy = bx - bx.mean(1, keepdims=True), by - by.mean(1, keepdims=True)
    r = (cx * cy).sum(1) / np.sqrt((cx**2).sum(1) * (cy**2).sum(1))
    mad = 100 * np.abs(bx - by).mean(1)
    (r_lo, r_hi), (m_lo, m_hi) = np.percentile(r, [2.5, 97.5]), np.percentile(mad, [2.5, 97.5])
    return out | dict(r_lo=float(r_lo), r_hi=float(r_hi), mad_lo=float(m_lo), mad_hi=float(m_hi))


# ----------------------------------------------------------------------------- results


def _read(runs: dict[str, dict], folder: Path) -> dict[str, dict]:
    """Last-checkpoint frequencies and ratios of the scale family's dense runs (the scales and the larger
    scales; else the smoke grid's single kind), ordered by non-embedding parameters."""
    dense = {n: r for n, r in runs.items() if (folder / n / "neuron_frequency.npz").exists()}
    kinds = {r["config"]["model"]["kind"] for r in dense.values()}
    family = set(SCALE_FAMILY) if "scale" in kinds else {next(iter(kinds), None)}
    out = {}
    for name, r in sorted(dense.items(), key=lambda kv: kv[1]["config"]["model"]["non_embedding_params"]):
        if r["config"]["model"]["kind"] not in family:
            continue
        nf, vr = load_arrays(folder / name, "neuron_frequency"), load_arrays(folder / name, "vocab_ratios")
        out[name] = dict(
            model=r["config"]["model"]["name"],
            activation=r["config"]["activation"],
            config=r["config"],
            step=int(nf["steps"][-1]),
            domains=[str(d) for d in nf["domains"]],
            frequency=nf["frequency"][-1].astype(float),  # [domain, layer, neuron]
            ratios=vr["mean"][-1].astype(float),  # [vocabulary id], NaN where the probe tokens lack it
            count=vr["count"],
            sources=dict(zip((str(x) for x in vr["sources"]), vr["source_tokens"].tolist())),
        )
    return out


def _pairs(runs: dict[str, dict], act: str) -> list[tuple[str, str]]:
    names = [n for n, r in runs.items() if r["activation"] == act]
    return [(a, b) for i, a in enumerate(names) for b in names[i + 1 :]]


def _seen(runs: list[dict]) -> np.ndarray:
    """Mask of the vocabulary ids that every run of ``runs`` saw in its probe tokens."""
    return np.logical_and.reduce([np.isfinite(r["ratios"]) for r in runs])


def _collect(runs: dict[str, dict], n_boot: int, seed: int) -> dict:
    rows9, rows16, rows10, rows_dom = [], [], [], []
    for r in runs.values():
        f = r["frequency"]
        rows_dom += [
            dict(activation=r["activation"], model=r["model"], distance=distance_pp(f[i], f[j]))
            for i in range(len(f))
            for j in range(i + 1, len(f))
        ]
    for act in ("relu", "silu"):
        for a, b in _pairs(runs, act):
            fa, fb = runs[a]["frequency"], runs[b]["frequency"]
            base = dict(activation=act, scale_a=runs[a]["model"], scale_b=runs[b]["model"])
            for d, dom in enumerate(runs[a]["domains"]):
                v, lo, hi = bootstrap_distance(fa[d], fb[d], n_boot, seed)
                shape = distance_pp(fa[d] / fa[d].mean(), fb[d] / fb[d].mean()) / 100
                gap = 100 * abs(fa[d].mean() - fb[d].mean())  # the part of ``distance`` a shift of level explains
                rows9.append(base | dict(domain=dom, distance=v, lo=lo, hi=hi, shape_distance=shape, mean_gap=gap))
                for pos in POSITIONS:
                    la, lb = layer_index(fa.shape[1], pos), layer_index(fb.shape[1], pos)
                    v, lo, hi = bootstrap_distance(fa[d, la], fb[d, lb], n_boot, seed)
                    rows16.append(base | dict(position=pos, domain=dom, distance=v, lo=lo, hi=hi))
            seen = _seen([runs[a], runs[b]])
            x, y = runs[a]["ratios"][seen], runs[b]["ratios"][seen]
            rows10.append(base | dict(unit=UNIT) | token_agreement(x, y, 1, n_boot, seed))
    return dict(
        runs=runs,
        fig9=pd.DataFrame(rows9),
        fig16=pd.DataFrame(rows16),
        fig10=pd.DataFrame(rows10),
        domain_distance=pd.DataFrame(rows_dom),
        n_boot=n_boot,
    )


def results(profile: str = "replay", n_boot: int = 0, seed: int = 0, runs_folder: str = "") -> dict:
    """Last-checkpoint frequencies and token ratios of the scale runs, and their distances across scales.

    replay reads ``data/runs``; smoke trains the runner's smoke grid (one tiny model per activation, CPU,
    ~2 min) into a temporary folder, or reads ``runs_folder`` when the chapter has already trained it there;
    full trains the scales grid with the runner into ``data/runs`` (a GPU; each run's env.json carries its
    provenance).
    ``n_boot`` = 0 means the profile's default (smoke 20 bootstrap resamples, otherwise 200)."""
    check_range("n_boot", n_boot, 0, 5000, int)
    n_boot = n_boot or (20 if profile == "smoke" else 200)

    def replay() -> dict:
        folder = data_file("runs")
        return _collect(_read(load_runs(folder), folder), n_boot, seed)

    def recompute(p: str) -> dict:
        if p == "smoke" and runs_folder:
            out = Path(runs_folder)
        elif p == "smoke":
            out = run.smoke_runs()
        else:
            out = DATA / "runs"
            if run.main(["--grid", "scales", "--out", str(out), "--ckpt", str(ROOT / ".scratch" / "ckpt")]):
                raise RuntimeError(f"the runner reported failed runs in {out}; see each run's env.json")
        return _collect(_read(load_runs(out), out), n_boot, seed)

    return by_profile(profile, replay, recompute, save=lambda res: None)


# ----------------------------------------------------------------------------- verdicts


def similarity(rows: pd.DataFrame) -> str:
    """'similar' when every pair's interval lies below ``TOLERANCE_PP``, 'different' when some pair's lies
    above it, 'undetermined' otherwise, 'untested' with no pair of scales."""
    if rows.empty:
        return "untested"
    if (rows.hi < TOLERANCE_PP).all():
        return "similar"
    return "different" if (rows.lo > TOLERANCE_PP).any() else "undetermined"


def token_similarity(rows: pd.DataFrame) -> str:
    """'similar' when every pair's mean |difference| lies below ``TOLERANCE_PP``; else 'correlated' when every
    pair's correlation interval lies above ``MIN_CORRELATION``; else 'different' ('untested': no pair)."""
    if rows.empty:
        return "untested"
    if (rows.mad_hi < TOLERANCE_PP).all():
        return "similar"
    return "correlated" if (rows.r_lo >= MIN_CORRELATION).all() else "different"


def _worst(rows: pd.DataFrame, col: str = "distance") -> str:
    if rows.empty:
        return "no pair of scales"
    w = rows.loc[rows[col].idxmax()]
    where = f" on {w.domain}" if "domain" in w else ""
    return f"{w.distance:.1f} [{w.lo:.1f}, {w.hi:.1f}] points ({w.scale_a} vs {w.scale_b}{where})"


PAPER_FIG16 = dict(first="different", middle="similar", last="different")  # App. J's reading


def _of(rows: pd.DataFrame, **where: str) -> pd.DataFrame:
    for col, value in where.items():
        rows = rows[rows[col] == value] if not rows.empty else rows
    return rows


def _fig10_rows(res: dict, activation: str) -> pd.DataFrame:
    """Fig. 10's comparisons of one activation."""
    return _of(res["fig10"], activation=activation)


def _parts(res: dict) -> dict[str, dict[str, str]]:
    """Per activation, each figure's status against the paper (holds / partly / fails / untested) and the
    per-layer readings of Fig. 16."""
    out = {}
    for act in ("relu", "silu"):
        f16 = {pos: similarity(_of(res["fig16"], activation=act, position=pos)) for pos in POSITIONS}
        agree = sum(f16[p] == PAPER_FIG16[p] for p in POSITIONS)
        if "untested" in f16.values():
            s16 = "untested"
        else:
            s16 = "holds" if agree == len(POSITIONS) else "partly" if agree else "fails"
        f9, f10 = similarity(_of(res["fig9"], activation=act)), token_similarity(_fig10_rows(res, act))
        out[act] = {
            "fig9": {"similar": "holds", "untested": "untested"}.get(f9, "fails"),
            "fig16": s16,
            "fig10": {"similar": "holds", "correlated": "partly", "untested": "untested"}.get(f10, "fails"),
            "fig16_positions": ", ".join(f"{p} layer {f16[p]}" for p in POSITIONS),
        }
    return out


# ----------------------------------------------------------------------------- figures


def _looks(res: dict) -> dict[str, dict]:
    return style.series_style(list(dict.fromkeys(r["model"] for r in res["runs"].values())))


def _curves(ax: plt.Axes, res: dict, act: str, pick) -> None:
    """One sorted-frequency curve per scale of ``act``; ``pick(frequency)`` selects its neurons."""
    x = 100 * (np.arange(GRID) + 0.5) / GRID
    looks = _looks(res)
    for i, r in enumerate(r for r in res["runs"].values() if r["activation"] == act):
        look = looks[r["model"]]
        y = 100 * sorted_curve(pick(r["frequency"]))
        ax.plot(
            x, y, color=look["color"], marker=look["marker"], markevery=(25 * i, 125), ms=4, lw=1.4, label=r["model"]
        )
    ax.set(xlim=(0, 100), ylim=(0, 100), xlabel="ratio of neurons (%)", ylabel="activation frequency (%)")


def fig9(res: dict) -> plt.Figure:
    """Fig. 9: sorted activation frequencies of all neurons (most active first) per domain, one line per scale;
    rows ReLU and SiLU, last checkpoint."""
    domains = next(iter(res["runs"].values()))["domains"]
    fig, axes = plt.subplots(2, len(domains), figsize=(4 * len(domains), 7.2), squeeze=False)
    for row, act in zip(axes, ("relu", "silu")):
        for d, (ax, dom) in enumerate(zip(row, domains)):
            _curves(ax, res, act, lambda f, d=d: f[d])
            ax.set_title(f"{style.ACT_LABEL[act]}, {dom}")
        row[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig16(res: dict, activation: str) -> plt.Figure:
    """Fig. 16 for one activation: rows first, middle and last layer; columns the domains; one line per scale."""
    check_choice("activation", activation, style.ACT_LABEL)
    domains = next(iter(res["runs"].values()))["domains"]
    fig, axes = plt.subplots(len(POSITIONS), len(domains), figsize=(4 * len(domains), 10), squeeze=False)
    for row, pos in zip(axes, POSITIONS):
        for d, (ax, dom) in enumerate(zip(row, domains)):
            _curves(ax, res, activation, lambda f, d=d, pos=pos: f[d, layer_index(f.shape[1], pos)])
            ax.set_title(f"{style.ACT_LABEL[activation]}, {pos} layer, {dom}")
        row[-1].legend(fontsize=7)
    fig.tight_layout()
    return fig


def fig10(res: dict, activation: str) -> plt.Figure:
    """Fig. 10 for one activation: per-token activation ratios of every pair of scales (below the diagonal,
    density with the y = x line), each scale's histogram (diagonal), r and mean |Δ| (above)."""
    check_choice("activation", activation, style.ACT_LABEL)
    names = [n for n, r in res["runs"].items() if r["activation"] == activation]
    seen = _seen([res["runs"][n] for n in names])  # the tokens every scale saw: one point per token per panel
    vals = {n: 100 * res["runs"][n]["ratios"][seen] for n in names}
    lim = np.percentile(np.concatenate(list(vals.values())), [0.2, 99.8]) + np.array([-1, 1])
    table = _fig10_rows(res, activation)
    k = len(names)
    fig, axes = plt.subplots(k, k, figsize=(2.3 * k + 1, 2.3 * k + 0.6), squeeze=False)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            ax, ma, mb = axes[i, j], res["runs"][a]["model"], res["runs"][b]["model"]
            if i == j:
                ax.hist(vals[a], bins=30, range=tuple(lim), color=_looks(res)[ma]["color"])
            elif i > j:
                ax.hexbin(vals[b], vals[a], gridsize=40, extent=(*lim, *lim), mincnt=1, bins="log", cmap="viridis")
                ax.plot(lim, lim, color="red", lw=1)
                ax.set(xlim=lim, ylim=lim)
            else:
                t = table[(table.scale_a == mb) & (table.scale_b == ma) | (table.scale_a == ma) & (table.scale_b == mb)]
                t = t.iloc[0]
                ax.text(0.5, 0.5, f"r = {t.r:.2f}\n|Δ| = {t.mad:.1f} pt", ha="center", va="center", fontsize=9)
                ax.set_axis_off()
            if j == 0 and i > 0:
                ax.set_ylabel(f"{ma} (%)", fontsize=8)
            if i == k - 1:
                ax.set_xlabel(f"{mb} (%)", fontsize=8)
            ax.tick_params(labelsize=7)
    fig.suptitle(f"{style.ACT_LABEL[activation]}: activation ratio per {UNIT}", fontsize=10)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- numbers and claims


def numbers(res: dict) -> dict[str, str]:
    """The numbers the scale chapter quotes about Figs. 9, 10 and 16, formatted, and their verdicts."""
    parts, runs = _parts(res), res["runs"]
    out = {
        "spec_tolerance": f"{TOLERANCE_PP:.0f}",
        "spec_min_r": f"{MIN_CORRELATION:.1f}",
        "spec_n_boot": f"{res['n_boot']}",
        "spec_models": ", ".join(dict.fromkeys(r["model"] for r in runs.values())),
        "spec_steps": ", ".join(f"{r['model']} {r['step']}" for r in runs.values() if r["activation"] == "relu"),
        "spec_unit": UNIT,
    }
    depth = sorted({r["frequency"].shape[1] for r in runs.values()})
    out["spec_layers"] = f"{depth[0]} to {depth[-1]}" if len(depth) > 1 else f"{depth[0]}" if depth else "–"
    relu = [r for r in runs.values() if r["activation"] == "relu"]
    if relu and relu[0]["config"].get("corpus_identity"):
        ep = [r["config"]["train"]["tokens"] / r["config"]["corpus_identity"]["train_tokens"] for r in relu]
        tpp = [r["config"]["tokens_per_param"] for r in relu]
        out["spec_epochs"] = f"{ep[0]:.1f} ({relu[0]['model']}) to {ep[-1]:.1f} ({relu[-1]['model']})"
        out["spec_tpp"] = f"{tpp[0]:.0f} ({relu[0]['model']}) to {tpp[-1]:.0f} ({relu[-1]['model']})"
    else:
        out["spec_epochs"] = out["spec_tpp"] = "–"
    first = next(iter(runs.values()), None)
    if first:
        src = first["sources"]
        name = {"train": "the start of the training split"}
        out["spec_probe_tokens"] = f"{sum(src.values()):,}"
        out["spec_probe_sources"] = ", ".join(f"{n:,} from {name.get(k, f'{k} validation')}" for k, n in src.items())
        c, vocab = first["count"], len(first["count"])
        seen = c[c > 0]
        out["spec_vocab_note"] = (
            f"They cover {seen.size:,} of the {vocab:,} vocabulary tokens ({100 * seen.size / vocab:.0f}%), seen "
            f"{np.median(seen):.0f} times at the median; {100 * (seen >= 5).mean():.0f}% of them at least five times."
        )
        upgrade = first["config"].get("format_upgrade", {}).get("vocab_ratios")
        if upgrade:  # a run converted from the first format: its tokens are the few it kept per position
            out["spec_vocab_note"] += (
                " These runs predate the per-vocabulary probe: their averages were formed afterwards from the "
                "ratios they kept at each probe position, so they cover only those positions' tokens."
            )
    else:
        out["spec_probe_tokens"] = out["spec_probe_sources"] = out["spec_vocab_note"] = "–"
    for act in ("relu", "silu"):
        f9, f16, f10 = _of(res["fig9"], activation=act), _of(res["fig16"], activation=act), _fig10_rows(res, act)
        dom = _of(res["domain_distance"], activation=act)
        mean = [100 * r["frequency"].mean() for r in runs.values() if r["activation"] == act]
        out[f"{act}_fig9_worst"] = _worst(f9)
        out[f"{act}_fig9_mean_range"] = f"{mean[0]:.1f} to {mean[-1]:.1f}" if mean else "–"
        out[f"{act}_fig9_shape"] = f"{f9.shape_distance.max():.2f}" if not f9.empty else "–"
        worst = f9.loc[f9.distance.idxmax()] if not f9.empty else None
        out[f"{act}_fig9_level_share"] = "–" if worst is None else f"{100 * worst.mean_gap / worst.distance:.0f}"
        out[f"{act}_domain_distance"] = f"{dom.distance.max():.1f}" if not dom.empty else "–"
        for pos in POSITIONS:
            out[f"{act}_fig16_{pos}"] = _worst(_of(f16, position=pos))
        out[f"{act}_fig16_reading"] = parts[act]["fig16_positions"]
        if f10.empty:
            out[f"{act}_fig10_r"] = out[f"{act}_fig10_mad"] = "no pair of scales"
        else:
            lo, hi = f10.loc[f10.r.idxmin()], f10.loc[f10.mad.idxmax()]
            out[f"{act}_fig10_r"] = f"{f10.r.min():.2f} [{lo.r_lo:.2f}, {lo.r_hi:.2f}] ({lo.scale_a} vs {lo.scale_b})"
            out[f"{act}_fig10_mad"] = (
                f"{hi.mad:.1f} [{hi.mad_lo:.1f}, {hi.mad_hi:.1f}] points ({hi.scale_a} vs {hi.scale_b})"
            )
    word = {"holds": "holds", "partly": "partly holds", "fails": "does not hold", "untested": "untested (one scale)"}
    out["fig9_verdict"] = (
        f"'distributions coincide across scales' {word[parts['relu']['fig9']]} for ReLU (largest gap "
        f"{out['relu_fig9_worst']}) and {word[parts['silu']['fig9']]} for SiLU ({out['silu_fig9_worst']})."
    )
    out["fig16_verdict"] = (
        f"the paper's pattern (first and last layers differ, middle alike) {word[parts['relu']['fig16']]} for "
        f"ReLU ({out['relu_fig16_reading']}) and {word[parts['silu']['fig16']]} for SiLU ({out['silu_fig16_reading']})."
    )
    out["fig10_verdict"] = (
        f"'per-token ratios agree across scales' {word[parts['relu']['fig10']]} for ReLU (lowest r "
        f"{out['relu_fig10_r']}) and {word[parts['silu']['fig10']]} for SiLU (lowest r {out['silu_fig10_r']})."
    )
    return out


def claims(res: dict) -> list[dict]:
    """Claim 15 (alike activation patterns across scales: Figs. 9, 10, 16), judged on our runs: holds if all
    three figures hold for both activations, does not hold if none holds even partly, else partly holds."""
    parts = _parts(res)
    status = [parts[a][f] for a in ("relu", "silu") for f in ("fig9", "fig16", "fig10")]
    if all(s == "untested" for s in status):
        verdict = "untested"
    elif all(s == "holds" for s in status):
        verdict = "holds"
    elif all(s == "fails" for s in status):
        verdict = "does not hold"
    else:
        verdict = "partly holds"
    note = "; ".join(
        f"{style.ACT_LABEL[a]}: Fig. 9 {parts[a]['fig9']}, Fig. 16 {parts[a]['fig16']}, Fig. 10 {parts[a]['fig10']}"
        for a in ("relu", "silu")
    )
    if verdict != "untested":
        n = numbers(res)
        note += (
            f" (tolerance {TOLERANCE_PP:.0f} points; largest Fig. 9 gap ReLU {n['relu_fig9_worst']}, "
            f"SiLU {n['silu_fig9_worst']}; lowest per-token r ReLU {n['relu_fig10_r']}, SiLU {n['silu_fig10_r']})"
        )
    return [dict(id=15, verdict=verdict, basis="our runs", note=note)]
