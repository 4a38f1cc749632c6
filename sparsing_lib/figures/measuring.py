"""The measuring chapter (paper §4, Figs. 1, 2 and 15 and claims 3-5): readings of every paired scale run.

Every number comes from the end-of-run probes of our own training runs (``sparsing_lib.run``): each run's
``sparsity.csv`` (the CETT-PPL-p% point of every checkpoint), ``pareto.csv`` (Top-k, FAT-ε and CETT sweeps
on the last checkpoint) and ``cett.json`` (the CETT value searched jointly over the last checkpoints). All of
them are measured on one token set per run, the probe set, so PPL, loss and activation ratios quoted side by
side always come from the same tokens. Fig. 1 needs a model's weights, which the committed runs do not keep,
so replay draws it from ``data/measuring/fig1.csv`` and the recomputing profiles redraw it from the last
checkpoint of the run they train.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure

from .. import style
from ..checks import check_choice, check_profile
from ..paths import DATA, ROOT, data_file
from ..profiles import by_profile, provenance
from ..runs import load_run, load_runs

ACTS = ("relu", "silu")
CURVES = ("topk_token", "fat", "cett")  # the swept methods of Fig. 2, in legend order
PAPER_RELU_REDUCTION = 0.61  # paper §1 / Fig. 2: CETT-PPL-1% vs the zero threshold, 0.8B ReLU model
PLOT_PPL = 1.25  # Fig. 2 shows PPL up to this multiple of dense
WHERE_NOT_MORE = {"fewer": "keeps fewer", "unranked": "cannot be ranked"}


# --- loading -------------------------------------------------------------------------------------------------


def probed_runs(folder: Path) -> dict[str, dict]:
    """The dense runs under ``folder`` whose checkpoints were probed (they have pareto.csv and cett.json)."""
    return {n: r for n, r in load_runs(folder).items() if "pareto" in r and "cett" in r}


def paired_models(runs: dict[str, dict]) -> list[str]:
    """Model names with a probed run for every activation, smallest first (the scales grid, not the
    ReLU-only width-depth variants)."""
    names = {r["config"]["model"]["name"]: r["config"]["model"]["non_embedding_params"] for r in runs.values()}
    both = [m for m in names if all(f"{m}-{a}" in runs for a in ACTS)]
    return sorted(both, key=names.get)


def chosen_scales(scales: str, available: list[str]) -> list[str]:
    """The scales drawn in Fig. 2: "all", or a comma-separated subset of ``available`` (kept in size order)."""
    if scales == "all":
        return list(available)
    picked = [check_choice("scales", s.strip(), [*available, "all"]) for s in scales.split(",")]
    return [s for s in available if s in picked]


def results(profile: str = "replay", scales: str = "all") -> dict:
    """The chapter's data: every probed run, the scales drawn in Fig. 2 and the Fig. 1 token.

    replay reads data/runs and data/measuring; smoke trains the runner's smoke grid in a temporary folder
    (a few CPU minutes; its only model is the toy size, so ``scales`` is not used); full trains ``scales``
    with the runner on a GPU and saves the runs and the Fig. 1 token (of the smallest scale trained)."""
    check_profile(profile)
    return by_profile(profile, lambda: _replay(scales), lambda p: _recompute(p, scales), _save)


def _replay(scales: str) -> dict:
    runs = probed_runs(data_file("runs"))
    meta = json.loads(data_file("measuring", "meta.json").read_text())
    fig1 = pd.read_csv(data_file("measuring", "fig1.csv"))
    return dict(runs=runs, scales=chosen_scales(scales, paired_models(runs)), fig1=fig1, fig1_meta=meta,
                profile="replay")  # fmt: skip


def _recompute(profile: str, scales: str) -> dict:
    from .. import run

    if profile == "full":
        grid = list(dict.fromkeys(run.parse_run(r)[0] for r in run.GRIDS["scales"]))
        chosen = chosen_scales(scales, grid)
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"profile='full' trains the {', '.join(chosen)} runs with the grid runner on a GPU (the book used "
                "one H200); no GPU is visible here. Use profile='replay' to draw the committed runs, or 'smoke' "
                "for a CPU check."
            )
        work = ROOT / ".scratch" / "measuring"
        args = ["--grid", "scales", "--slice", ",".join(f"{m}-{a}" for m in chosen for a in ACTS)]
        out, ckpt = work / "runs", work / "ckpt"
        if run.main(args + ["--out", str(out), "--ckpt", str(ckpt)]) != 0:
            raise RuntimeError(f"the grid runner failed; see the env.json files under {out}")
    else:
        out = run.smoke_runs()
        ckpt = out.parent / "ckpt"
    runs = (probed_runs(DATA / "runs") if profile == "full" else {}) | probed_runs(out)
    drawn = paired_models(probed_runs(out)) if profile == "smoke" else chosen
    model = drawn[0]
    fig1 = pd.concat([fig1_from_checkpoint(out / f"{model}-{a}", ckpt / f"{model}-{a}") for a in ACTS])
    last = runs[f"{model}-relu"]["sparsity"].step.max()
    meta = dict(run=model, step=int(last), p=runs[f"{model}-relu"]["cett"]["p"])
    return dict(runs=runs, scales=drawn, fig1=fig1, fig1_meta=meta, profile=profile, out=out)


def _save(res: dict) -> None:
    for folder in res["out"].iterdir():  # the runs trained by this call, not the ones replayed beside them
        shutil.copytree(folder, DATA / "runs" / folder.name, dirs_exist_ok=True)
    (DATA / "measuring").mkdir(exist_ok=True)
    res["fig1"].to_csv(DATA / "measuring" / "fig1.csv", index=False)
    meta = res["fig1_meta"] | provenance(
        f"papermill book/measuring.ipynb -p profile full -p scales {','.join(res['scales'])}"
    )
    (DATA / "measuring" / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


# --- Fig. 1: one token's neurons ------------------------------------------------------------------------------


@torch.no_grad()
def token_contributions(model: torch.nn.Module, ids: torch.Tensor, layer: int, threshold: float) -> pd.DataFrame:
    """Every neuron of ``layer`` for the middle token of the sequence ``ids`` [1, seq]: gate activation s,
    activation a and the norm n = |a|·‖W_down[:, i]‖ of its contribution, which CETT compares with the
    layer's threshold (a neuron is active iff n >= threshold)."""
    from ..capture import Hooks, ffn_layers, run

    seen: dict[str, torch.Tensor] = {}
    pos = ids.shape[1] // 2

    def watch(i, a, s, y):
        if i == layer:
            seen.update(a=a[pos].double(), s=s[pos].double())

    run(model, Hooks(model, watch=watch), ids[:1])
    n = seen["a"].abs() * ffn_layers(model)[layer].column_norms().double()
    return pd.DataFrame(
        dict(
            neuron=np.arange(len(n)),
            s=seen["s"].numpy(),
            a=seen["a"].numpy(),
            n=n.numpy(),
            threshold=threshold,
            active=(n >= threshold).numpy(),
        )
    )


def fig1_from_checkpoint(run_dir: Path, ckpt_dir: Path) -> pd.DataFrame:
    """Fig. 1's token from a run's last checkpoint, at its middle layer, with the threshold that the run's
    CETT-PPL-p% value gives that layer on the run's probe set (the thresholds of its sparsity.csv)."""
    from .. import corpus, metrics
    from ..models import build_model, get_spec
    from ..probes import checkpoint_files, load_checkpoint
    from ..run import mix
    from ..train import windows

    r = load_run(run_dir)
    cfg = r["config"]
    spec, seq = get_spec(cfg["model"]["name"]), cfg["train"]["seq_len"]
    _, path = checkpoint_files(ckpt_dir)[-1]
    model = load_checkpoint(lambda: build_model(spec, cfg["activation"], cfg["vocab_size"]), path, "cpu")
    val = corpus.load_val_by_domain(root="smoke" if cfg["corpus"] == "smoke" else None)
    ids = windows(mix(val, cfg["probe"]["tokens"], seq), seq)
    thr = metrics.cett_thresholds(model, ids, r["cett"]["cett"], max_tokens=cfg["probe"]["batch_size"] * seq)
    layer = len(thr) // 2
    return token_contributions(model, ids[:1], layer, thr[layer]).assign(model=cfg["activation"], layer=layer)


def fig1_source(meta: dict) -> str:
    """Which model the Fig. 1 token comes from, in words, from the meta.json saved with it."""
    if "run" in meta:
        return f"the last checkpoint (step {meta['step']:,}) of our {meta['run']} runs"
    return (
        f"a separate {meta['spec']} model per activation (d_model {meta['d_model']}, d_ff {meta['d_ff']}, "
        f"{meta['n_layers']} layers) trained for only {meta['steps']} steps ({meta['train_tokens']:,} tokens) on "
        f"a CPU ({meta['hardware']}, git {meta['git_revision']}), not one of the H200 runs, whose weights are not "
        "kept; its threshold is that barely trained model's own CETT-PPL-1%"
    )


def fig1(res: dict) -> Figure:
    """Paper Fig. 1 as data: one token's neuron contributions, sorted, with the layer's CETT threshold."""
    d = res["fig1"]
    fig, axes = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for ax, act in zip(axes, ACTS):
        t = d[d.model == act].sort_values("n", ascending=False).reset_index(drop=True)
        ax.bar(np.arange(len(t)), t.n.where(t.n > 0), width=1.0, color=np.where(t.active, "#c0392b", "#95a5a6"))
        ax.axhline(t.threshold.iloc[0], color="k", lw=0.8, ls="--", label="CETT-PPL-1% threshold of the layer")
        ax.set_yscale("log")
        ax.set_ylabel("|a_i|·‖W_down[:, i]‖")
        ax.set_title(
            f"{style.ACT_LABEL[act]}, layer {t.layer.iloc[0]}: {100 * t.active.mean():.0f}% of neurons above the "
            f"threshold (red), {int((t.a == 0).sum())} exactly zero (not drawn)",
            fontsize=9,
        )
    axes[0].legend(fontsize=8, loc="upper right")
    axes[-1].set_xlabel("neurons of one token, sorted by the norm of their contribution")
    fig.tight_layout()
    return fig


def fig1_verdict(top: dict[str, float]) -> str:
    """Whether a few neurons carry most of the token's FFN output: the share of the summed contribution norms
    carried by the largest tenth of the neurons, per activation."""
    shares = " and ".join(f"{pct(v, 0)} in the {style.ACT_LABEL[a]} model" for a, v in top.items())
    if all(v > 0.5 for v in top.values()):
        return f"a few neurons carry most of the output, as the paper's picture says: the largest tenth carry {shares}."
    return f"the output is spread more evenly than the paper's picture suggests: the largest tenth carry {shares}."


# --- Fig. 2: PPL against activation ratio ---------------------------------------------------------------------


def last_checkpoint(r: dict) -> tuple[pd.Series, pd.DataFrame]:
    """A run's last probed checkpoint: its sparsity.csv row and its pareto.csv sweep points."""
    step = r["sparsity"].step.max()
    return r["sparsity"].set_index("step").loc[step].rename(step), r["pareto"][r["pareto"].step == step]


def at_ppl_ratio(curve: pd.DataFrame, target: float) -> dict:
    """Activation ratio of one method's sweep at PPL ratio ``target``: linear interpolation between the two
    sweep points around it (``value``, NaN when the sweep does not reach past the target), and the bracket
    those points give whatever the curve does between them: ``lo`` (the most neurons among points costing
    more PPL) and ``hi`` (the fewest among points within the target). ``short``: no point costs more PPL."""
    d = curve.sort_values("ppl_ratio")
    below, above = d[d.ppl_ratio <= target], d[d.ppl_ratio > target]
    lo = above.activation_ratio.max() if len(above) else 0.0
    hi = below.activation_ratio.min() if len(below) else 1.0
    if not (len(below) and len(above)):
        return dict(value=float("nan"), lo=float(lo), hi=float(hi), short=not len(above))
    a, b = below.iloc[-1], above.iloc[0]
    t = (target - a.ppl_ratio) / (b.ppl_ratio - a.ppl_ratio)
    value = a.activation_ratio + t * (b.activation_ratio - a.activation_ratio)
    return dict(value=float(value), lo=float(lo), hi=float(hi), short=False)


def rank(reading: dict, cett_ratio: float) -> str:
    """ "more" / "fewer" when the bracket of ``at_ppl_ratio`` lies wholly above / below CETT's activation
    ratio (a statement that needs no interpolation), else "unranked"."""
    return "more" if reading["lo"] > cett_ratio else "fewer" if reading["hi"] < cett_ratio else "unranked"


def reduction_spread(r: dict) -> tuple[float, float]:
    """Lowest and highest ReLU reduction (``relu_reduction``) over the checkpoints the CETT value was searched
    on jointly: checkpoint-to-checkpoint variation of one training run, not a seed-to-seed interval."""
    s = r["sparsity"][r["sparsity"].step.isin(r["cett"]["joint_steps"])]
    cut = 1 - s.activation_ratio / s.zero_ratio
    return float(cut.min()), float(cut.max())


def table_fig2(res: dict) -> pd.DataFrame:
    """Fig. 2 read at the CETT-PPL-p% point of every paired run (all scales, whatever Fig. 2 draws): the
    activation ratio each method needs for the same PPL ratio, its ranking against CETT, and for ReLU the cut
    against the zero threshold (all on the run's probe set, last checkpoint)."""
    rows = []
    for model in paired_models(res["runs"]):
        for act in ACTS:
            r = res["runs"][f"{model}-{act}"]
            s, pts = last_checkpoint(r)
            row = {
                "model": f"{model} {style.ACT_LABEL[act]}",
                "parameters (M)": r["config"]["model"]["non_embedding_params"] / 1e6,
                "CETT": s.cett,
                "PPL ratio": s.ppl_ratio,
                "CETT (% active)": 100 * s.activation_ratio,
                "zero threshold (% active)": 100 * s.zero_ratio,
            }
            for m in ("topk_token", "fat"):
                reading = at_ppl_ratio(pts[pts.method == m], s.ppl_ratio)
                row[f"{style.METHOD_LABEL[m]} (% active)"] = 100 * reading["value"]
                row[f"{style.METHOD_LABEL[m]} vs CETT"] = rank(reading, s.activation_ratio)
            lo, hi = reduction_spread(r) if act == "relu" else (math.nan, math.nan)
            row["ReLU cut vs zero threshold (%)"] = 100 * relu_reduction(r) if act == "relu" else math.nan
            row["cut, last checkpoints (%)"] = f"{100 * lo:.1f}–{100 * hi:.1f}" if act == "relu" else None
            rows.append(row)
    return pd.DataFrame(rows)


def fig2(res: dict) -> Figure:
    """Paper Fig. 2 as small multiples: PPL against activation ratio for Top-k, FAT-ε and a CETT sweep on the
    last checkpoint of each run, one column per scale in ``res["scales"]`` and one row per activation, with
    the CETT-PPL-p% point and (ReLU) the zero threshold."""
    st = style.series_style([*CURVES, "zero"])
    cols = res["scales"]
    fig, axes = plt.subplots(2, len(cols), figsize=(3.4 * len(cols) + 0.6, 6.6), squeeze=False)
    for j, model in enumerate(cols):
        for ax, act in zip(axes[:, j], ACTS):
            s, pts = last_checkpoint(res["runs"][f"{model}-{act}"])
            for m in CURVES:
                d = pts[pts.method == m].sort_values("activation_ratio")
                ax.plot(100 * d.activation_ratio, d.ppl, "-", ms=4, label=style.METHOD_LABEL[m] + " sweep", **st[m])
            ax.plot(100 * s.activation_ratio, s.ppl, ls="", ms=10, mfc="none", mew=2, color=st["cett"]["color"],
                    marker="D", label="CETT-PPL-1%")  # fmt: skip
            if act == "relu":
                ax.plot(100 * s.zero_ratio, s.dense_ppl, ls="", ms=11, label=style.METHOD_LABEL["zero"], **st["zero"])
            ax.axhline(s.dense_ppl * 1.01, color="grey", ls=":", lw=1, label="dense PPL + 1%")
            ax.set_ylim(s.dense_ppl * 0.98, s.dense_ppl * PLOT_PPL)
            ax.set_xlim(0, 130 * s.zero_ratio if act == "relu" else 105)
            ax.set_title(f"{model} {style.ACT_LABEL[act]}, step {s.name:,}", fontsize=9)
            ax.set_xlabel("activation ratio (%)" if act == ACTS[-1] else "")
            ax.set_ylabel("PPL (probe set)" if j == 0 else "")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


def relu_reduction(r: dict) -> float:
    """Relative cut of the ReLU zero-threshold activation ratio by CETT-PPL-p% at the last checkpoint."""
    s, _ = last_checkpoint(r)
    return 1 - s.activation_ratio / s.zero_ratio


def fig2_count(table: pd.DataFrame) -> dict[str, int]:
    """Runs of ``table_fig2`` where CETT keeps fewer neurons than both other methods at equal PPL ("best"),
    where some method keeps fewer than CETT ("beaten"), and the rest ("unranked": a sweep too coarse)."""
    cols = [f"{style.METHOD_LABEL[m]} vs CETT" for m in ("topk_token", "fat")]
    best, beaten = int((table[cols] == "more").all(axis=1).sum()), int((table[cols] == "fewer").any(axis=1).sum())
    return dict(n=len(table), best=best, beaten=beaten, unranked=len(table) - best - beaten)


def fig2_verdict(table: pd.DataFrame) -> str:
    """Whether CETT keeps fewer neurons than Top-k and FAT-ε at equal PPL, counted over every run of the table
    from the brackets of its sweeps, with the exceptions named."""
    c, cols = fig2_count(table), [f"{style.METHOD_LABEL[m]} vs CETT" for m in ("topk_token", "fat")]
    text = f"CETT keeps fewer neurons than both Top-k and FAT-ε at equal PPL in {c['best']} of {c['n']} runs"
    if c["best"] == c["n"]:
        return text + ", as in the paper: every Top-k and FAT-ε sweep point costing more PPL keeps more neurons."
    exceptions = "; ".join(
        f"{col.removesuffix(' vs CETT')} on {row.model} ({WHERE_NOT_MORE[row[col]]})"
        for _, row in table.iterrows()
        for col in cols
        if row[col] != "more"
    )
    if not c["beaten"]:
        return f"{text}; elsewhere the sweeps are too coarse to rank: {exceptions}."
    return f"{text}; unlike the paper, another method keeps fewer in {c['beaten']}: {exceptions}."


def reduction_verdict(cuts: dict[str, float], paper: float = PAPER_RELU_REDUCTION) -> str:
    """The ReLU cut against the zero threshold over our scales, against the paper's (0.8B) figure."""
    close = sum(versus(c, paper) == "close to" for c in cuts.values())
    rng = span(cuts.values(), "{:.0f}%")
    vals = list(cuts.values())
    trend = sum(b > a for a, b in zip(vals, vals[1:]))
    text = f"{rng} over our {len(cuts)} ReLU scale{'s' if len(cuts) > 1 else ''} against the paper's {pct(paper, 0)}"
    text += f"; within 5 points of it at {close} of {len(cuts)}"
    if len(cuts) > 1:
        text += f", and the cut grows from one scale to the next {trend} of {len(cuts) - 1} times"
    return text


# --- Fig. 15: activation ratio and PPL ratio against CETT -------------------------------------------------------


def cett_sweeps(runs: dict[str, dict]) -> pd.DataFrame:
    """The CETT sweep of each paired run's last checkpoint: run, CETT, activation ratio, PPL ratio."""
    order = [f"{m}-{a}" for m in paired_models(runs) for a in ACTS]
    rows = [last_checkpoint(runs[n])[1].query("method == 'cett'").assign(run=n) for n in order]
    return pd.concat(rows)[["run", "value", "activation_ratio", "ppl_ratio"]].rename(columns={"value": "cett"})


def monotonicity(sweeps: pd.DataFrame) -> pd.DataFrame:
    """Per run: is the PPL ratio non-decreasing and the activation ratio non-increasing in CETT (what
    Algorithm 1's bisection needs), over how many swept values, and the lowest PPL ratio of the sweep (below
    1 = sparser and better)."""
    rows = []
    for run, d in sweeps.groupby("run", sort=False):
        d = d.sort_values("cett")
        rows.append(
            dict(
                run=run,
                ppl_non_decreasing=bool((np.diff(d.ppl_ratio) >= 0).all()),
                activation_non_increasing=bool((np.diff(d.activation_ratio) <= 0).all()),
                min_ppl_ratio=float(d.ppl_ratio.min()),
                n_values=len(d),
                cett_range=(float(d.cett.min()), float(d.cett.max())),
            )
        )
    return pd.DataFrame(rows)


def layer_profile(r: dict) -> pd.DataFrame:
    """Per-layer activation ratio at CETT-PPL-p% on a run's last checkpoint (sparsity.csv's ``layer_i``), with
    the layer's relative depth (0 = first layer, 1 = last) so that models of different depth share an axis."""
    s, _ = last_checkpoint(r)
    n = sum(1 for k in s.index if k.startswith("layer_"))
    depth = np.arange(n) / max(n - 1, 1)
    return pd.DataFrame(dict(layer=range(n), depth=depth, activation_ratio=[s[f"layer_{i}"] for i in range(n)]))


def fig15(res: dict) -> Figure:
    """Paper Fig. 15: activation ratio and PPL ratio against CETT, one series per paired run; a third panel
    shows, instead of the paper's per-layer Top-k series (not recorded), each run's per-layer activation
    ratio at its CETT-PPL-p% point."""
    runs = res["runs"]
    sw = cett_sweeps(runs)
    st = style.series_style(list(dict.fromkeys(sw.run)))
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    for run, d in sw.groupby("run", sort=False):
        d = d.sort_values("cett")
        axes[0].plot(d.cett, 100 * d.activation_ratio, "-", ms=4, label=run, **st[run])
        axes[1].plot(d.cett, d.ppl_ratio, "-", ms=4, label=run, **st[run])
        lp = layer_profile(runs[run])
        axes[2].plot(lp.depth, 100 * lp.activation_ratio, "-", ms=4, label=run, **st[run])
    axes[0].set(xlabel="CETT", ylabel="activation ratio (%)", xlim=(0, None), ylim=(0, None))
    axes[1].set(xlabel="CETT", ylabel="PPL / dense PPL", xlim=(0, None))
    axes[1].axhline(1.01, color="grey", ls=":", lw=1)
    axes[1].axhline(1.0, color="k", lw=0.6)
    axes[2].set(xlabel="layer depth (0 = first, 1 = last)", ylabel="activation ratio (%)", ylim=(0, None))
    axes[2].set_title("not in the paper: per layer at CETT-PPL-1%, last checkpoint", fontsize=9)
    axes[0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def fig15_verdict(mono: pd.DataFrame, methods: set[str]) -> str:
    """What the sweeps show about monotonicity, counted over the swept values, and whether per-layer series
    exist."""
    n, ppl, act = len(mono), int(mono.ppl_non_decreasing.sum()), int(mono.activation_non_increasing.sum())
    low = mono.loc[mono.min_ppl_ratio.idxmin()]
    k = sorted(set(mono.n_values))
    text = (
        f"over the {' or '.join(map(str, k))} CETT values swept per run, the activation ratio falls with CETT in "
        f"{act} of {n} runs and the PPL ratio is non-decreasing in {ppl} of {n}; the lowest PPL ratio of any sweep "
        f"point is {low.min_ppl_ratio:.4f} ({low.run})"
    )
    text += ", below 1: that sparsified model beats its dense self." if low.min_ppl_ratio < 1 else ", never below 1."
    if "topk_layer" not in methods:
        text += (
            " The paper's per-layer Top-k series have no counterpart: our probes swept Top-k per token only and "
            "store the model-wide ratio of each sweep point."
        )
    return text


# --- the paper's claims -------------------------------------------------------------------------------------------


def claims(res: dict) -> list[dict]:
    """Verdicts on claims 3, 4 and 5 of data/claims.csv from our runs, computed from ``results``. Claim 3's
    downstream half is untested, so its best verdict is "partly holds"."""
    runs, c = res["runs"], fig2_count(table_fig2(res))
    v3 = "partly holds" if c["best"] > c["beaten"] else "does not hold" if c["beaten"] else "untested"
    cuts = {m: relu_reduction(runs[f"{m}-relu"]) for m in paired_models(runs)}
    close = all(versus(x, PAPER_RELU_REDUCTION) == "close to" for x in cuts.values())
    v4 = "does not hold" if min(cuts.values()) <= 0 else "holds" if close else "partly holds"
    mono = monotonicity(cett_sweeps(runs))
    both = int((mono.ppl_non_decreasing & mono.activation_non_increasing).sum())
    v5 = "holds" if both == len(mono) else "partly holds" if both else "does not hold"
    notes = {
        3: f"at CETT-PPL-1% CETT keeps fewer neurons than Top-k and FAT-ε at equal PPL in {c['best']} of {c['n']} "
        f"runs (beaten in {c['beaten']}, unranked in {c['unranked']}), one seed each; downstream half untested",
        4: f"CETT-PPL-1% cuts the zero-threshold ratio by {reduction_verdict(cuts)}; one seed each, on models far "
        "smaller than its 0.8B",
        5: f"both monotone in {both} of {len(mono)} runs over the {'/'.join(map(str, sorted(set(mono.n_values))))} "
        "CETT values swept; a dip between swept values is not excluded",
    }
    return [dict(id=i, verdict=v, basis="our runs", note=notes[i]) for i, v in ((3, v3), (4, v4), (5, v5))]


# --- numbers the prose quotes ------------------------------------------------------------------------------------


def layer_verdict(runs: dict[str, dict]) -> str:
    """Where each paired run's densest layer sits at CETT-PPL-p% (first, inner or last), counted per activation."""
    parts = []
    for act in ACTS:
        where = []
        for model in paired_models(runs):
            lp = layer_profile(runs[f"{model}-{act}"])
            top = int(lp.activation_ratio.idxmax())
            where.append("the first" if top == 0 else "the last" if top == len(lp) - 1 else "an inner")
        counts = ", ".join(
            f"{w} layer in {where.count(w)}" for w in ("the first", "an inner", "the last") if w in where
        )
        parts.append(
            f"{style.ACT_LABEL[act]}: the densest layer is {counts} of {len(where)} run{'s' * (len(where) > 1)}"
        )
    return "; ".join(parts)


def versus(ours: float, paper: float, close: float = 0.05) -> str:
    """ "close to" within ``close`` (absolute), else "smaller than" / "larger than"."""
    return "close to" if abs(ours - paper) <= close else "smaller than" if ours < paper else "larger than"


def span(values, fmt: str = "{:.1f}%", scale: float = 100.0) -> str:
    """The range of the finite ``values`` in words ("a to b", one value once), saying how many are missing."""
    v = np.asarray(list(values), dtype=float)
    ok = v[np.isfinite(v)] * scale
    if not len(ok):
        return "beyond the sweep in every run"
    lo, hi = fmt.format(ok.min()), fmt.format(ok.max())
    text = lo if lo == hi else f"{lo} to {hi}"
    return text + (f" ({len(v) - len(ok)} of {len(v)} beyond the sweep)" if len(ok) < len(v) else "")


def describe(reading: dict) -> str:
    """A method's activation ratio at CETT's PPL in words, saying when the sweep does not reach it."""
    if not math.isnan(reading["value"]):
        return pct(reading["value"])
    if reading["short"]:
        return f"less than {pct(reading['hi'])} (its sweep stops short of that PPL)"
    return f"more than {pct(reading['lo'])} (even its densest sweep point costs more PPL)"


def pct(x: float, digits: int = 1) -> str:
    """A fraction as a percentage with ``digits`` decimals (shared with the pretrained-model section)."""
    return f"{100 * x:.{digits}f}%"


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapter's prose quotes, as text."""
    runs = res["runs"]
    models = paired_models(runs)
    paired = [runs[f"{m}-{a}"] for m in models for a in ACTS]
    table = table_fig2(res)
    mono = monotonicity(cett_sweeps(runs))
    methods = set().union(*(set(r["pareto"].method) for r in runs.values()))
    cuts = {m: relu_reduction(runs[f"{m}-relu"]) for m in models}
    cfg = [r["config"] for r in paired]
    epochs = [c["train"]["tokens"] / c["corpus_identity"]["train_tokens"] for c in cfg if "corpus_identity" in c]
    lo, hi = min(c[0] for c in mono.cett_range), max(c[1] for c in mono.cett_range)
    last = [last_checkpoint(r)[0] for r in paired]
    by_act = {a: table[table.model.str.endswith(style.ACT_LABEL[a])] for a in ACTS}
    out = dict(
        scales=", ".join(models),
        drawn=", ".join(res["scales"]),
        n_scales=str(len(models)),
        n_runs=str(len(mono)),
        params_range=span([c["model"]["non_embedding_params"] / 1e6 for c in cfg], "{:.2f}M", 1),
        train_tokens=span([c["train"]["tokens"] for c in cfg], "{:,.0f}", 1),
        epochs=span(epochs, "{:.1f}", 1) if epochs else "an unrecorded number of",
        hardware=", ".join(sorted({f"one {r['env']['gpu']}" if r["env"].get("gpu") else "a CPU" for r in paired})),
        probe_tokens=span([c["probe"]["tokens"] for c in cfg], "{:,.0f}", 1),
        n_ckpt=span([len(r["sparsity"]) for r in paired], "{:.0f}", 1),
        joint=span([len(r["cett"]["joint_steps"]) for r in paired], "{:.0f}", 1),
        p_pct=f"{100 * paired[0]['cett']['p']:g}",
        target=f"{1 + paired[0]['cett']['p']:g}",
        ppl_ratio_range=span([s.ppl_ratio for s in last], "{:.4f}", 1),
        dense_ppl_range=span([s.dense_ppl for s in last], "{:.1f}", 1),
        cett_range=f"{lo:g} to {hi:g}",
        fig1_source=fig1_source(res["fig1_meta"]),
        fig2_verdict=fig2_verdict(table),
        fig15_verdict=fig15_verdict(mono, methods),
        layer_verdict=layer_verdict(runs),
        relu_cut_verdict=reduction_verdict(cuts),
    )
    for act, t in by_act.items():
        out[f"{act}_act"] = span(t["CETT (% active)"], scale=1)
        out[f"{act}_zero"] = span(t["zero threshold (% active)"], scale=1)
        out[f"{act}_cett"] = span(t["CETT"], "{:.3f}", 1)
        for m in ("topk_token", "fat"):
            out[f"{act}_{m}"] = span(t[f"{style.METHOD_LABEL[m]} (% active)"], scale=1)
    out |= {f"claim_{c['id']}": f"{c['verdict']} ({c['note']})" for c in claims(res)}
    fig1d = res["fig1"]
    for act in ACTS:
        t = fig1d[fig1d.model == act]
        out[f"fig1_{act}_active"] = pct(t.active.mean(), 0)
        out[f"fig1_{act}_zero"] = str(int((t.a == 0).sum()))
    out["fig1_verdict"] = fig1_verdict({a: _top_share(fig1d[fig1d.model == a].n.to_numpy()) for a in ACTS})
    out["fig1_layer"] = str(int(fig1d.layer.iloc[0]))
    out["fig1_d_ff"] = str(int((fig1d.model == "relu").sum()))
    return out


def _top_share(n: np.ndarray, frac: float = 0.1) -> float:
    """Share of the summed contribution norms carried by the largest ``frac`` of the neurons."""
    n = np.sort(n)[::-1]
    return float(n[: max(1, round(frac * len(n)))].sum() / n.sum())
