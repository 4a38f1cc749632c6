"""Refitting every released curve of the authors: the paper's law and its alternatives, with intervals, a
warm-up scan and the leave-future-out test, as five tables saved to and read from ``data/laws/``.

``laws`` fits one curve; this module is the driver that runs it over all released curves in parallel, so
that the three chapters built on the released data (§5.1, §5.3, §6) read one set of committed tables.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm import tqdm

from .laws import ALTERNATIVES, PAPER_FORM, fit, get_form, leave_future_out

RESULT_TABLES = ("coef", "quality", "bands", "lfo", "kscan")


def refit_released(
    curves,
    n_boot: int,
    drop_first: int = 0,
    min_tokens: float = 0.0,
    frac: float = 0.7,
    n_boot_lfo: int | None = None,
    kmax: int = 10,
    seed: int = 0,
    workers: int | None = None,
) -> dict:
    """Refit every released curve with its paper form and the alternatives; returns ``RESULT_TABLES``.

    coef: one row per (curve, form, coefficient) with value and 95% interval (bootstrap for the paper's
    form; ``A0_profile`` rows hold profile intervals). quality: fit statistics and AICc per (curve, form).
    bands: the paper-form fit and its bootstrap band on a token grid. lfo: the leave-future-out test per
    (curve, form). kscan: paper-form coefficients when dropping the first k = 0..kmax checkpoints.
    Curves are processed in parallel over ``workers`` processes (default: all CPU cores).
    """
    settings = dict(
        n_boot=n_boot,
        drop_first=drop_first,
        min_tokens=min_tokens,
        frac=frac,
        n_boot_lfo=n_boot if n_boot_lfo is None else n_boot_lfo,
        kmax=kmax,
        seed=seed,
    )
    jobs = [
        (act, str(scale), g["tokens"].to_numpy(), g["activation_ratio"].to_numpy(), settings)
        for (act, scale), g in curves.groupby(["activation", "scale"], observed=True)
    ]
    rows = {name: [] for name in RESULT_TABLES}
    with ProcessPoolExecutor(max_workers=workers or os.cpu_count()) as pool:
        for part in tqdm(pool.map(_refit_curve, jobs), total=len(jobs), desc="curves", disable=None):
            for name in RESULT_TABLES:
                rows[name] += part[name]
    return {name: pd.DataFrame(r) for name, r in rows.items()}


def _refit_curve(job) -> dict[str, list]:
    act, scale, t, a, st = job
    key = {"activation": act, "scale": scale}
    rule = dict(drop_first=st["drop_first"], min_tokens=st["min_tokens"])
    rows = {name: [] for name in RESULT_TABLES}
    for form in (PAPER_FORM[act], *ALTERNATIVES):
        paper_form = form == PAPER_FORM[act]
        res = fit(t, a, form, n_boot=st["n_boot"] if paper_form else 0, profile=paper_form, seed=st["seed"], **rule)
        ci = dict(res.ci)
        for name, value in res.params.items():
            lo, hi = ci.get(name, (np.nan, np.nan))
            rows["coef"].append({**key, "form": form, "name": name, "value": value, "ci_lo": lo, "ci_hi": hi})
        if "A0_profile" in ci:
            rows["coef"].append(
                {
                    **key,
                    "form": form,
                    "name": "A0_profile",
                    "value": res.params["A0"],
                    "ci_lo": ci["A0_profile"][0],
                    "ci_hi": ci["A0_profile"][1],
                }
            )
        rows["quality"].append(
            {
                **key,
                "form": form,
                "n": res.n,
                "n_dropped": res.n_dropped,
                "mae": res.mae,
                "mse": res.mse,
                "rss": res.rss,
                "aicc": res.aicc,
                "converged": res.converged,
                "warning": res.warning,
            }
        )
        if paper_form:
            grid = np.geomspace(t.min(), max(t.max(), 1e12 if scale == "2.4B" else 0), 120)
            lo, hi = res.band(grid) if st["n_boot"] else (np.full_like(grid, np.nan),) * 2
            rows["bands"] += [
                {**key, "tokens": x, "fit": y, "lo": a, "hi": b} for x, y, a, b in zip(grid, res.predict(grid), lo, hi)
            ]
            for k in range(st["kmax"] + 1):
                try:
                    rk = fit(t, a, form, drop_first=k, profile=False)
                except ValueError:  # too few points left
                    break
                rows["kscan"].append(
                    {**key, "k": k, "first_tokens": rk.tokens[0], **rk.params, "rss": rk.rss, "warning": rk.warning}
                )
        try:
            ex = leave_future_out(t, a, form, frac=st["frac"], n_boot=max(st["n_boot_lfo"], 1), seed=st["seed"], **rule)
        except ValueError:  # too few training points under this warm-up rule
            continue
        rows["lfo"].append(
            {
                **key,
                "form": form,
                "n_train": ex.n_train,
                "n_test": ex.n_test,
                "mae": ex.mae,
                "max_error": ex.max_error,
                "coverage": ex.coverage,
                "limit_train": ex.limit_train,
                "limit_full": res.params.get("A0") if get_form(form).limit else None,
                "warning": ex.fit.warning,
            }
        )
    return rows


def save_results(tables: dict, folder, meta: dict) -> None:
    """Write the ``refit_released`` tables as CSV plus ``meta.json`` (settings, command, revision, hardware)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name in RESULT_TABLES:
        tables[name].to_csv(folder / f"{name}.csv", index=False, float_format="%.10g")
    (folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")


def load_results(folder) -> tuple[dict, dict]:
    """Read what ``save_results`` wrote: (tables, meta)."""
    folder = Path(folder)
    if not (folder / "meta.json").is_file():
        raise FileNotFoundError(
            f"no committed law fits in {str(folder)!r}; run the data_activation chapter with profile='full'"
        )
    tables = {
        name: pd.read_csv(folder / f"{name}.csv", keep_default_na=False, na_values=[""]) for name in RESULT_TABLES
    }
    return tables, json.loads((folder / "meta.json").read_text())
