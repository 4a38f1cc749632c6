"""Mixture of experts against a vanilla model (paper App. B, Fig. 12, claim 17), from our own runs.

The paper splits a 0.1B model's FFN into 16, 30 or 60 experts and moves each MoE along a perplexity–activation
curve by the number of experts a token is routed to; the vanilla ReLU model of the same size and data moves
along its own by the CETT value. Our counterpart: three GraniteMoe variants of ``mini-192x4`` (a quarter of
the experts routed per token in training) and the vanilla ``mini-192x4-relu``.

"Activation ratio" means different things on the two sides, and the comparison inherits that: for an MoE it
is k/E of the FFN parameters, every neuron of a routed expert counted active whatever its value (the paper's
convention); for the vanilla model it is the share of FFN neurons whose CETT contribution is kept. The two
curves are compared at equal activation ratio by interpolating the vanilla curve linearly, only where their
ranges overlap. All points of a curve come from one checkpoint, so checkpoint-to-checkpoint noise shifts a
curve as a whole; its size is estimated from each run's per-checkpoint perplexities (residuals about a line
through the last checkpoints), and that is the only uncertainty the intervals carry: every run has one seed.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import NullFormatter, ScalarFormatter

from .. import run, style
from ..paths import DATA, ROOT
from ..profiles import by_profile
from ..runs import load_runs, parse_run
from ..train_config import recorded_config
from .dynamics import recipe_label

MOE_RUNS = tuple(run.GRIDS["moe"])
VANILLA = "mini-192x4-relu"  # the vanilla model of the same width, depth, parameter count and recipe
NOISE_LAST = 10  # checkpoints whose perplexities give the checkpoint-to-checkpoint noise
Z95 = 1.96
PAPER_X_MAX = 30.0  # the paper's Fig. 12 shows activation ratios 0-30 %


# ----------------------------------------------------------------------------- analysis


def checkpoint_noise(ppl: np.ndarray, last: int = NOISE_LAST) -> float:
    """Relative checkpoint-to-checkpoint noise of a perplexity series: the standard deviation of log PPL about
    a straight line through its last ``last`` checkpoints. Why a line: late in a run the PPL still drifts down,
    and the drift is not noise; why log: the comparison is in relative terms."""
    y = np.log(np.asarray(ppl, float)[-last:])
    if len(y) < 3:
        return float("nan")
    x = np.arange(len(y))
    resid = y - np.polyval(np.polyfit(x, y, 1), x)
    return float(np.sqrt((resid**2).sum() / (len(y) - 2)))


def vanilla_curve(r: dict) -> pd.DataFrame:
    """The vanilla model's PPL against activation ratio at its last checkpoint: the CETT sweep, the
    CETT-PPL-1% point and the dense reading (CETT 0: a neuron is active when its ReLU output is non-zero)."""
    last = r["sparsity"].iloc[-1]
    sweep = r["pareto"][(r["pareto"]["method"] == "cett") & (r["pareto"]["step"] == last["step"])]
    rows = [
        dict(point=f"CETT {v:g}", activation_ratio=a, ppl=p)
        for v, a, p in sweep[["value", "activation_ratio", "ppl"]].itertuples(index=False)
    ]
    rows += [
        dict(point="CETT-PPL-1%", activation_ratio=last["activation_ratio"], ppl=last["ppl"]),
        dict(point="dense", activation_ratio=last["zero_ratio"], ppl=last["dense_ppl"]),
    ]
    return pd.DataFrame(rows).sort_values("activation_ratio", ignore_index=True)


def moe_curve(r: dict) -> pd.DataFrame:
    """An MoE's PPL against the number k of routed experts at its last checkpoint, with ``trained`` marking the
    top-k it was trained with (every other k is outside what the model was trained for)."""
    p = r["pareto"][r["pareto"]["method"] == "experts"]
    top_k = r["config"]["model"]["top_k"]
    return pd.DataFrame(
        {
            "k": p["value"].astype(int).to_numpy(),
            "activation_ratio": p["activation_ratio"].to_numpy(),
            "ppl": p["ppl"].to_numpy(),
            "trained": (p["value"].astype(int) == top_k).to_numpy(),
        }
    )


def interpolate(x: np.ndarray, curve_x: np.ndarray, curve_y: np.ndarray) -> np.ndarray:
    """Linear interpolation of a curve at ``x``; NaN outside the curve's range (no extrapolation)."""
    order = np.argsort(curve_x)
    cx, cy, x = np.asarray(curve_x, float)[order], np.asarray(curve_y, float)[order], np.asarray(x, float)
    return np.where((x >= cx[0]) & (x <= cx[-1]), np.interp(x, cx, cy), np.nan)


def compare(moe: pd.DataFrame, vanilla: pd.DataFrame, noise: float) -> pd.DataFrame:
    """Each MoE point against the vanilla curve at the same activation ratio: the relative PPL gap
    (MoE / vanilla - 1) with a 95% interval from ``noise`` (the two runs' relative checkpoint noise combined),
    the activation ratio at which the vanilla model reaches the MoE's PPL, and whether the gap is clear."""
    out = moe.copy()
    out["vanilla_ppl"] = interpolate(out["activation_ratio"], vanilla["activation_ratio"], vanilla["ppl"])
    log_gap = np.log(out["ppl"] / out["vanilla_ppl"])
    out["gap"], out["lo"], out["hi"] = (
        np.expm1(log_gap),
        np.expm1(log_gap - Z95 * noise),
        np.expm1(log_gap + Z95 * noise),
    )
    out["vanilla_ratio_same_ppl"] = interpolate(out["ppl"], vanilla["ppl"], vanilla["activation_ratio"])
    out["in_range"] = out["vanilla_ppl"].notna()
    out["worse"], out["better"] = out["in_range"] & (out["lo"] > 0), out["in_range"] & (out["hi"] < 0)
    return out


def _analyse(runs: dict[str, dict]) -> dict:
    missing = [n for n in (VANILLA, *MOE_RUNS) if n not in runs or "pareto" not in runs[n]]
    if missing:
        raise ValueError(f"runs {missing} are missing or not probed: train them with `python -m sparsing_lib.run`")
    van = vanilla_curve(runs[VANILLA])
    noise = {n: checkpoint_noise(runs[n]["sparsity"]["ppl"]) for n in MOE_RUNS}
    noise[VANILLA] = checkpoint_noise(runs[VANILLA]["sparsity"]["dense_ppl"])
    comp = {n: compare(moe_curve(runs[n]), van, float(np.hypot(noise[n], noise[VANILLA]))) for n in MOE_RUNS}
    return {"runs": {n: runs[n] for n in (*MOE_RUNS, VANILLA)}, "vanilla": van, "noise": noise, "compare": comp}


def results(profile: str = "replay") -> dict:
    """The four runs' curves and their comparison, under the profile contract.

    replay and smoke read ``data/runs``: an MoE trains at about 1.4 s a step at smoke size on a CPU, so the
    three variants and the vanilla model would take over ten minutes; smoke therefore re-analyses the committed
    runs. full trains the ``moe`` grid and the vanilla ``mini-192x4-relu`` with the runner into ``data/runs``
    (a GPU; the runner writes each run's provenance into its env.json, so nothing more is saved here)."""

    def replay() -> dict:
        return _analyse(load_runs(DATA / "runs"))

    def recompute(p: str) -> dict:
        if p == "smoke":
            return replay()
        out, ckpt = DATA / "runs", str(ROOT / ".scratch" / "ckpt")
        for argv in (["--grid", "moe"], ["--grid", "proof", "--slice", VANILLA]):
            if run.main(argv + ["--out", str(out), "--ckpt", ckpt]):
                raise RuntimeError(f"the runner reported failed runs in {out}; see each run's env.json")
        return _analyse(load_runs(out))

    return by_profile(profile, replay, recompute, save=lambda res: None)


# ----------------------------------------------------------------------------- setting facts


def _probe_set(res: dict) -> dict:
    """Whether the four runs' perplexities come from the same probe tokens, and how many. The runner takes the
    probe set as an equal number of whole windows from the start of each validation domain, so equal probe size,
    window length and corpus build mean the same tokens."""
    cfgs = {n: r["config"] for n, r in res["runs"].items()}
    key = {
        n: (c["probe"]["tokens"], c["train"]["seq_len"], c["corpus"], tuple(sorted(c["corpus_identity"].items())))
        for n, c in cfgs.items()
    }
    same = len(set(key.values())) == 1
    van = cfgs[VANILLA]
    folder = DATA / "runs" / VANILLA / "neuron_frequency.npz"
    n_dom = len(np.load(folder)["domains"]) if folder.exists() and van["profile"] == "full" else None
    window = van["train"]["seq_len"]
    per = max(1, van["probe"]["tokens"] // (window * n_dom)) * window if n_dom else None
    return dict(
        same=same,
        tokens=per * n_dom if per else van["probe"]["tokens"],
        windows=(per // window) * n_dom if per else None,
        window=window,
        domains=n_dom,
    )


def _tokens(r: dict) -> float:
    return float(r["metrics"]["tokens"].iloc[-1])


# ----------------------------------------------------------------------------- table and figure


def _label(name: str) -> str:
    cfg = None if name == VANILLA else name.split("-")[2][1:]
    return "vanilla (ReLU, CETT)" if cfg is None else f"MoE ({cfg} experts)"


def table12(res: dict) -> pd.DataFrame:
    """One row per model: its training, its point as trained (MoE: the trained top-k; vanilla: dense and
    CETT-PPL-1%), the vanilla PPL at that activation ratio with the gap and its interval, and how many of
    its points the vanilla curve covers."""
    van, rows = res["vanilla"], []
    for n in MOE_RUNS:
        c, r = res["compare"][n], res["runs"][n]
        t = c[c["trained"]].iloc[0]
        rows.append(
            {
                "model": _label(n),
                "experts (routed in training)": f"{r['config']['model']['n_experts']} ({int(t['k'])})",
                "training tokens (M)": _tokens(r) / 1e6,
                "activation ratio (%)": 100 * t["activation_ratio"],
                "PPL": t["ppl"],
                "vanilla PPL at that ratio": t["vanilla_ppl"],
                "MoE over vanilla (%)": 100 * t["gap"],
                "95% interval (checkpoint noise)": f"{100 * t['lo']:+.1f} to {100 * t['hi']:+.1f}",
                "vanilla activation ratio for the same PPL (%)": 100 * t["vanilla_ratio_same_ppl"],
                "points inside the vanilla range": f"{int(c['in_range'].sum())} of {len(c)}",
                "checkpoint noise (% PPL)": 100 * res["noise"][n],
            }
        )
    for point in ("CETT-PPL-1%", "dense"):
        v = van[van["point"] == point].iloc[0]
        rows.append(
            {
                "model": f"{_label(VANILLA)}, {point}",
                "training tokens (M)": _tokens(res["runs"][VANILLA]) / 1e6,
                "activation ratio (%)": 100 * v["activation_ratio"],
                "PPL": v["ppl"],
                "checkpoint noise (% PPL)": 100 * res["noise"][VANILLA],
            }
        )
    return pd.DataFrame(rows)


def fig12(res: dict) -> Figure:
    """PPL against activation ratio for the three MoEs (one point per number of routed experts) and the vanilla
    CETT curve. Left: the paper's window (0-30 %); right: every point, log PPL. A filled, larger marker is the
    MoE's trained top-k (vanilla: CETT-PPL-1%); hollow markers are MoE top-k values it was not trained with."""
    styles = style.series_style([VANILLA, *MOE_RUNS])
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    van = res["vanilla"]
    for ax in axes:
        for n in MOE_RUNS:
            c, st = res["compare"][n], styles[n]
            ax.plot(100 * c["activation_ratio"], c["ppl"], lw=1, mfc="none", ms=5, label=_label(n), **st)
            on = c[c["trained"]]
            ax.plot(100 * on["activation_ratio"], on["ppl"], ls="none", ms=10, mec="black", **st)
        st = styles[VANILLA]
        ax.plot(100 * van["activation_ratio"], van["ppl"], lw=1.5, ms=5, label=_label(VANILLA), **st)
        one = van[van["point"] == "CETT-PPL-1%"]
        ax.plot(100 * one["activation_ratio"], one["ppl"], ls="none", ms=10, mec="black", **st)
        ax.set(xlabel="activation ratio (%)", ylabel="perplexity")
    in_window = pd.concat([c[c["activation_ratio"] <= PAPER_X_MAX / 100]["ppl"] for c in res["compare"].values()])
    lo = min(van["ppl"].min(), in_window.min())
    axes[0].set(xlim=(0, PAPER_X_MAX), ylim=(lo - 1, lo + 12), title="the paper's window: 0–30 % activation")
    axes[1].set(yscale="log", title="every point (log perplexity)")
    axes[1].yaxis.set_major_formatter(ScalarFormatter())
    axes[1].yaxis.set_minor_formatter(NullFormatter())
    axes[1].set_yticks([30, 40, 60, 100, 150, 250])
    axes[0].legend(
        fontsize=8,
        title="large filled: as trained (MoE) / CETT-PPL-1%\nhollow: a top-k the MoE was not trained with",
        title_fontsize=7,
    )
    fig.suptitle("PPL–activation trade-off: MoE (routed experts) against the vanilla model (CETT)")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- numbers, verdict, claims


def _tally(res: dict) -> dict:
    allc = pd.concat(res["compare"].values(), keys=list(res["compare"]), names=["run"])
    inside = allc[allc["in_range"]]
    return dict(
        n=len(allc),
        inside=len(inside),
        worse=int(inside["worse"].sum()),
        better=int(inside["better"].sum()),
        gaps=inside["gap"],
        trained=allc[allc["trained"]],
    )


def _verdict(res: dict) -> tuple[str, str]:
    """(claim verdict, sentence): holds when every MoE point inside the vanilla range is worse beyond the
    checkpoint noise; partly when at least half are; does not hold otherwise (or when the vanilla is worse
    beyond the noise at half or more)."""
    t = _tally(res)
    if not t["inside"]:
        return "untested", "no MoE point lies inside the vanilla curve's range of activation ratios"
    share = f"{t['worse']} of the {t['inside']} MoE points inside the vanilla range"
    if t["worse"] == t["inside"]:
        return (
            "holds",
            f"{share} have a higher PPL than the vanilla model at the same activation ratio, beyond the checkpoint "
            "noise, as the paper finds",
        )
    if 2 * t["worse"] >= t["inside"]:
        return (
            "partly holds",
            f"{share} are worse than the vanilla model beyond the checkpoint noise, {t['better']} better; the rest "
            "are within the noise",
        )
    return (
        "does not hold",
        f"only {share} are worse than the vanilla model beyond the checkpoint noise ({t['better']} are better)",
    )


def recipe_sentence(res: dict) -> str:
    """Which of the four runs trained with the recipe ``run.train_config`` gives now and, for any that did not,
    how its warm-up and batch differ: the variants are retrained one at a time, and until all are, the
    comparison holds models trained differently, which the chapter must say beside it."""
    order = [*MOE_RUNS, VANILLA]
    label = {n: recipe_label(n, res["runs"][n]["config"]) for n in order}
    earlier = [n for n in order if label[n] == "earlier"]
    if not earlier:
        return "all four trained with the same recipe (the paper's batch and warm-up rules at this size)"
    current = [n for n in order if label[n] == "current"]
    diffs = []
    for n in earlier:
        was = recorded_config(res["runs"][n]["config"]["train"])
        now = run.train_config(parse_run(n)[0], "full")
        diffs.append(
            f"{n}: a warm-up of {was.warmup_steps * was.tokens_per_step / 1e6:.1f}M tokens instead of "
            f"{now.warmup_steps * now.tokens_per_step / 1e6:.1f}M, {was.batch_size} sequences a step "
            + ("as now" if was.batch_size == now.batch_size else f"instead of {now.batch_size}")
        )
    if not current:
        return f"none of the four trained with the current recipe ({'; '.join(diffs)})"
    now, was = style.word_list(current), style.word_list(earlier)
    return (
        f"{now} trained with the current recipe and {was} with an earlier one ({'; '.join(diffs)}), "
        f"so every comparison with {was} also carries that difference"
    )


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapter's prose quotes, formatted."""
    van, t, probe = res["vanilla"], _tally(res), _probe_set(res)
    moe_tokens = [_tokens(res["runs"][n]) / 1e6 for n in MOE_RUNS]
    params = [res["runs"][n]["config"]["model"]["non_embedding_params"] for n in MOE_RUNS]
    ratio = {n: res["compare"][n]["activation_ratio"] for n in MOE_RUNS}
    tr, noise_moe = t["trained"], [res["noise"][n] for n in MOE_RUNS]
    one = van[van["point"] == "CETT-PPL-1%"].iloc[0]
    dense = van[van["point"] == "dense"].iloc[0]
    out = {
        "fig12_verdict": _verdict(res)[1],
        "moe_recipe": recipe_sentence(res),
        "moe_ratio_range": f"{100 * min(r.min() for r in ratio.values()):.1f}–"
        f"{100 * max(r.max() for r in ratio.values()):.0f} %",
        "vanilla_ratio_range": f"{100 * van['activation_ratio'].min():.1f}–{100 * van['activation_ratio'].max():.1f} %",
        "n_points": str(t["n"]),
        "n_inside": str(t["inside"]),
        "n_worse": str(t["worse"]),
        "n_better": str(t["better"]),
        "n_untrained": str(int((~pd.concat(res["compare"].values())["trained"]).sum())),
        "gap_range": f"{100 * t['gaps'].min():+.1f} to {100 * t['gaps'].max():+.1f} %" if len(t["gaps"]) else "–",
        "trained_gaps": ", ".join(
            f"{100 * g:+.1f} % ({100 * lo:+.1f} to {100 * hi:+.1f})" for g, lo, hi in zip(tr["gap"], tr["lo"], tr["hi"])
        ),
        "trained_ratios": ", ".join(f"{100 * a:.1f} %" for a in tr["activation_ratio"]),
        "trained_ppls": ", ".join(f"{p:.2f}" for p in tr["ppl"]),
        "vanilla_same_ppl": ", ".join(f"{100 * a:.1f} %" for a in tr["vanilla_ratio_same_ppl"]),
        "vanilla_dense_ppl": f"{dense['ppl']:.2f}",
        "vanilla_dense_ratio": f"{100 * dense['activation_ratio']:.1f} %",
        "vanilla_cett_ppl": f"{one['ppl']:.2f}",
        "vanilla_cett_ratio": f"{100 * one['activation_ratio']:.1f} %",
        "noise_moe": f"{100 * min(noise_moe):.1f}–{100 * max(noise_moe):.1f} %",
        "noise_vanilla": f"{100 * res['noise'][VANILLA]:.1f} %",
        "noise_last": str(NOISE_LAST),
        "moe_tokens": f"{min(moe_tokens):.0f}–{max(moe_tokens):.0f}M",
        "vanilla_tokens": f"{_tokens(res['runs'][VANILLA]) / 1e6:.0f}M",
        "moe_params": f"{min(params) / 1e6:.2f}–{max(params) / 1e6:.2f}M",
        "vanilla_params": f"{res['runs'][VANILLA]['config']['model']['non_embedding_params'] / 1e6:.2f}M",
        "expert_sizes": "–".join(str(d) for d in sorted({res["runs"][n]["config"]["model"]["d_ff"] for n in MOE_RUNS})),
        "probe_set": (
            f"the same {probe['tokens']:,} validation tokens ({probe['windows']} windows of {probe['window']:,}, "
            f"an equal number from each of the {probe['domains']} validation domains)"
            if probe["same"] and probe["domains"]
            else f"the same probe set of about {probe['tokens']:,} validation tokens"
            if probe["same"]
            else "different probe sets (their probe settings differ), so the levels are not directly comparable"
        ),
    }
    return out


def claims(res: dict) -> list[dict]:
    """Claim 17 (MoE has a worse PPL-activation trade-off than the vanilla model), judged on our runs."""
    verdict, sentence = _verdict(res)
    t = _tally(res)
    note = (
        f"{sentence}; gaps {100 * t['gaps'].min():+.1f} to {100 * t['gaps'].max():+.1f} % in PPL; one seed each"
        if len(t["gaps"])
        else sentence
    )
    return [dict(id=17, verdict=verdict, basis="our runs", note=note)]
