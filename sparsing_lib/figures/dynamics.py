"""Training dynamics and the model family (paper App. D and I): Table 3, the runs, Fig. 13 and Fig. 14.

This is where the book's own runs are introduced: the mini family beside the paper's Table 3, what each
run in ``data/runs`` trained on and for how long (in tokens and in passes over the corpus), its loss
curves (Fig. 13) and, per scale and activation, the loss it extrapolates to with unlimited data (Fig. 14).

The limit of Fig. 14 is the ``E`` of a saturating power law ``L(D) = E + B·D^-β`` fitted to a run's
validation losses. The paper does not say how it extrapolated; this form is the usual one for loss against
data. Its interval is a percentile bootstrap over checkpoints, which treats neighbouring checkpoints as
independent, so it is a lower bound on the real uncertainty; the fit's sensitivity to where it starts is
reported beside it, because it is larger.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import paper, recipe, run, style
from ..checks import check_choice, check_range
from ..convergence import SERIES, run_settling
from ..models import MINI, SCALE_FAMILY, get_spec
from ..paths import DATA, ROOT, data_file
from ..profiles import by_profile
from ..runs import load_runs, parse_run, select_runs
from ..stability import STABLE_RISE, run_stability, verdict_sentence
from ..train_config import recorded_config
from .limit_loss import FIT_FROM, fit_limit_loss
from .methods_corpus import by_domain, manifest, public_domain_share

# the runs Fig. 13 and Fig. 14 compare: the scale family (and the smoke grid's toy runs); width-depth and MoE
# runs have their own chapters
SCALE_KINDS = (*SCALE_FAMILY, "smoke")
KIND_LABEL = {
    "scale": "scale",
    "large": "larger scale",
    "recipe": "recipe validation",
    "width_depth": "width-depth variant",
    "moe": "mixture of experts",
    "smoke": "smoke test",
}
FIT_FROM_LATE = 0.3  # ... and is repeated from this fraction on, to show how much the limit depends on the window


# ----------------------------------------------------------------------------- analysis


def epochs(metrics: pd.DataFrame, train_tokens: int) -> float:
    """Passes over the corpus's training split by the end of a run: its last logged token count over the
    split's size. Why not read the logged ``epoch`` column: this recomputes it from the corpus size, so the
    runs table and the corpus appendix agree by construction."""
    return float(metrics["tokens"].iloc[-1] / train_tokens)


def split_tokens(cfg: dict) -> int:
    """The tokens of the share of the split a run trained on (``train_tokens_used``: a run on 1/k of the split
    makes k times as many passes as one on all of it); runs from before that field used the whole split."""
    return cfg.get("train_tokens_used") or cfg["corpus_identity"]["train_tokens"]


def run_passes(metrics: pd.DataFrame, cfg: dict) -> float:
    """``epochs`` over the share of the split the run trained on (``split_tokens``)."""
    return epochs(metrics, split_tokens(cfg))


LOSS_GAP = 0.05  # nats: final validation losses of ReLU and SiLU this close count as comparable (Fig. 13, claim 8)


def limit_losses(runs: dict[str, dict], fit_from: float = FIT_FROM, n_boot: int = 200, seed: int = 0) -> pd.DataFrame:
    """One limit-loss fit per scale run, on its validation losses from ``fit_from`` of its tokens on. A fit
    on a bound (``fit_limit_loss``'s status) has no limit: its limit and interval are left empty, so no
    figure, overlap or range reads a number the form rather than the data chose."""
    check_range("fit_from", fit_from, 0.0, 0.8)
    rows = []
    for name, r in runs.items():
        spec = get_spec(parse_run(name)[0])
        if spec.kind not in SCALE_KINDS:
            continue
        m = r["metrics"].dropna(subset=["val_loss"])
        m = m[m["tokens"] >= fit_from * m["tokens"].iloc[-1]]
        base = dict(run=name, model=spec.name, activation=r["config"]["activation"], params=spec.non_embedding_params)
        base["last_loss"] = float(m["val_loss"].iloc[-1])
        try:
            fit = fit_limit_loss(m["tokens"].to_numpy(), m["val_loss"].to_numpy(), n_boot, seed)
        except (RuntimeError, ValueError, TypeError):  # too few points (smoke runs) or no convergence
            fit = dict(status="not fitted", limit=np.nan, lo=np.nan, hi=np.nan, n_points=len(m), n_boot=0)
        if fit["status"] == "on a bound":
            fit |= dict(limit=np.nan, lo=np.nan, hi=np.nan)
        rows.append(base | fit)
    return pd.DataFrame(rows)


def _collect(folder: Path, n_boot: int, seed: int, settle_frac: float = 0.1) -> dict:
    """``all_runs``: every run folder, variants and unstable runs too, for the runs table (none is dropped
    silently); ``runs``: the ones the analyses use (``runs.select_runs``' default choice)."""
    every = load_runs(folder, variants=True, unstable=True)
    runs = select_runs(every)
    return {
        "all_runs": every,
        "runs": runs,
        "limits": limit_losses(runs, FIT_FROM, n_boot, seed),
        "limits_late": limit_losses(runs, FIT_FROM_LATE, 0, seed),
        "settling": run_settling({n: r for n, r in runs.items() if _kind(n) in SCALE_KINDS}, settle_frac, n_boot, seed),
        "settle_frac": settle_frac,
        "manifest": manifest(),
    }


def results(
    profile: str = "replay", grid: str = "scales", n_boot: int = 0, seed: int = 0, settle_frac: float = 0.1
) -> dict:
    """The runs, their limit-loss fits, when their loss and sparsity settle (within ``settle_frac`` of their
    total change) and the corpus manifest, under the profile contract.

    replay reads ``data/runs``; smoke trains the runner's smoke grid (two tiny models on the committed
    smoke slice, CPU) into a temporary folder; full trains ``grid`` with the runner into ``data/runs`` (a
    GPU, checkpoints in the checkout's .scratch/; the runner writes each run's provenance into its env.json, so
    nothing more is saved here).
    ``n_boot`` = 0 means the profile's default (smoke 20 bootstrap resamples, otherwise 100)."""
    check_choice("grid", grid, run.GRIDS)
    check_range("n_boot", n_boot, 0, 5000, int)
    check_range("settle_frac", settle_frac, 0.01, 0.5)
    n_boot = n_boot or (20 if profile == "smoke" else 100)

    def replay() -> dict:
        return _collect(data_file("runs"), n_boot, seed, settle_frac)

    def recompute(p: str) -> dict:
        if p == "smoke":
            out, code = run.smoke_runs(), 0
        else:
            out = DATA / "runs"
            code = run.main(["--grid", grid, "--out", str(out), "--ckpt", str(ROOT / ".scratch" / "ckpt")])
        if code:
            raise RuntimeError(f"the runner reported failed runs in {out}; see each run's env.json")
        return _collect(Path(out), n_boot, seed, settle_frac)

    return by_profile(profile, replay, recompute, save=lambda res: None)


# ----------------------------------------------------------------------------- tables


def _kind(name: str) -> str:
    return get_spec(parse_run(name)[0]).kind


def _scale_runs(res: dict) -> dict[str, dict]:
    return {n: r for n, r in res["runs"].items() if _kind(n) in SCALE_KINDS}


def table3(res: dict | None = None) -> pd.DataFrame:
    """The paper's Table 3 (non-embedding parameters and batch size per scale) above the mini family's
    settings (shape, parameters, batch, steps, warm-up, training tokens) from ``models`` and the runner's
    full recipe. The paper prints no shapes, so its shape cells stay empty. ``res`` is unused (the family
    is the same under every profile); it is accepted so every item is called the same way."""
    t3 = paper.table3()
    rows = [
        {"family": "paper", "model": s, "kind": "scale", "non-embedding parameters (M)": n / 1e6, "batch (tokens)": b}
        for s, n, b in zip(t3["scale"], t3["non_embedding_params"], t3["batch_size"])
    ]
    for name in run.GRIDS["scales"][::2] + run.GRIDS["width_depth"][:-1] + run.GRIDS["moe"]:
        spec, cfg = get_spec(parse_run(name)[0]), run.train_config(parse_run(name)[0], "full")
        tokens = cfg.steps * cfg.tokens_per_step
        rows.append(
            {
                "family": "mini (ours)",
                "model": spec.name,
                "kind": KIND_LABEL[spec.kind],
                "width × layers": f"{spec.d_model} × {spec.n_layers}",
                "heads × head dim": f"{spec.n_heads} × {spec.head_dim}",
                "FFN width": spec.d_ff * (spec.n_experts or 1),
                "experts (routed)": f"{spec.n_experts} ({spec.top_k})" if spec.n_experts else None,
                "width / depth": spec.width_depth,
                "non-embedding parameters (M)": spec.non_embedding_params / 1e6,
                "batch (tokens)": cfg.tokens_per_step,
                "steps": cfg.steps,
                "warm-up steps": cfg.warmup_steps,
                "training tokens (M)": tokens / 1e6,
                "tokens per parameter": tokens / spec.non_embedding_params,
            }
        )
    return pd.DataFrame(rows)


STABILITY_LABEL = {
    "stable": "stable",
    "overfit": "overfit: validation loss climbs as training loss falls (kept)",
    "unstable": "unstable: left out of the analyses",
    "not judged": "not judged",
}


def recipe_label(name: str, cfg: dict) -> str:
    """ "current" when the run's recorded batch and warm-up are what ``run.train_config`` gives its model now,
    else "earlier" (the runs trained before the paper's scale rules, ``recipe``, were adopted)."""
    now = asdict(run.train_config(parse_run(name)[0], cfg.get("profile", "full")))
    same = all(cfg.get("train", {}).get(k) == now[k] for k in ("batch_size", "warmup_frac", "warmup_tokens"))
    return "current" if same else "earlier"


def runs_table(res: dict) -> pd.DataFrame:
    """Every run folder found, finished or not, variants and unstable runs included: status, tokens, epochs,
    final validation loss, its largest rise after warm-up and the stability rule's verdict (so a run the
    analyses leave out is still shown, with the reason), checkpoints probed and the hardware it trained on."""
    rows = []
    for name, r in res["all_runs"].items():
        m, env, cfg, verdict = r["metrics"], r["env"], r["config"], run_stability(r)
        model = get_spec(parse_run(name)[0])
        hardware = env.get("gpu") or (f"CPU ({env['cpu_count']} cores)" if env.get("cpu_count") else None)
        rows.append(
            {
                "run": name,
                "kind": KIND_LABEL[model.kind],
                "status": env.get("status", "not finished"),
                "tokens (M)": m["tokens"].iloc[-1] / 1e6,
                "tokens per parameter": m["tokens"].iloc[-1] / model.non_embedding_params,
                "epochs": run_passes(m, cfg),
                "recipe": recipe_label(name, cfg),
                "batch (tokens)": cfg["train"]["batch_size"] * cfg["train"]["seq_len"] if "train" in cfg else None,
                "warm-up steps": recorded_config(cfg["train"]).warmup_steps if "train" in cfg else None,
                "final validation loss": m["val_loss"].dropna().iloc[-1],
                "largest rise after warm-up (nats)": verdict.rise,
                "stability": STABILITY_LABEL[verdict.verdict],
                "checkpoints probed": len(r["sparsity"]) if "sparsity" in r else 0,
                "hardware": hardware,
            }
        )
    return pd.DataFrame(rows)


def limits_table(res: dict) -> pd.DataFrame:
    """The limit-loss fits behind Fig. 14, one row per scale run, with the late-window refit beside them."""
    lim, late = res["limits"], res["limits_late"].set_index("run")["limit"]
    return pd.DataFrame(
        {
            "run": lim["run"],
            "non-embedding parameters (M)": lim["params"] / 1e6,
            "last validation loss": lim["last_loss"],
            "limit loss E": lim["limit"],
            "fit": lim["status"],
            "95% interval": [f"{a:.3f}–{b:.3f}" if np.isfinite(a) else None for a, b in zip(lim["lo"], lim["hi"])],
            "exponent β": lim.get("beta"),
            f"E, fit from {FIT_FROM_LATE:.0%} of the run": lim["run"].map(late).to_numpy(),
        }
    )


def settling_display(res: dict) -> pd.DataFrame:
    """The settling table for a reader: per run, the share of tokens after which each series stays settled
    and the share of its change left in the last third, each with its 95% interval, and the order."""
    st = res["settling"]
    span = lambda k: [f"{a:.2f} ({lo:.2f}–{hi:.2f})" for a, lo, hi in zip(st[k], st[f"{k}_lo"], st[f"{k}_hi"])]  # noqa: E731
    return pd.DataFrame(
        {
            "run": st["run"],
            "loss settles at (share of tokens)": span("val_loss_settle"),
            "activation ratio settles at": span("activation_ratio_settle"),
            "loss change left after 2/3": span("val_loss_remaining"),
            "activation-ratio change left after 2/3": span("activation_ratio_remaining"),
            "activation ratio settles": st["order"].replace("not separated", "–"),
        }
    )


# ----------------------------------------------------------------------------- figures


def fig13(res: dict) -> Figure:
    """Loss against training tokens for every scale run, one panel per activation: the training loss as a
    thin line (a running mean over five logged steps) and the validation loss as markers, one colour and
    marker per run."""
    runs = _scale_runs(res)
    styles = style.series_style(list(runs))
    acts = [a for a in ("relu", "silu") if any(r["config"]["activation"] == a for r in runs.values())]
    fig, axes = plt.subplots(1, max(len(acts), 1), figsize=(6 * max(len(acts), 1), 4.4), sharey=True, squeeze=False)
    for ax, act in zip(axes[0], acts):
        for name, r in runs.items():
            if r["config"]["activation"] != act:
                continue
            m, st = r["metrics"], styles[name]
            ax.plot(
                m["tokens"] / 1e6,
                m["train_loss"].rolling(5, min_periods=1).mean(),
                color=st["color"],
                lw=0.8,
                alpha=0.6,
            )
            v = m.dropna(subset=["val_loss"])
            ax.plot(v["tokens"] / 1e6, v["val_loss"], ls="none", ms=4, label=name, **st)
        low = [r["metrics"]["train_loss"].rolling(5, min_periods=1).mean().min() for r in runs.values()]
        first_val = [
            r["metrics"]["val_loss"].dropna().iloc[min(2, len(r["metrics"]["val_loss"].dropna()) - 1)]
            for r in runs.values()
        ]
        ax.set(
            xlabel="training tokens passed (M)",
            title=f"{style.ACT_LABEL[act]} (lines: training loss; markers: validation loss)",
            ylim=(min(low) - 0.05, max(first_val) + 0.2),
        )
        ax.legend(fontsize=8, ncols=1)
    axes[0][0].set_ylabel("next-token loss (nats)")
    fig.tight_layout()
    return fig


def fig14(res: dict) -> Figure:
    """The fitted limit loss against non-embedding parameters, ReLU and SiLU, with 95% bootstrap intervals;
    hollow markers are each run's last measured validation loss, for the size of the extrapolation."""
    lim = res["limits"]
    styles = style.series_style(["relu", "silu"])
    fig, ax = plt.subplots(figsize=(6.5, 4.4))
    for k, (act, g) in enumerate(lim.groupby("activation", sort=True)):
        st, x = styles[act], g["params"].to_numpy() / 1e6 * (1 + 0.02 * (k - 0.5))
        ax.plot(x, g["limit"], ls="-", ms=6, label=f"{style.ACT_LABEL[act]}: limit E", **st)
        ax.vlines(x, g["lo"], g["hi"], color=st["color"], lw=1.2)  # a percentile interval need not hold E
        ax.plot(
            x,
            g["last_loss"],
            ls=":",
            mfc="none",
            color=st["color"],
            marker=st["marker"],
            label=f"{style.ACT_LABEL[act]}: last measured",
        )
    ax.set(xscale="log", xlabel="non-embedding parameters (M, log scale)", ylabel="validation loss (nats)")
    sizes = sorted(set(lim["params"] / 1e6))
    ax.set_xticks(sizes, [f"{s:.2g}" for s in sizes], minor=False)
    ax.set_xticks([], minor=True)
    ax.set_title(r"Limit of the loss as data grows (fit $E + B\,D^{-\beta}$)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig_settling(res: dict) -> Figure:
    """When each scale run's validation loss and activation ratio settle, as a share of its tokens, with 95%
    intervals from checkpoint noise: one row per run, one colour and marker per series."""
    st = res["settling"]
    styles = style.series_style(list(SERIES))
    fig, ax = plt.subplots(figsize=(6.5, 0.45 * len(st) + 1.4))
    y = np.arange(len(st))
    for k, (key, label) in enumerate(SERIES.items()):
        x, lo, hi = st[f"{key}_settle"], st[f"{key}_settle_lo"], st[f"{key}_settle_hi"]
        err = np.clip(np.vstack([x - lo, hi - x]), 0, None)
        ax.errorbar(x, y + 0.15 * (k - 0.5), xerr=err, ls="none", capsize=3, ms=6, label=label, **styles[key])
    ax.set_yticks(y, st["run"])
    ax.invert_yaxis()
    ax.set(
        xlim=(0, 1),
        xlabel=f"share of the run's tokens after which the series stays within {res['settle_frac']:.0%} of its change",
    )
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- numbers and verdicts


def _split_phrase(split: int, manifest_train: int, corpus: str) -> str:
    """The training split's size as the runs saw it; for the full corpus, also how many of its ids are the
    end-of-text marks the manifest's text-token counts leave out (one per training document)."""
    if corpus == "smoke" or split <= manifest_train:
        return f"{split / 1e6:.2f}M token ids"
    return f"{split / 1e6:.2f}M token ids, {split - manifest_train:,} of them the end-of-text marks between documents"


def _size_ratio() -> str:
    """How many times more non-embedding parameters each paper scale has than the mini scale of the same rank."""
    paper_n = paper.table3()["non_embedding_params"].to_numpy()
    mini_n = [get_spec(parse_run(n)[0]).non_embedding_params for n in run.GRIDS["scales"][::2]]
    ratios = paper_n[: len(mini_n)] / np.array(mini_n)
    return f"{ratios.min():.0f}–{ratios.max():.0f}"


def _monotone_down(values: list[float]) -> bool:
    return len(values) > 1 and bool(np.all(np.diff(values) < 0))


def _limit_overlap(ok: pd.DataFrame) -> pd.Series:
    """Per scale with both fits: whether ReLU's and SiLU's limit-loss intervals overlap."""
    if not {"relu", "silu"} <= set(ok["activation"]):
        return pd.Series(dtype=bool)
    r, s = (ok[ok["activation"] == a].set_index("model") for a in ("relu", "silu"))
    both = r.index.intersection(s.index)
    return pd.Series([r.loc[m, "lo"] <= s.loc[m, "hi"] and s.loc[m, "lo"] <= r.loc[m, "hi"] for m in both], index=both)


def _recipe_batch_range() -> str:
    """The batches the recipe gives the family's scales (the two larger ones included), in sequences."""
    sizes = [run.train_config(s.name, "full").batch_size for s in MINI.values() if s.kind in SCALE_FAMILY]
    return f"{min(sizes)} to {max(sizes)}"


def _rule_below_floor() -> str:
    """The scales whose batch the paper's rule alone (``recipe.apply_rules`` without the floor) would put under
    the floor, with that batch."""
    family = [s for s in MINI.values() if s.kind in SCALE_FAMILY]
    rule = [(s.name, recipe.apply_rules(run.train_config(s.name, "full"), s.non_embedding_params, min_batch=1))
            for s in family]  # fmt: skip
    below = [(n, c.batch_size) for n, c in rule if c.batch_size < recipe.MIN_BATCH]
    said = [f"{b} sequences at {n}" if i == 0 else f"{b} at {n}" for i, (n, b) in enumerate(below)]
    return style.word_list(said) or "no fewer"


def _scale_shapes(names: pd.Series) -> dict[str, str]:
    """How many model scales the scale runs span and their width/depth range, so that the prose follows the
    family as scales are added."""
    models = {get_spec(parse_run(n)[0]) for n in names}
    ratios = [m.d_model / m.n_layers for m in models]
    return {
        "n_scales": f"{len(models)}",
        "scale_wd_range": f"{min(ratios):.0f}–{max(ratios):.0f}" if ratios else "–",
    }


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the chapter's prose quotes, formatted."""
    table = runs_table(res)
    current = list(table[table["recipe"] == "current"]["run"])
    verdicts = {n: run_stability(r) for n, r in res["all_runs"].items()}
    scales = table[table["kind"].isin([KIND_LABEL[k] for k in SCALE_KINDS]) & table["run"].isin(list(res["runs"]))]
    dom = by_domain(res["manifest"])
    any_run = next(iter(res["runs"].values()))
    split = any_run["config"]["corpus_identity"]["train_tokens"]
    lim = res["limits"].sort_values("params")
    out = {
        "n_runs": f"{len(table)}",
        "n_done": f"{int((table['status'] == 'done').sum())}",
        "n_probed": f"{int((table['checkpoints probed'] > 0).sum())}",
        "n_scale_runs": f"{len(scales)}",
        "ckpts": "–".join(sorted({str(n) for n in table["checkpoints probed"] if n})) or "no",
        "hardware": ", ".join(sorted(set(table["hardware"].dropna()))) or "unrecorded hardware",
        "split": _split_phrase(split, int(dom.loc["total", "train_tokens"]), any_run["config"]["corpus"]),
        "corpus_tokens": f"{dom.loc['total', 'tokens'] / 1e6:.1f}",
        "corpus_domains": ", ".join(f"{d} {dom.loc[d, 'share']:.0%}" for d in dom.index if d != "total"),
        "corpus_sources": f"{int(dom.loc['total', 'sources'])}",
        "corpus_public_domain": f"{public_domain_share(res['manifest']):.0%}",
        "vocab": f"{any_run['config']['vocab_size']:,}",
        "epochs_range": f"{table['epochs'].min():.1f}–{table['epochs'].max():.1f}",
        "scale_epochs_range": f"{scales['epochs'].min():.1f}–{scales['epochs'].max():.1f}",
        "tokens_per_param": f"{run.TOKENS_PER_PARAM}",
        "large_tokens_per_param": f"{run.LARGE_TOKENS_PER_PARAM}",
        "recipe_beta": f"{recipe.paper_rules().beta:.2f}",
        "recipe_warmup": f"{recipe.paper_rules().warmup_per_param:.1f}",
        "recipe_batch_range": _recipe_batch_range(),
        "recipe_min_batch": f"{recipe.MIN_BATCH}",
        "recipe_rule_below_floor": _rule_below_floor(),
        "min_tokens": f"{run.MIN_TOKENS / 1e6:.0f}",
        "size_ratio": _size_ratio(),
        "corpus_in_run": "the committed smoke slice" if any_run["config"]["corpus"] == "smoke" else "the full corpus",
        "stable_rise": f"{STABLE_RISE}",
        "stability": verdict_sentence(verdicts),
        "current_recipe_count": f"{len(current)} of the {len(table)}",
        "earlier_recipe_runs": ", ".join(table[table["recipe"] == "earlier"]["run"]) or "none",
        "current_recipe_check": verdict_sentence({n: verdicts[n] for n in current})
        if current
        else "no run of the current recipe has been trained yet",
        **_scale_shapes(scales["run"]),
    }
    gaps = {
        n: r["metrics"]["val_loss"].dropna().iloc[-1]
        - r["metrics"]["train_loss"].rolling(5, min_periods=1).mean().iloc[-1]
        for n, r in _scale_runs(res).items()
    }
    for key, row in (
        ("gap_few", scales.loc[scales["epochs"].idxmin()]),
        ("gap_many", scales.loc[scales["epochs"].idxmax()]),
    ):
        g = gaps[row["run"]]
        where = "above" if g >= 0 else "below"
        out[key] = f"{abs(g):.3f} nats {where} the training loss after {row['epochs']:.1f} epochs ({row['run']})"
    by_act = {a: g.sort_values("params") for a, g in lim.groupby("activation")}
    finals = {a: [res["runs"][n]["metrics"]["val_loss"].dropna().iloc[-1] for n in g["run"]] for a, g in by_act.items()}
    falls = " and ".join(style.ACT_LABEL[a] for a, v in finals.items() if _monotone_down(v))
    out["fig13_verdict"] = (
        f"the final validation loss falls with every step in scale for {falls}"
        if falls
        else "only one scale was trained"
        if lim["model"].nunique() < 2
        else "the final validation loss does not fall steadily with scale"
    )
    pairs = lim.pivot_table(index="model", columns="activation", values="last_loss")
    if {"relu", "silu"} <= set(pairs.columns):
        gap = (pairs["relu"] - pairs["silu"]).dropna()
        out["relu_minus_silu"] = f"{gap.min():+.3f} to {gap.max():+.3f}"
        side = "above" if (gap > 0).all() else "below" if (gap < 0).all() else "on either side of"
        lo, hi = f"{gap.abs().min():.3f}", f"{gap.abs().max():.3f}"
        span = f"{lo} nats" if lo == hi else f"{lo}–{hi} nats"
        out["fig13_verdict"] += f"; ReLU ends {span} {side} SiLU at every scale, " + (
            "nearly the same loss, as in the paper"
            if gap.abs().max() < LOSS_GAP
            else "a wider gap than the paper shows"
        )
    else:
        out["relu_minus_silu"] = "not measured"
    ok = lim.dropna(subset=["limit", "lo"])
    late = res["limits_late"].set_index("run")["limit"]
    shift = (ok.set_index("run")["limit"] - late).abs().dropna()
    late_ok = late.reindex(ok["run"]).to_numpy()
    outside = int(((late_ok < ok["lo"].to_numpy()) | (late_ok > ok["hi"].to_numpy())).sum())
    out["limit_shift"] = f"{shift.max():.2f}" if len(shift) else "–"
    out["limit_outside"] = f"{outside} of {len(ok)}"
    out["fit_from"] = f"{FIT_FROM:.0%}"
    out["fit_from_late"] = f"{FIT_FROM_LATE:.0%}"
    out["n_boot"] = f"{int(lim['n_boot'].max()) if len(lim) and lim['n_boot'].notna().any() else 0}"
    overlap = _limit_overlap(ok)
    out["limit_overlap"] = f"{int(overlap.sum())} of {len(overlap)}"
    limit_falls = [a for a, g in by_act.items() if _monotone_down(list(g["limit"].dropna()))]
    out["limit_range"] = f"{lim['limit'].min():.2f}–{lim['limit'].max():.2f}" if lim["limit"].notna().any() else "–"
    if not len(ok):
        out["fig14_verdict"] = "no run has enough validation points for the fit"
    else:
        trend = (
            f"the limit falls with scale for {' and '.join(style.ACT_LABEL[a] for a in limit_falls)}"
            if limit_falls
            else "the limit does not fall steadily with scale"
        )
        robust = outside == 0
        out["fig14_verdict"] = (
            f"{trend}; ReLU's and SiLU's intervals overlap at {out['limit_overlap']} scales (the paper: nearly "
            "overlapping curves); "
            + (
                "the limits are stable when the fit window moves"
                if robust
                else f"but starting the fit later moves {outside} of {len(ok)} limits outside their intervals (by up "
                f"to {shift.max():.2f} nats), so the limits are extrapolations of one chosen form, not measurements"
            )
        )
    return out | _settling_numbers(res)


def _settling_verdict(res: dict) -> tuple[str, str]:
    """(claim 16 verdict, sentence): holds when the activation ratio settles later than the loss, beyond the
    checkpoint noise, in every probed run; partly when in some; does not hold when in none."""
    st = res["settling"]
    if not len(st):
        return "untested", "no probed scale run has enough checkpoints"
    later = st[st["order"] == "later"]
    by_act = {a: f"{int((g['order'] == 'later').sum())} of {len(g)}" for a, g in st.groupby("activation")}
    sentence = (
        "the activation ratio settles later than the validation loss, beyond checkpoint noise, in "
        + " and ".join(f"{n} {style.ACT_LABEL[a]} runs" for a, n in by_act.items())
        + f"; earlier in {int((st['order'] == 'earlier').sum())}"
    )
    verdict = "holds" if len(later) == len(st) else "partly holds" if len(later) else "does not hold"
    return verdict, sentence


def _settling_numbers(res: dict) -> dict[str, str]:
    st = res["settling"]
    rng = lambda k: f"{st[k].min():.2f}–{st[k].max():.2f}" if len(st) else "–"  # noqa: E731
    out = {"settle_frac": f"{res['settle_frac']:.0%}", "settling_verdict": _settling_verdict(res)[1]}
    if not len(st):
        return out
    for a, g in st.groupby("activation"):
        for key in SERIES:
            out[f"{key}_settle_{a}"] = f"{g[f'{key}_settle'].min():.2f}–{g[f'{key}_settle'].max():.2f}"
    out["n_later"], out["n_settling"] = str(int((st["order"] == "later").sum())), str(len(st))
    out["remaining_loss"], out["remaining_act"] = rng("val_loss_remaining"), rng("activation_ratio_remaining")
    return out


def claims(res: dict) -> list[dict]:
    """Claim 8 on its loss side (ReLU and SiLU reach comparable losses and limit losses: holds when every final
    gap is under 0.05 nats and every pair of limit intervals overlaps, partly when one of the two is true; the
    downstream chapter judges the scores) and claim 16 (sparsity converges more slowly than the loss)."""
    lim = res["limits"]
    last = lim.pivot_table(index="model", columns="activation", values="last_loss")
    overlap = _limit_overlap(lim.dropna(subset=["limit", "lo"]))
    if {"relu", "silu"} <= set(last.columns) and len(overlap):
        gap = (last["relu"] - last["silu"]).dropna().abs()
        close, overlapping = bool((gap < LOSS_GAP).all()), bool(overlap.all())
        v8 = "holds" if close and overlapping else "partly holds" if close or overlap.any() else "does not hold"
        note8 = (
            f"final validation losses of ReLU and SiLU differ by {gap.min():.3f}–{gap.max():.3f} nats; their "
            f"limit-loss intervals overlap at {int(overlap.sum())} of {len(overlap)} scales (checkpoint bootstrap); "
            "downstream scores: judged in the downstream chapter"
        )
    else:
        v8, note8 = "untested", "no scale has both a ReLU and a SiLU limit-loss fit"
    v16, note16 = _settling_verdict(res)
    note16 += f" (settled: within {res['settle_frac']:.0%} of the total change; intervals: checkpoint noise, one seed)"
    return [
        dict(id=8, verdict=v8, basis="our runs", note=note8),
        dict(id=16, verdict=v16, basis="our runs", note=note16),
    ]
