"""The threshold-search appendix: speed and agreement of our CETT search against the official algorithm.

The numbers come from ``benchmarks/search.py`` (part A: per-layer threshold searches on the same captured
activations; B: calibration at scale; C: a CETT-PPL-1% search), whose committed runs on the H200 are
``data/benchmarks/search_full_<n>_<rev>.json``, numbered in the order they were made.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import torch

from ..checks import check_profile
from ..paths import DATA, ROOT, data_file
from ..profiles import by_profile
from ..search import AROUND

# The official search bisects over 65,536 candidate thresholds: 16 or 17 halvings, one fp32 product each.
OFFICIAL_PRODUCTS = 17
SCRIPT = ROOT / "benchmarks" / "search.py"


def _run_number(path: Path) -> int:
    return int(re.match(r"search_full_(\d+)_", path.name).group(1))


def results(profile: str = "replay") -> list[dict]:
    """Benchmark runs, oldest first. replay: the committed H200 runs; smoke: the benchmark's tiny size on
    this machine (seconds, CPU, fp32 products, so its speed-ups say nothing about a GPU); full: the 2.4B FFN
    shape on a GPU, saved as the next numbered run."""
    check_profile(profile)
    return by_profile(profile, _replay, _recompute, _save)


def _replay() -> list[dict]:
    files = sorted(data_file("benchmarks").glob("search_full_*.json"), key=_run_number)
    if not files:
        raise FileNotFoundError(f"no search_full_*.json in {DATA / 'benchmarks'}")
    return [json.loads(f.read_text()) for f in files]


def _recompute(profile: str) -> list[dict]:
    size = "full" if profile == "full" else "tiny"
    if profile == "full" and not torch.cuda.is_available():
        raise RuntimeError(
            "profile='full' runs benchmarks/search.py at the 2.4B FFN shape on a GPU (the book used one H200); "
            "no GPU is visible here. Use profile='replay' for the committed runs or 'smoke' for a CPU check."
        )
    out = Path(tempfile.mkdtemp(prefix="search-bench-"))
    cmd = [sys.executable, str(SCRIPT), "--size", size, "--out", str(out)]  # the script records its own revision
    done = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=str(ROOT)))
    if done.returncode != 0:
        raise RuntimeError(f"benchmarks/search.py failed:\n{done.stderr[-2000:]}")
    run = json.loads((out / f"search_{size}.json").read_text())
    if profile == "smoke":
        shutil.rmtree(out)
        return [run]
    return [run | {"_out": str(out)}]


def _save(runs: list[dict]) -> None:
    n = max((_run_number(f) for f in (DATA / "benchmarks").glob("search_full_*.json")), default=0) + 1
    run = {k: v for k, v in runs[-1].items() if k != "_out"}
    stem = DATA / "benchmarks" / f"search_full_{n}_{run['meta']['rev'][:7]}"
    stem.with_suffix(".json").write_text(json.dumps(run, indent=1))
    stem.with_suffix(".log").write_text((Path(runs[-1]["_out"]) / "search_full.log").read_text())


def speedups(part_a: list[dict]) -> dict[str, float]:
    """Speed-ups of part A, from per-layer rows (each CETT value of each layer timed by the official search;
    the rows at the single targeted value also carry our times): one CETT value (official / ours, summed over
    layers), several values (all official searches / one broad curve of ours, measured) and a CETT-PPL search
    (``outer_rounds`` official searches / one broad curve, extrapolated: the official search was not run that
    many times)."""
    a = pd.DataFrame(part_a)
    single = a.dropna(subset=["time_targeted_s"])
    return dict(
        one=single.time_official_s.sum() / single.time_targeted_s.sum(),
        several=a.time_official_s.sum() / single.time_broad_s.sum(),
        n_values=float(a.cett.nunique()),
        official_s=single.time_official_s.mean(),
        ours_s=single.time_targeted_s.mean(),
        grid_s=single.time_targeted_grid_s.mean(),
    )


def search_speedup(part_a: list[dict], rounds: int) -> float:
    """Extrapolated speed-up for a CETT-PPL search: ``rounds`` one-value official searches per layer against
    one broad curve of ours, which serves every round."""
    single = pd.DataFrame(part_a).dropna(subset=["time_targeted_s"])
    return rounds * single.time_official_s.sum() / single.time_broad_s.sum()


def agreement(part_a: list[dict]) -> dict[str, float]:
    """Largest distance of our thresholds' exact CETT from the target, and of their activation ratio from the
    official threshold's, over all rows (broad curve) and the targeted rows."""
    a = pd.DataFrame(part_a)
    s = a.dropna(subset=["time_targeted_s"])
    return dict(
        cett=max((a.broad_cett - a.cett).abs().max(), (s.targeted_cett - s.cett).abs().max()),
        act=max((a.broad_act - a.official_act).abs().max(), (s.targeted_act - s.official_act).abs().max()),
    )


def gemm_ceiling(rates: dict[str, float], ours: str, grid_points: int = len(AROUND)) -> float:
    """Speed-up the matrix products alone allow: the official search's fp32 products against our grid
    products in dtype ``ours`` (bfloat16 on a GPU), at the rates (TFLOP/s) measured on the same device, for
    products of equal size."""
    return OFFICIAL_PRODUCTS * rates[ours] / (grid_points * rates["fp32"])


def table_speed(runs: list[dict]) -> pd.DataFrame:
    """One row per benchmark run, indexed by its git revision: mean per-layer times and part A's speed-ups."""
    rows = []
    for r in runs:
        s = speedups(r["A"])
        rows.append(
            {
                "git revision": r["meta"]["rev"][:7],
                "official, one CETT value (s per layer)": s["official_s"],
                "ours, one CETT value (s per layer)": s["ours_s"],
                "speed-up, one CETT value": s["one"],
                f"speed-up, {s['n_values']:.0f} CETT values (measured)": s["several"],
                f"speed-up, CETT-PPL search of {r['meta']['outer_rounds']} rounds (extrapolated)": search_speedup(
                    r["A"], r["meta"]["outer_rounds"]
                ),
            }
        )
    return pd.DataFrame(rows).set_index("git revision")


def _latest(runs: list[dict], part: str) -> tuple[dict | None, str | None]:
    """The newest run holding ``part`` (B and C were not rerun at every revision), and its revision."""
    return next(((r[part], r["meta"]["rev"][:7]) for r in reversed(runs) if part in r), (None, None))


def numbers(runs: list[dict]) -> dict[str, str]:
    """Every number the appendix quotes, as text, from the latest run (part A) and the latest B and C."""
    last, first = runs[-1], runs[0]
    s, agree = speedups(last["A"]), agreement(last["A"])
    rates, ours = last["gemm_tflops"], last["meta"]["dtype"].split(".")[-1]
    shape = last["meta"]["shape"]
    b, b_rev = _latest(runs, "B")
    c, c_rev = _latest(runs, "C")
    out = dict(
        device=last["meta"]["device"],
        rev=last["meta"]["rev"][:7],
        n_runs=str(len(runs)),
        shape=f"d {shape['d']}, d_ff {shape['d_ff']}, {shape['layers']} layers",
        tokens_a=f"{shape['tokens_a']:,}",
        n_layers_a=str(len(shape["layers_a"])),
        rounds=str(last["meta"]["outer_rounds"]),
        one=f"{s['one']:.0f}×",
        first_one=f"{speedups(first['A'])['one']:.0f}×",
        first_rev=first["meta"]["rev"][:7],
        several=f"{s['several']:.1f}×",
        n_values=f"{s['n_values']:.0f}",
        search=f"{search_speedup(last['A'], last['meta']['outer_rounds']):.0f}×",
        official_s=f"{s['official_s']:.2f} s",
        ours_ms=f"{1000 * s['ours_s']:.1f} ms",
        grid_ms=f"{1000 * s['grid_s']:.1f} ms",
        grid_points=str(len(AROUND)),
        official_products=str(OFFICIAL_PRODUCTS),
        fp32=f"{rates['fp32']:.3g}",
        dtype=ours,
        ours_rate=f"{rates[ours]:.3g}",
        ceiling=f"{gemm_ceiling(rates, ours):.0f}×",
        dcett=f"{agree['cett']:.1e}",
        dact=f"{100 * agree['act']:.3f}",
    )
    out["b"] = "was not run"
    if b:
        peak = f" with a peak of {b['peak_gib']:.1f} GiB of GPU memory" if b["peak_gib"] == b["peak_gib"] else ""
        out["b"] = (
            f"{b['tokens']:,} calibration tokens in {b['curves_s']:.3g} s "
            f"({b['curves_s'] / b['dense_pass_s']:.1f} dense passes){peak} (git {b_rev})"
        )
    out["c"] = (
        f"{c['forward_equivalents']:.1f} forward-pass equivalents ({c['passes']} passes) to reach a PPL ratio of "
        f"{c['ppl_ratio']:.5f} (git {c_rev})"
        if c and "forward_equivalents" in c
        else (c or {}).get("error", "was not run")
    )
    return out
