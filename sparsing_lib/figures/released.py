"""The refit of the authors' released curves, shared by the three chapters built on them (§5.1, §5.3, §6).

One ``results`` loads (replay) or recomputes (smoke, full) the ``refit`` tables once, under the profile
contract, so that the chapters on data and activation, on scale and on the 2.4B model quote the same fits.
"""

from __future__ import annotations

import time

import pandas as pd

from .. import paper, refit
from ..checks import check_choice, check_range
from ..laws import PAPER_FORM
from ..paths import DATA
from ..profiles import by_profile, provenance

FOLDER = DATA / "laws"
N_BOOT = {"smoke": 10, "full": 1000}  # bootstrap resamples per paper-form fit when n_boot is 0
N_BOOT_LFO_MAX = 200  # the leave-future-out test needs only a prediction interval, not tight tails


def settings(n_boot: int = 0, drop_first: int = 0, min_tokens_b: float = 0.0, frac: float = 0.7) -> dict:
    """The refit's settings, validated with one clear message each (``n_boot`` 0 = the profile's default)."""
    check_range("n_boot", n_boot, 0, 100_000, int)
    check_choice("drop_first", drop_first, range(11))
    check_range("min_tokens_b", min_tokens_b, 0.0, 100.0)
    check_range("frac", frac, 0.3, 0.9)
    return {"n_boot": n_boot, "drop_first": drop_first, "min_tokens": float(min_tokens_b) * 1e9, "frac": float(frac)}


def results(profile: str, n_boot: int = 0, drop_first: int = 0, min_tokens_b: float = 0.0, frac: float = 0.7) -> dict:
    """The released curves, the printed tables and the refit tables (``coef``, ``quality``, ``bands``, ``lfo``,
    ``kscan``) with their ``meta`` (settings and provenance).

    replay reads ``data/laws/`` and refuses settings other than the committed ones; smoke refits with a tiny
    bootstrap (about a CPU minute); full refits with 1,000 resamples and writes ``data/laws/``."""
    asked = settings(n_boot, drop_first, min_tokens_b, frac)
    curves = paper.released_curves()  # $SPARSINGLAW_DATA, else a hash-checked download

    def replay() -> tuple[dict, dict]:
        tables, meta = refit.load_results(FOLDER)
        stored = meta["settings"]
        differs = [k for k in ("drop_first", "min_tokens", "frac") if asked[k] != stored[k]]
        if differs or (n_boot and n_boot != stored["n_boot"]):
            raise ValueError(
                f"the committed fits use {stored}; you asked for {asked}. "
                "Use profile='smoke' or 'full' to refit with other settings."
            )
        return tables, meta

    def recompute(prof: str) -> tuple[dict, dict]:
        run = {**asked, "n_boot": n_boot or N_BOOT[prof]}
        run["n_boot_lfo"] = min(run["n_boot"], N_BOOT_LFO_MAX)
        start = time.time()
        tables = refit.refit_released(curves, **run)
        command = f"papermill book/data_activation.ipynb out.ipynb -p profile {prof}"
        meta = {"settings": run, **provenance(command, time.time() - start), "data": f"{paper.REPO}@{paper.COMMIT}"}
        return tables, meta

    tables, meta = by_profile(profile, replay, recompute, lambda r: refit.save_results(r[0], FOLDER, r[1]))
    return {"curves": curves, "table2": paper.table2(), "table3": paper.table3(), **tables, "meta": meta}


def printed(table2: pd.DataFrame, act: str, scale: str) -> dict[str, float]:
    """The law printed in Table 2 for one curve, as named coefficients."""
    return table2.set_index(["activation", "scale"]).loc[(act, scale)].to_dict()


def refit_laws(coef: pd.DataFrame) -> dict[tuple[str, str], dict[str, float]]:
    """Our paper-form refit of every curve as named coefficients, keyed by (activation, scale)."""
    own = coef[coef.form == coef.activation.map(PAPER_FORM)]
    return {(a, s): dict(zip(g.name, g.value)) for (a, s), g in own.groupby(["activation", "scale"])}


def a0_rows(coef: pd.DataFrame, name: str = "A0") -> pd.DataFrame:
    """The paper-form limit rows (``A0``: bootstrap interval; ``A0_profile``: profile interval) by curve."""
    rows = coef[(coef.name == name) & (coef.form == coef.activation.map(PAPER_FORM))]
    return rows.set_index(["activation", "scale"])
