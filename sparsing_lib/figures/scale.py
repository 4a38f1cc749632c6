"""Parameter scale (paper §5.3): Figs. 7 and 8 from the refit of the authors' released curves.

Fig. 7 puts the limit A0 of every curve, with its intervals, against the model's non-embedding parameters;
Fig. 8 plots how fast sparsity still changes against the tokens-per-parameter ratio. ``sparsity_slope`` is
the one derivative both the Fig. 8 curves and its verdict use, so the figure and the sentence cannot drift.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import style
from ..laws import PAPER_FORM, TOKENS_UNIT
from .released import a0_rows, printed, refit_laws, results

__all__ = [
    "results",
    "fig7",
    "fig8",
    "sparsity_slope",
    "faster_when_smaller",
    "steeper_when_smaller",
    "numbers",
    "claims",
]

SCALES = style.PAPER_SCALES[:5]  # 2.4B has only an interim curve; it has its own chapter (§6)
VERDICT_RATIO = 20.0  # tokens per parameter where the Fig. 8 verdict compares neighbouring scales


def sparsity_slope(act: str, params: dict[str, float], tokens) -> np.ndarray:
    """d(1 − A)/dD of the paper's law for ``act`` at ``tokens`` (counted), with D in billions of tokens.

    The paper's Fig. 8 does not state its convention; this one reproduces its ±0.02 axis. Written out
    analytically: logspace A = exp(−cD^α + b) + A0 gives dA/dD = −cαD^(α−1)·exp(−cD^α + b); power
    A = −cD^(−α) + A0 gives dA/dD = cαD^(−α−1)."""
    D = np.asarray(tokens, dtype=float) / TOKENS_UNIT
    a, c = params["alpha"], params["c"]
    if PAPER_FORM[act] == "logspace":
        dA = -c * a * D ** (a - 1) * np.exp(-c * D**a + params["b"])
    else:
        dA = c * a * D ** (-a - 1)
    return -dA


def _params(table3: pd.DataFrame) -> pd.Series:
    return table3.set_index("scale").non_embedding_params


def faster_when_smaller(res: dict, ratio: float = VERDICT_RATIO) -> dict[str, bool]:
    """Per activation: is |d(1 − A)/dD| of our refit larger for every smaller scale than for the next one up,
    at ``ratio`` tokens per parameter (the paper's "smaller models converge faster")?"""
    laws, n = refit_laws(res["coef"]), _params(res["table3"])
    return {
        act: steeper_when_smaller(act, [laws[(act, s)] for s in SCALES], [n[s] for s in SCALES], ratio)
        for act in ("relu", "silu")
    }


def steeper_when_smaller(act: str, laws: list[dict], params: list[float], ratio: float = VERDICT_RATIO) -> bool:
    """Is |d(1 − A)/dD| of each law (models ordered by ``params``, ascending) larger than the next one's at
    ``ratio`` tokens per parameter? The one comparison behind Fig. 8's verdict, for any set of fitted laws."""
    slope = [abs(float(sparsity_slope(act, law, ratio * n))) for law, n in zip(laws, params)]
    return bool(np.all(np.diff(slope) < 0))


def fig7(res: dict) -> plt.Figure:
    """Fig. 7: limit A0 against non-embedding parameters: refit with bootstrap and profile intervals, and Table 2."""
    n = _params(res["table3"]) / 1e9
    t2 = res["table2"][res["table2"].scale.isin(SCALES)]
    marks = style.series_style(["bootstrap", "profile"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, act in zip(axes, ("relu", "silu")):
        for name, key, shift, label in (
            ("A0", "bootstrap", -0.012, "refit, bootstrap 95%"),
            ("A0_profile", "profile", 0.012, "refit, profile-likelihood 95%"),
        ):
            r = a0_rows(res["coef"], name).loc[act].reindex(list(SCALES))
            yerr = 100 * np.abs(np.vstack([r.value - r.ci_lo, r.ci_hi - r.value]))
            ax.errorbar(
                n.loc[list(SCALES)] + shift,
                100 * r.value,
                yerr=yerr,
                fmt=marks[key]["marker"],
                ms=5,
                capsize=3,
                color=marks[key]["color"],
                label=label,
            )
        p = t2[t2.activation == act]
        ax.plot(n.loc[p.scale], 100 * p.A0, "*", color=style.PAPER_LINE["color"], ms=11, label="paper, Table 2")
        ax.set(title=style.ACT_LABEL[act], xlabel="non-embedding parameters (B)", ylabel="limit activation ratio (%)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def fig8(res: dict) -> plt.Figure:
    """Fig. 8: d(1 − A)/dD against tokens / non-embedding parameters; solid: refit, dashed: Table 2."""
    n, curves, laws = _params(res["table3"]), res["curves"], refit_laws(res["coef"])
    looks = style.series_style(SCALES)
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.4))
    for ax, act in zip(axes, ("relu", "silu")):
        for scale in SCALES:
            tmax = curves[(curves.activation == act) & (curves.scale == scale)].tokens.max()
            ratio = np.linspace(5, min(tmax / n[scale], 120), 300)
            col, mk = looks[scale]["color"], looks[scale]["marker"]
            ours = sparsity_slope(act, laws[(act, scale)], ratio * n[scale])
            ax.plot(ratio, ours, color=col, lw=1.8, marker=mk, markevery=30, ms=4, label=scale)
            theirs = sparsity_slope(act, printed(res["table2"], act, scale), ratio * n[scale])
            ax.plot(ratio, theirs, color=col, lw=1.0, ls="--")
        ax.plot([], [], color="grey", lw=1.8, label="refit")
        ax.plot([], [], color="grey", lw=1.0, ls="--", label="paper, Table 2")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(VERDICT_RATIO, color="k", lw=0.5, ls=":")
        ax.set(
            title=style.ACT_LABEL[act],
            xlabel="training tokens / non-embedding parameters",
            ylabel="d(1 − A)/dD  (per billion tokens)",
            ylim=(-0.02, 0.02),
            xlim=(0, 120),
        )
        ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    return fig


def numbers(res: dict) -> dict[str, str]:
    """The numbers the scale chapter quotes, formatted, and the verdicts of Figs. 7 and 8."""
    a0 = a0_rows(res["coef"]).value
    t2 = res["table2"].set_index(["activation", "scale"]).A0
    width = (a0_rows(res["coef"]).ci_hi - a0_rows(res["coef"]).ci_lo).groupby(level=0).max()
    ratio = (a0["silu"] / a0["relu"]).reindex(SCALES).drop("0.4B")  # 0.4B ReLU: limit undetermined (§5.1)
    faster = faster_when_smaller(res)
    verdict = {True: "holds", False: "does not hold for every pair of neighbouring scales"}
    out = {
        "relu_a0_change": f"{100 * (a0[('relu', '1.2B')] - a0[('relu', '0.1B')]):+.1f}",
        "silu_a0_change": f"{100 * (a0[('silu', '1.2B')] - a0[('silu', '0.1B')]):+.1f}",
        "paper_relu_a0_change": f"{100 * (t2[('relu', '1.2B')] - t2[('relu', '0.1B')]):+.1f}",
        "paper_silu_a0_change": f"{100 * (t2[('silu', '1.2B')] - t2[('silu', '0.1B')]):+.1f}",
        "relu_widest_ci": f"{100 * width['relu']:.1f}",
        "silu_widest_ci": f"{100 * width['silu']:.1f}",
        "silu_relu_ratio": f"{ratio.min():.1f}–{ratio.max():.1f}",
        "verdict_ratio": f"{VERDICT_RATIO:.0f}",
        "fig8_relu": verdict[faster["relu"]],
        "fig8_silu": verdict[faster["silu"]],
    }
    out["fig7_verdict"] = (
        f"SiLU limits move by {out['silu_a0_change']} points from 0.1B to 1.2B (paper {out['paper_silu_a0_change']}) "
        f"with intervals at most {out['silu_widest_ci']} points wide; ReLU intervals reach {out['relu_widest_ci']} "
        "points, so a scale trend in the ReLU limit can be neither claimed nor excluded."
    )
    out["fig8_verdict"] = (
        f"at {out['verdict_ratio']} tokens per parameter, 'smaller converges faster' {out['fig8_silu']} for "
        f"our SiLU refits and {out['fig8_relu']} for our ReLU refits."
    )
    return out


SHIFT_SMALL = 0.03  # a limit moving by at most 3 points of activation ratio "barely depends on scale"


def limit_shift(change: float, half: float) -> str:
    """A limit's change across scales with 95% half-width ``half``: "small" (interval within ±3 points),
    "large" (interval beyond 3 points), or "unresolved"."""
    if abs(change) + half <= SHIFT_SMALL:
        return "small"
    return "large" if abs(change) - half > SHIFT_SMALL else "unresolved"


def shift_verdict(kinds: list[str]) -> str:
    """Claim 13's verdict from the ``limit_shift`` of each activation ("untested" where none could be measured)."""
    if "large" in kinds:
        return "does not hold"
    if kinds and all(k == "small" for k in kinds):
        return "holds"
    return "partly holds" if "small" in kinds else "untested"


def claims(res: dict) -> list[dict]:
    """Claims 7, 13 and 14 (data/claims.csv) judged from the refit of the released curves."""
    rows, q = a0_rows(res["coef"]), res["quality"]
    own = q[q.form == q.activation.map(PAPER_FORM)].set_index(["activation", "scale"]).warning.fillna("")
    a0 = rows.value
    bad = [s for s in SCALES if own.get(("relu", s), "") or own.get(("silu", s), "")]
    ratio = (a0["silu"] / a0["relu"]).reindex([s for s in SCALES if s not in bad])
    if (ratio < 4.5).any():
        v7 = "does not hold"
    else:
        v7 = "partly holds" if bad else "holds"
    n7 = f"refit SiLU/ReLU limit ratio {ratio.min():.1f}–{ratio.max():.1f}" + (
        f"; limit undetermined (fit on a bound) at {', '.join(bad)}" if bad else ""
    )
    kinds, said = [], []
    for act in ("relu", "silu"):
        lo, hi = rows.loc[(act, "0.1B")], rows.loc[(act, "1.2B")]
        change, half = hi.value - lo.value, np.hypot((lo.ci_hi - lo.ci_lo) / 2, (hi.ci_hi - hi.ci_lo) / 2)
        kinds.append(limit_shift(change, half))
        said.append(f"{style.ACT_LABEL[act]} {100 * change:+.1f} ± {100 * half:.1f} points ({kinds[-1]})")
    faster = faster_when_smaller(res)
    n_fast = sum(faster.values())
    v14 = {2: "holds", 1: "partly holds", 0: "does not hold"}[n_fast]
    n14 = f"at {VERDICT_RATIO:.0f} tokens per parameter, for " + (
        " and ".join(style.ACT_LABEL[a] for a, f in faster.items() if f) or "neither activation"
    )
    return [
        {"id": 7, "verdict": v7, "basis": "authors' data", "note": n7},
        {
            "id": 13,
            "verdict": shift_verdict(kinds),
            "basis": "authors' data",
            "note": "0.1B to 1.2B: " + "; ".join(said),
        },
        {"id": 14, "verdict": v14, "basis": "authors' data", "note": n14 + ", with our choice of derivative"},
    ]
