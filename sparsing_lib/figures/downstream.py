"""Downstream scores under sparsity and across scales (paper §4.1, App. A and K: Fig. 3, Tables 1 and 4-6;
claims 1, 2, 3, 8, 9, 10).

The module the chapter imports: Fig. 3 and the scale figure are drawn here; the analysis of the suite's
``eval.csv`` files lives in ``downstream_data`` (within a run) and ``downstream_scale`` (across runs), the tables
in ``downstream_tables`` and the verdicts and quoted sentences in ``downstream_verdicts``, re-exported below so
that the chapter and the claims table call one module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from .. import paper, style
from .downstream_data import CETT_PPL, FIG3_GROUPS, METHODS, compare_methods, results
from .downstream_scale import SCALE_GROUPS, family
from .downstream_tables import label, table1, table4, table5, table6, table_scale, table_tiny
from .downstream_verdicts import GROUP_LABEL, claims, no_data, numbers

if TYPE_CHECKING:
    from IPython.display import Markdown

__all__ = ["results", "fig3", "compare_methods", "table1", "table4", "table5", "table6", "table_tiny", "fig_scale",
           "table_scale", "numbers", "claims"]  # fmt: skip


def fig3(res: dict) -> Figure | Markdown:
    """Score against sparsity (1 - activation ratio, %) for CETT, Top-k, FAT-ε and the zero threshold: one row
    per run with a sweep, panels C.R., R.C. and the tiny-task average; bars are 95 % intervals, the grey line and
    band the dense score, the dashed line chance; large black-edged markers are CETT-PPL-1/5/10 %. Without any
    evaluation it returns a one-paragraph note (IPython Markdown) instead of a figure."""
    res = res.get("fig3", res)  # the sweeps may have run on a subset of items (their own folder)
    if not res["runs"]:
        from IPython.display import Markdown

        return Markdown(no_data(res))
    g, panels = res["groups"], FIG3_GROUPS
    runs = [r for r in res["runs"] if g[(g["run"] == r) & ~g["setting"].isin(["dense", *CETT_PPL])].size] or res["runs"]
    styles = style.series_style(METHODS)
    fig, axes = plt.subplots(len(runs), 3, figsize=(13, 3.3 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        for ax, group in zip(row, panels):
            d = g[(g["run"] == run) & (g["group"] == group)]
            ax.set(title=f"{label(run)} — {group}", xlabel="sparsity ratio (%)", ylabel="score (%)")
            if d.empty:
                ax.text(0.5, 0.5, "not evaluated", ha="center", va="center", transform=ax.transAxes)
                continue
            dense = d[d["setting"] == "dense"]
            if len(dense):
                dn = dense.iloc[0]
                ax.axhline(100 * dn["score"], color="0.4", lw=1, label="dense")
                ax.axhspan(100 * dn["lo"], 100 * dn["hi"], color="0.85", zorder=0)
            ax.axhline(100 * d["chance"].iloc[0], color="0.3", ls="--", lw=1, label="chance")
            for m in METHODS:
                p = d[(d["method"] == m) & (d["setting"] != "dense") & d["sparsity"].notna()].sort_values("sparsity")
                if p.empty:
                    continue
                err = [100 * (p["score"] - p["lo"]), 100 * (p["hi"] - p["score"])]
                ax.errorbar(100 * p["sparsity"], 100 * p["score"], yerr=err, ms=5, lw=1, capsize=2,
                            label=style.METHOD_LABEL.get(m, m), **styles[m])  # fmt: skip
                ppl = p[p["setting"].isin(CETT_PPL)]
                ax.plot(100 * ppl["sparsity"], 100 * ppl["score"], ls="none", ms=10, mec="black", **styles[m])
                for x, y, s in zip(ppl["sparsity"], ppl["score"], ppl["setting"]):
                    ax.annotate(s.removeprefix("cett-ppl-"), (100 * x, 100 * y), fontsize=7, xytext=(4, 4),
                                textcoords="offset points")  # fmt: skip
    axes[0, 0].legend(fontsize=7)
    fig.suptitle("Downstream score against sparsity (our runs; 95 % intervals over items)")
    fig.tight_layout()
    return fig


def fig_scale(res: dict) -> Figure:
    """Dense C.R. and R.C. averages against non-embedding parameters (log axis), per activation: our scale-family
    runs with 95 % intervals over items (seeds other than 0 as open markers) beside the paper's App. K averages
    (Tables 4 and 5 at Table 3's sizes, dashed); the dotted line is chance on our tasks. One axis for both, so
    that the gap in size and in score between our models and the paper's stays in view; our ReLU and SiLU points
    are drawn 3 % apart in size so that their bars do not hide each other."""
    fam, g = family(res), res["groups"]
    t3 = paper.table3().set_index("scale")["non_embedding_params"]
    acts = ("relu", "silu")
    styles = style.series_style([f"{who} {a}" for who in ("ours", "paper") for a in acts])
    fig, axes = plt.subplots(1, len(SCALE_GROUPS), figsize=(11, 4))
    for ax, group, table in zip(axes, SCALE_GROUPS, (paper.table4(), paper.table5())):
        for act, dodge in zip(acts, (0.97, 1.03)):
            name, s = style.ACT_LABEL[act], styles[f"ours {act}"]
            d = fam[fam["activation"] == act].dropna(subset=[group])
            base, seeds = d[d["seed"] == 0], d[d["seed"] != 0]
            err = [100 * (base[group] - base[f"{group} lo"]), 100 * (base[f"{group} hi"] - base[group])]
            if len(base):
                ax.errorbar(
                    dodge * base["params"], 100 * base[group], yerr=err, capsize=3, ms=6, label=f"ours {name}", **s
                )
            if len(seeds):
                ax.plot(
                    dodge * seeds["params"],
                    100 * seeds[group],
                    ls="none",
                    mfc="none",
                    label=f"ours {name}, other seeds",
                    **s,
                )
            p = table[(table["setting"] == "Dense") & (table["activation"] == act)]
            ax.plot(
                t3[p["scale"]], p["Avg."], ls="--", lw=1.2, label=f"paper {name} (App. K)", **styles[f"paper {act}"]
            )
        dense = g[g["run"].isin(fam["run"]) & (g["group"] == group) & (g["setting"] == "dense")] if len(g) else g
        if len(dense):
            ax.axhline(100 * dense["chance"].mean(), color="0.3", ls=":", lw=1, label="chance (our tasks)")
        else:
            ax.text(0.05, 0.5, "no run of ours evaluated", transform=ax.transAxes)
        ax.set(xscale="log", title=f"{GROUP_LABEL[group]} ({group})", xlabel="non-embedding parameters",
               ylabel="dense average score (%)")  # fmt: skip
    axes[0].legend(fontsize=7)
    fig.suptitle("Dense downstream averages against scale (our runs: 95 % intervals over items; paper: App. K)")
    fig.tight_layout()
    return fig
