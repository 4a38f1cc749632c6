"""Figures of the laws chapter, drawn from the tables of ``laws.refit_released`` and the paper's printed laws."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from sparsing_lib import laws

SCALES = ("0.1B", "0.2B", "0.4B", "0.8B", "1.2B", "2.4B")
PALETTE = dict(zip(SCALES, sns.color_palette("viridis_r", len(SCALES))))
ACT_LABEL = {"relu": "ReLU", "silu": "SiLU"}
PAPER_STYLE = dict(color="saddlebrown", lw=1.2, ls="--")


def _paper_params(table2: pd.DataFrame, act: str, scale: str) -> dict:
    return table2.set_index(["activation", "scale"]).loc[(act, scale)].to_dict()


def fig4(curves: pd.DataFrame, bands: pd.DataFrame, table2: pd.DataFrame) -> plt.Figure:
    """Fig. 4: released points, our fit with its 95% band, and the paper's printed law (brown, dashed)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    for ax, act in zip(axes, ("relu", "silu")):
        for scale in SCALES[:5]:
            pts = curves[(curves.activation == act) & (curves.scale == scale)]
            band = bands[(bands.activation == act) & (bands.scale == scale)]
            col = PALETTE[scale]
            D = pts.tokens / 1e9
            ax.scatter(D, 100 * pts.activation_ratio, s=14, color=col, label=scale, zorder=3)
            x = band.tokens.to_numpy()
            ax.plot(x / 1e9, 100 * band.fit, color=col, lw=1.6)
            if band.lo.notna().all():
                ax.fill_between(x / 1e9, 100 * band.lo, 100 * band.hi, color=col, alpha=0.2, lw=0)
            grid = np.linspace(D.min(), D.max(), 200) * 1e9
            law = laws.curve(laws.PAPER_FORM[act], _paper_params(table2, act, scale), grid)
            ax.plot(grid / 1e9, 100 * law, **PAPER_STYLE)
        ax.plot([], [], color="grey", lw=1.6, label="refit (95% band)")
        ax.plot([], [], **PAPER_STYLE, label="paper, Table 2")
        ax.set(
            title=f"{ACT_LABEL[act]}-activated models",
            xlabel="tokens passed (B)",
            ylabel="activation ratio (%)",
            ylim=(6.8, 10.8) if act == "relu" else (29, 41),
        )
        ax.legend(ncol=2, fontsize=8)
    fig.tight_layout()
    return fig


def fig7(coef: pd.DataFrame, table2: pd.DataFrame, table3: pd.DataFrame) -> plt.Figure:
    """Fig. 7: limit activation ratio A0 against scale: refit with bootstrap and profile intervals, and the paper."""
    params = table3.set_index("scale").non_embedding_params / 1e9
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, act in zip(axes, ("relu", "silu")):
        form = laws.PAPER_FORM[act]
        rows = coef[(coef.activation == act) & (coef.form == form)]
        for name, shift, marker, label in (
            ("A0", -0.012, "o", "refit, bootstrap 95%"),
            ("A0_profile", 0.012, "s", "refit, profile 95%"),
        ):
            r = rows[rows.name == name].set_index("scale").reindex([s for s in SCALES if s in set(rows.scale)])
            x = params.loc[r.index].to_numpy() + shift
            ax.errorbar(
                x,
                100 * r.value,
                yerr=100 * np.abs(np.vstack([r.value - r.ci_lo, r.ci_hi - r.value])),
                fmt=marker,
                ms=5,
                capsize=3,
                label=label,
            )
        t2 = table2[table2.activation == act]
        ax.plot(
            params.loc[t2.scale].to_numpy(),
            100 * t2.A0,
            "*",
            color="saddlebrown",
            ms=11,
            label="paper, Table 2",
            zorder=4,
        )
        ax.set(title=f"{ACT_LABEL[act]}", xlabel="non-embedding parameters (B)", ylabel="limit activation ratio A0 (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig8(coef: pd.DataFrame, table2: pd.DataFrame, table3: pd.DataFrame, curves: pd.DataFrame) -> plt.Figure:
    """Fig. 8: d(sparsity)/dD (D in billions of tokens) against the tokens-per-parameter ratio."""
    params = table3.set_index("scale").non_embedding_params
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, act in zip(axes, ("relu", "silu")):
        form = laws.PAPER_FORM[act]
        for scale in SCALES[:5]:
            p = coef[(coef.activation == act) & (coef.scale == scale) & (coef.form == form)]
            ours = dict(zip(p.name, p.value))
            tmax = curves[(curves.activation == act) & (curves.scale == scale)].tokens.max()
            ratio = np.linspace(5, min(tmax / params[scale], 120), 300)
            tokens = ratio * params[scale]
            for pr, style in ((ours, dict(lw=1.8)), (_paper_params(table2, act, scale), dict(lw=1.0, ls="--"))):
                h = 1e-4 * tokens
                dS = -(laws.curve(form, pr, tokens + h) - laws.curve(form, pr, tokens - h)) / (2 * h / 1e9)
                ax.plot(ratio, dS, color=PALETTE[scale], label=scale if style.get("ls") is None else None, **style)
        ax.plot([], [], color="grey", lw=1.8, label="refit")
        ax.plot([], [], color="grey", lw=1.0, ls="--", label="paper, Table 2")
        ax.axhline(0, color="k", lw=0.5)
        ax.set(
            title=f"{ACT_LABEL[act]}",
            xlabel="training tokens / non-embedding parameters",
            ylabel="d(1 − A)/dD   (per billion tokens)",
        )
        ax.set(ylim=(-0.02, 0.02), xlim=(0, 120))
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def fig11(curves: pd.DataFrame, bands: pd.DataFrame, final: dict, interim: dict) -> plt.Figure:
    """Fig. 11: the released interim 2.4B points, our refit and band, and the authors' interim and final laws."""
    pts = curves[(curves.activation == "relu") & (curves.scale == "2.4B")]
    band = bands[(bands.activation == "relu") & (bands.scale == "2.4B")]
    fig, ax = plt.subplots(figsize=(8, 4.4))
    x = band.tokens.to_numpy() / 1e9
    ax.scatter(
        pts.tokens / 1e9,
        100 * pts.activation_ratio,
        s=16,
        color=PALETTE["2.4B"],
        zorder=3,
        label="released points (interim run)",
    )
    ax.plot(x, 100 * band.fit, color=PALETTE["2.4B"], lw=1.8, label="refit to the released points")
    if band.lo.notna().all():
        ax.fill_between(x, 100 * band.lo, 100 * band.hi, color=PALETTE["2.4B"], alpha=0.2, lw=0, label="refit 95% band")
    grid = np.linspace(1, 1000, 400) * 1e9
    ax.plot(grid / 1e9, 100 * laws.curve("logspace", final, grid), **PAPER_STYLE, label="paper's final law (Fig. 11)")
    ax.plot(
        grid / 1e9,
        100 * laws.curve("logspace", interim, grid),
        color="grey",
        lw=1.0,
        ls=":",
        label="authors' interim law",
    )
    ax.axvline(pts.tokens.max() / 1e9, color="k", lw=0.5, ls=":")
    ax.set(
        xlabel="tokens passed (B)",
        ylabel="activation ratio (%)",
        ylim=(5.5, 10),
        xlim=(0, 1000),
        title="2.4B ReLU model",
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def kscan(scan: pd.DataFrame, table2: pd.DataFrame) -> plt.Figure:
    """Refit A0 relative to Table 2 as the warm-up rule drops the first k checkpoints."""
    t2 = table2.set_index(["activation", "scale"]).A0
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), sharey=True)
    for ax, act in zip(axes, ("relu", "silu")):
        for scale, g in scan[scan.activation == act].groupby("scale", sort=False):
            rel = 100 * (g.A0 / t2.loc[(act, scale)] - 1)
            bad = g.warning.fillna("").str.len() > 0
            ax.plot(g.k, rel, "-", color=PALETTE[scale], label=scale)
            ax.plot(g.k[bad], rel[bad], "x", color=PALETTE[scale], ms=8)
        ax.axhspan(-3, 3, color="green", alpha=0.1, lw=0)
        ax.plot([], [], "kx", label="on a bound")
        ax.set(title=ACT_LABEL[act], xlabel="first k checkpoints dropped", ylabel="refit A0 vs Table 2 (%)")
        ax.set_ylim(-30, 30)
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig
