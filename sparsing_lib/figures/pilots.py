"""Training larger minis stably: the pilot runs at mini-448x8 and mini-512x10 (a section of the dynamics chapter).

The first mini-448x8 run's validation loss rose after 62M tokens. Five 448x8 pilots each change one thing in
that recipe, and a 512x10 pilot trains the recipe expected to hold (``sparsing_lib.pilots``). This module reads
their run folders, judges them with the stability rule (``stability.stable``) and sets them beside the
largest scale of the family, ``mini-336x7-relu``, which trained stably with the original recipe.

A pilot that "trains well" must pass two tests: it is stable by the rule, and at the pilots' last token count
its validation loss lies below that of the smaller reference run at the same token count. The second test is
ours: a model twice the size that ends above the smaller one at equal data is not a usable recipe, even when
its loss never rises.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from .. import paper, run, style
from ..checks import check_profile
from ..models import TINY, get_spec
from ..paths import DATA, ROOT, data_file
from ..pilots import BASE_WARMUP_TOKENS, EXPECTED, PILOT_BASE, PILOTS, pilot_table
from ..profiles import by_profile
from ..runs import load_run
from ..stability import STABLE_RISE

REFERENCE = "mini-336x7-relu"  # the family's largest ReLU run, trained with the original recipe
SMALLEST = "mini-160x3"  # the family's smallest scale: where a fixed-token warm-up takes the largest share


# ----------------------------------------------------------------------------- results


def _collect(folder: Path, reference: str, ref_folder: Path) -> dict:
    table = pilot_table(folder)
    return {
        "table": table,
        "runs": {name: load_run(Path(folder) / name) for name in table["pilot"]},
        "reference_name": reference,
        "reference": load_run(ref_folder),
    }


def results(profile: str = "replay") -> dict:
    """The pilots' table (``pilots.pilot_table``), their run folders and the reference run, under the profile
    contract.

    replay reads ``data/pilots`` and ``data/runs/mini-336x7-relu``; smoke trains the six pilots at toy size
    (the runner's smoke recipe with each pilot's change scaled to it, CPU, about three minutes) into a temporary
    folder, with the smoke grid's ReLU run as the reference; full trains the pilot grid into ``data/pilots`` (a
    GPU; finished pilots are skipped, each run's provenance goes into its env.json) and rewrites
    ``data/pilots/pilots.csv``."""
    check_profile(profile)

    def replay() -> dict:
        return _collect(data_file("pilots"), REFERENCE, data_file("runs", REFERENCE))

    def recompute(p: str) -> dict:
        if p == "smoke":
            tmp = Path(tempfile.mkdtemp(prefix="sparsing-pilots-"))
            out, extra = tmp / "runs", ["--profile", "smoke", "--corpus", "smoke", "--ckpt", str(tmp / "ckpt")]
            ref = (f"{TINY.name}-relu", run.smoke_runs() / f"{TINY.name}-relu")
        else:
            out, extra = DATA / "pilots", ["--ckpt", str(ROOT / ".scratch" / "pilots-ckpt")]
            ref = (REFERENCE, DATA / "runs" / REFERENCE)
        if run.main(["--grid", "pilots", "--out", str(out), *extra]):
            raise RuntimeError(f"the runner reported failed pilots in {out}; see each run's env.json")
        return _collect(out, *ref)

    def save(res: dict) -> None:
        res["table"].to_csv(DATA / "pilots" / "pilots.csv", index=False)

    return by_profile(profile, replay, recompute, save)


# ----------------------------------------------------------------------------- analysis


def change_label(name: str) -> str:
    """What a pilot changes in the degraded recipe, in words (from ``pilots.PILOTS``)."""
    p = PILOTS[name]
    parts = [f"{get_spec(p.model).d_model // p.head_dim} heads of {p.head_dim}"] if p.head_dim else []
    parts += [f"peak lr {p.lr:g}"] if p.lr else []
    parts += [f"{p.batch_mult}× batch"] if p.batch_mult != 1 else []
    parts += [f"{p.warmup_tokens / 1e6:.1f}M-token warm-up"] if p.warmup_tokens != BASE_WARMUP_TOKENS else []
    return " + ".join(parts) or "none (the degraded recipe)"


def _at(run: dict, tokens: float, column: str) -> float:
    """A run's ``column`` (``val_loss`` from metrics.csv, else from sparsity.csv) interpolated at ``tokens``."""
    frame = run["metrics"] if column == "val_loss" else run["sparsity"]
    f = frame.dropna(subset=[column])
    return float(np.interp(tokens, f["tokens"], f[column]))


def judged(res: dict) -> pd.DataFrame:
    """``pilot_table`` with, per pilot: its model, tokens per parameter, last CETT-PPL-1% activation ratio, the
    reference run's validation loss at the same token count, and whether it trains well (stable, and ending
    below the reference)."""
    t = res["table"].copy()
    ref = res["reference"]
    t["model"] = [res["runs"][n]["config"]["model"]["name"] for n in t["pilot"]]
    t["design"] = t["pilot"].map(lambda n: PILOTS[n].model)  # the model a pilot stands for (toy size on smoke)
    t["tokens_per_param"] = [t.loc[i, "tokens"] / get_spec(m).non_embedding_params for i, m in t["model"].items()]
    t["activation_ratio"] = [float(res["runs"][n]["sparsity"]["activation_ratio"].iloc[-1]) for n in t["pilot"]]
    t["reference_loss"] = [_at(ref, tok, "val_loss") for tok in t["tokens"]]
    t["trains_well"] = t["stable"].astype(bool) & (t["last_val_loss"] < t["reference_loss"])
    return t


def pilot_display(res: dict) -> pd.DataFrame:
    """The pilots for a reader: model, change, tokens per parameter, lowest and last validation loss after
    warm-up, largest rise above the running minimum, the verdict of the rule, the reference's loss at the same
    tokens and the activation ratio at the last checkpoint."""
    t = judged(res)
    return pd.DataFrame(
        {
            "pilot": t["pilot"],
            "model": t["model"],
            "change to the degraded recipe": t["pilot"].map(change_label),
            "tokens per parameter": t["tokens_per_param"],
            "lowest validation loss": t["min_val_loss"],
            "last validation loss": t["last_val_loss"],
            "largest rise": t["max_rise"],
            f"stable (rise ≤ {STABLE_RISE})": t["stable"].map({True: "yes", False: "no"}),
            "reference at the same tokens": t["reference_loss"],
            "activation ratio, last checkpoint": t["activation_ratio"],
        }
    )


# ----------------------------------------------------------------------------- figures


def _styles(res: dict) -> dict[str, dict]:
    """One colour and marker per pilot; the reference keeps its own marker but is drawn in black, so that it
    reads as the baseline among the pilots."""
    styles = style.series_style([*res["runs"], res["reference_name"]])
    styles[res["reference_name"]]["color"] = "black"
    return styles


def _legend_below(ax, n: int) -> None:
    ax.legend(fontsize=7.5, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2 if n > 3 else 1)


def fig_pilot_loss(res: dict) -> Figure:
    """Validation loss against training tokens for every pilot (an unstable pilot drawn thicker, its rise in
    the legend), with the reference run's validation loss over the same tokens as a dashed line."""
    t, styles = judged(res).set_index("pilot"), _styles(res)
    end = t["tokens"].max()
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    tops, lows = [], []
    for name, r in res["runs"].items():
        v = r["metrics"].dropna(subset=["val_loss"])
        bad = not t.loc[name, "stable"]
        label = f"{name}: {change_label(name)}" + (
            f"; unstable, rises {t.loc[name, 'max_rise']:.2f} nats" if bad else ""
        )
        ax.plot(v["tokens"] / 1e6, v["val_loss"], lw=2.4 if bad else 1.2, ms=5, label=label, **styles[name])
        tops.append(v["val_loss"].iloc[min(2, len(v) - 1) :].max())
        lows.append(v["val_loss"].min())
    ref = res["reference"]["metrics"].dropna(subset=["val_loss"])
    past = ref.loc[ref["tokens"] >= end, "tokens"]
    ref = ref[ref["tokens"] <= past.min()] if len(past) else ref  # to the first point past the pilots' end
    ax.plot(ref["tokens"] / 1e6, ref["val_loss"], ls="--", lw=1.2, mfc="none", ms=5,
            label=f"{res['reference_name']} (family, original recipe)", **styles[res["reference_name"]])  # fmt: skip
    ax.set(
        xlabel="training tokens passed (M)",
        ylabel="validation loss (nats)",
        ylim=(min(lows) - 0.05, max(tops) + 0.15),
        title="Pilot runs: validation loss",
    )
    _legend_below(ax, len(res["runs"]) + 1)
    fig.tight_layout()
    return fig


def fig_pilot_sparsity(res: dict) -> Figure:
    """The CETT-PPL-1% activation ratio against training tokens (log scale) for every pilot and, dashed, for
    the reference run over its whole training; a dotted line marks where the pilots stop."""
    styles = _styles(res)
    fig, ax = plt.subplots(figsize=(7.5, 5.4))
    for name, r in res["runs"].items():
        s = r["sparsity"]
        ax.plot(s["tokens"] / 1e6, s["activation_ratio"], lw=1.2, ms=5, label=f"{name}: {change_label(name)}",
                **styles[name])  # fmt: skip
    s = res["reference"]["sparsity"]
    ax.plot(s["tokens"] / 1e6, s["activation_ratio"], ls="--", lw=1.2, mfc="none", ms=5,
            label=f"{res['reference_name']} (family, original recipe)", **styles[res["reference_name"]])  # fmt: skip
    ax.axvline(res["table"]["tokens"].max() / 1e6, color="grey", ls=":", lw=1)
    ax.set(
        xscale="log",
        xlabel="training tokens passed (M, log scale)",
        ylabel="CETT-PPL-1% activation ratio",
        title="ReLU activation ratio of the pilots beside the family's largest scale",
    )
    _legend_below(ax, len(res["runs"]) + 1)
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- numbers and verdict


def _names(t: pd.DataFrame, fmt: str = "{pilot} ({last_val_loss:.3f})") -> str:
    return style.word_list(fmt.format(**row) for row in t.to_dict("records")) or "none"


def _span(values: list[float]) -> str:
    lo, hi = np.nanmin(values), np.nanmax(values)
    return f"{lo:.1f}" if f"{lo:.1f}" == f"{hi:.1f}" else f"{lo:.1f}–{hi:.1f}"


def verdict(res: dict) -> str:
    """Which pilots are stable by the rule and which of those train well (end below the reference)."""
    t = judged(res)
    unstable, stable = t[~t["stable"].astype(bool)], t[t["stable"].astype(bool)]
    ref_loss = f" ({t['reference_loss'].iloc[0]:.3f})" if t["tokens"].nunique() == 1 else ""
    out = (
        f"{len(stable)} of {len(t)} pilots are stable by the rule"
        + (f"; {_names(unstable, '{pilot} (rise {max_rise:.2f} nats)')} is not" if len(unstable) == 1 else "")
        + (f"; {_names(unstable, '{pilot} (rise {max_rise:.2f} nats)')} are not" if len(unstable) > 1 else "")
    )
    good, poor = stable[stable["trains_well"]], stable[~stable["trains_well"]]
    ends = "end" if len(good) > 1 else "ends"
    out += f". Of the stable ones, {_names(good)} {ends} below {res['reference_name']} at the same tokens{ref_loss}"
    if len(poor):
        out += f"; {_names(poor)} {'ends' if len(poor) == 1 else 'end'} above it"
    return out


def sparsity_verdict(good: pd.Series, reference_late: pd.Series) -> str:
    """Whether the recipe moves the activation ratio more than the data does: the spread of the last ratios of
    the pilots that train well (same model, same tokens) against the reference's range over its last 80%."""
    if len(good) < 2:
        return "fewer than two pilots train well, so the recipe's effect on the activation ratio is not measured"
    spread, drift = good.max() - good.min(), reference_late.max() - reference_late.min()
    more = "more" if spread > drift else "less"
    return (
        f"at equal model and tokens, the pilots that train well end {spread:.4f} apart in activation ratio, "
        f"{spread / drift:.1f} times the reference's whole range over the last 80% of its run ({drift:.4f}): "
        f"the recipe moves the ratio {more} than that much data does"
    )


def _recipe_phrase(model: str) -> str:
    """What the family's recipe (the paper's scale rules) gives ``model``, in the terms the pilots changed."""
    cfg = run.train_config(model, "full")
    return f"a {cfg.warmup_tokens / 1e6:.1f}M-token warm-up and {cfg.batch_size}-sequence batches"


def numbers(res: dict) -> dict[str, str]:
    """Every number the pilots' section quotes, formatted (keys start with ``pilot_``)."""
    t = judged(res)
    ref, ref_name = res["reference"], res["reference_name"]
    end = int(t["tokens"].max())
    base = t.set_index("pilot").loc["p448-base"]
    base_m = res["runs"]["p448-base"]["metrics"].dropna(subset=["val_loss"])
    base_min_at = base_m.loc[base_m["val_loss"] == base["min_val_loss"], "tokens"].iloc[0]
    singles = t[(t["design"] == PILOTS["p448-base"].model) & (t["pilot"] != "p448-base")]
    good = singles[singles["trains_well"]]
    expected = t[t["design"] != PILOTS["p448-base"].model]
    rs = ref["sparsity"]
    late = rs[rs["tokens"] >= 0.2 * rs["tokens"].iloc[-1]]["activation_ratio"]
    ref_tpp = ref["metrics"]["tokens"].iloc[-1] / get_spec(ref["config"]["model"]["name"]).non_embedding_params
    small = run.train_config(SMALLEST, "full")
    t3 = paper.table3()
    return {
        "pilot_tokens": f"{end / 1e6:.3g}",
        "pilot_tpp": " and ".join(
            f"{g['tokens_per_param'].iloc[0]:.0f} ({g['model'].iloc[0]})" for _, g in t.groupby("design", sort=False)
        ),
        "pilot_ref": ref_name,
        "pilot_epochs": _span([r["env"].get("epochs", np.nan) for r in res["runs"].values()]),
        "pilot_hardware": ", ".join(sorted({r["env"].get("gpu") or "CPU" for r in res["runs"].values()})),
        "pilot_lr": f"{PILOTS['p448-lr005'].lr:g}",
        "pilot_expected_recipe": change_label("p512-expected"),
        "pilot_ref_tpp": f"{ref_tpp:.0f}",
        "pilot_rule": f"{STABLE_RISE}",
        "pilot_verdict": verdict(res),
        "pilot_base": (
            f"reaches its lowest validation loss, {base['min_val_loss']:.3f}, at {base_min_at / 1e6:.0f}M tokens "
            f"and ends at {base['last_val_loss']:.3f}, {base['max_rise']:.2f} nats above it"
            if not base["stable"]
            else f"does not rise this time (largest rise {base['max_rise']:.2f} nats)"
        ),
        "pilot_good": _names(good.assign(change=good["pilot"].map(change_label)), "{change} ({last_val_loss:.3f})"),
        "pilot_good_spread": f"{good['last_val_loss'].max() - good['last_val_loss'].min():.3f}" if len(good) else "–",
        "pilot_ref_loss": f"{_at(ref, end, 'val_loss'):.3f}",
        "pilot_expected": _names(expected, "{pilot} ({model}) {last_val_loss:.3f}, largest rise {max_rise:.2f} nats"),
        "pilot_ratios": _names(t, "{pilot} {activation_ratio:.3f}"),
        "pilot_ref_ratio_end": f"{_at(ref, end, 'activation_ratio'):.3f}",
        "pilot_ref_ratio_last": f"{rs['activation_ratio'].iloc[-1]:.3f}",
        "pilot_good_ratio_range": (
            f"{good['activation_ratio'].min():.3f}–{good['activation_ratio'].max():.3f}" if len(good) else "–"
        ),
        "pilot_ref_drift": f"{late.max() - late.min():.4f}",
        "pilot_sparsity_verdict": sparsity_verdict(good["activation_ratio"], late),
        "pilot_warmup_share": f"{EXPECTED['warmup_tokens'] / small.tokens:.0%}",
        "pilot_small_steps": f"{small.tokens // (PILOT_BASE.tokens_per_step * EXPECTED['batch_mult']):,}",
        "pilot_small_steps_now": f"{-(-small.tokens // PILOT_BASE.tokens_per_step):,}",
        **{f"recipe_{m.split('-')[1].split('x')[0]}": _recipe_phrase(m) for m in ("mini-448x8", "mini-512x10")},
        "pilot_smallest": SMALLEST,
        "pilot_paper_batch": f"{t3['batch_size'].min() / 1e6:.2f}M to {t3['batch_size'].max() / 1e6:.2f}M",
        "pilot_paper_params": f"{t3['non_embedding_params'].max() / t3['non_embedding_params'].min():.0f}",
        "pilot_paper_warmup": f"{paper.warmup()['warmup_iters'].min():,}–{paper.warmup()['warmup_iters'].max():,}",
    }
