"""Claims 8 (downstream half) and 9 on synthetic suite results: dense averages across scales and activations."""

import json

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib.evaluation import results as evres
from sparsing_lib.figures import downstream as ds
from sparsing_lib.figures import downstream_data as dd
from sparsing_lib.figures import downstream_scale as sc
from sparsing_lib.figures import downstream_verdicts as dv
from sparsing_lib.models import MINI
from sparsing_lib.runs import parse_run

N = 400  # items per task
TASKS = (("piqa", "commonsense", 0.5), ("boolq", "reading", 0.5))  # one task per group: its average is its score


def dense(p: float, items: bool = True) -> evres.SuiteResult:
    """A dense-only run that gets the first p*N items of every task right; normal intervals, checkable by hand."""
    rows, arrays = [], {}
    for task, group, chance in TASKS:
        x = (np.arange(N) < p * N).astype(np.float32)
        half = 1.96 * np.sqrt(p * (1 - p) / N)
        arrays[evres.item_key(task, "dense", "acc")] = x
        rows.append(dict(task=task, group=group, setting="dense", method="dense", value=np.nan, metric="acc", score=p,
                         interval=json.dumps([p - half, p + half]), items=N, truncated=0, activation_ratio=np.nan,
                         chance=chance, shots=0))  # fmt: skip
    return evres.SuiteResult(pd.DataFrame(rows), arrays if items else {}, {})


def analyse(runs: dict[str, evres.SuiteResult]) -> dict:
    return dd.analyse(runs, params={r: MINI[parse_run(r)[0]].non_embedding_params for r in runs})


def test_one_scale_is_untested_and_width_depth_runs_are_not_scales():
    res = analyse({"mini-160x3-relu": dense(0.5), "wd-96x16-relu": dense(0.9)})
    assert list(sc.family(res)["run"]) == ["mini-160x3-relu"]
    v = dv.claim_verdicts(res)
    assert v[9] == (
        "untested",
        "fewer than two scales of the family have a downstream evaluation, for either activation",
    )
    assert v[8] == ("untested", "no evaluated scale has both a ReLU and a SiLU run")


def test_two_scales_rising_beyond_their_intervals_hold():
    res = analyse({"mini-160x3-relu": dense(0.5), "mini-192x4-relu": dense(0.7)})
    r = sc.rises(res).set_index("group").loc["C.R."]
    # paired items: 0.2 N of them differ by 1, so the difference is 0.2 with sd sqrt(0.2 * 0.8 / 400) = 0.02
    assert r["diff"] == pytest.approx(0.2) and r["paired"] and r["scales"] == 2 and r["falls"] == 0
    assert r["lo"] == pytest.approx(0.2 - 1.96 * 0.02, abs=0.01) and r["hi"] == pytest.approx(
        0.2 + 1.96 * 0.02, abs=0.01
    )
    verdict, note = dv.scale_verdict(res)
    assert verdict == "holds" and "only two scales, mini-160x3 and mini-192x4" in note
    assert "Δ +20.0 [" in note and "a rise beyond its interval" in note and "untested for SiLU" in note


def test_unpaired_difference_combines_the_two_intervals():
    res = analyse({"mini-160x3-relu": dense(0.5, items=False), "mini-192x4-relu": dense(0.7)})
    diff, lo, hi, paired = sc.between(res, "R.C.", "mini-160x3-relu", "mini-192x4-relu")
    half = 1.96 * np.hypot(np.sqrt(0.25 / N), np.sqrt(0.21 / N))  # 0.0665
    assert not paired and diff == pytest.approx(0.2) and (lo, hi) == pytest.approx((0.2 - half, 0.2 + half))


def test_other_seeds_are_analysed_apart_and_counted_only_in_the_seed_range(tmp_path):
    for name in ("mini-160x3-relu", "mini-160x3-relu-s1", "mini-160x3-relu-s2", "mini-160x3-relu-f8",
                 "mini-192x4-relu-s1", "mini-160x3-silu-s1", "pilot-a"):  # fmt: skip
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval.csv").write_text("")
    (tmp_path / "mini-160x3-silu-s2").mkdir()  # trained but not evaluated
    # the share-of-split run, another model's seed, an unevaluated seed and a pilot are not seeds of the runs asked
    assert dd.other_seeds(["mini-160x3-relu", "mini-160x3-silu"], tmp_path) == [
        "mini-160x3-relu-s1", "mini-160x3-relu-s2", "mini-160x3-silu-s1"
    ]  # fmt: skip
    res = analyse({"mini-160x3-relu": dense(0.5), "mini-192x4-relu": dense(0.6), "mini-256x5-relu": dense(0.7)})
    assert dv.scale_verdict(res)[0] == "holds"
    res["seeds"] = analyse({"mini-192x4-relu-s1": dense(0.9)})  # a seed of a mid-sized scale, not of an end
    fam = sc.family(res)
    assert fam["run"].tolist() == ["mini-160x3-relu", "mini-192x4-relu", "mini-192x4-relu-s1", "mini-256x5-relu"]
    assert fam["seed"].tolist() == [0, 0, 1, 0]
    assert sc.seed_spread(res)["spread"].tolist() == pytest.approx([0.3, 0.3])
    verdict, note = dv.scale_verdict(res)  # the 0.2 rise from end to end lies inside the 0.3 seed range
    assert verdict == "does not hold" and "a rise within the seed range" in note
    assert dv.seed_scope(res) == (
        "more than one seed was evaluated at mini-192x4 (2 ReLU), and the dense averages of one model's seeds lie "
        "up to 30.0 (C.R.) and 30.0 (R.C.) points apart"
    )
    assert res["runs"] == ["mini-160x3-relu", "mini-192x4-relu", "mini-256x5-relu"]  # tables: one run per model


def test_a_fall_between_neighbours_or_a_seed_range_weakens_the_rise():
    three = analyse({"mini-160x3-relu": dense(0.5), "mini-192x4-relu": dense(0.4), "mini-256x5-relu": dense(0.7)})
    assert dv.scale_verdict(three)[0] == "partly holds" and sc.rises(three)["falls"].tolist() == [1, 1]
    seeds = analyse({"mini-160x3-relu": dense(0.5), "mini-160x3-relu-s1": dense(0.8), "mini-192x4-relu": dense(0.7)})
    sp = sc.seed_spread(seeds)
    assert sp["spread"].tolist() == pytest.approx([0.3, 0.3]) and sp["seeds"].tolist() == [2, 2]
    verdict, note = dv.scale_verdict(seeds)  # a rise of 0.2 inside a seed range of 0.3
    assert verdict == "does not hold" and "a rise within the seed range" in note
    flat = analyse({"mini-160x3-relu": dense(0.5), "mini-192x4-relu": dense(0.5)})
    assert dv.scale_verdict(flat)[0] == "does not hold" and "within noise" in dv.scale_verdict(flat)[1]


def test_relu_and_silu_within_the_margin_hold_and_far_apart_do_not():
    close = analyse({"mini-160x3-relu": dense(0.6), "mini-160x3-silu": dense(0.595)})
    gap = sc.act_gaps(close).set_index("group").loc["C.R."]
    assert gap["diff"] == pytest.approx(0.005) and gap["lo"] <= 0.005 <= gap["hi"]  # 2 items of 400
    verdict, note = dv.act_verdict(close)
    assert verdict == "holds" and "at the 1 evaluated scale with both activations" in note
    far = analyse({"mini-160x3-relu": dense(0.7), "mini-160x3-silu": dense(0.5)})
    verdict, note = dv.act_verdict(far)
    assert verdict == "does not hold" and "mini-160x3 C.R. +20.0 [" in note and "beyond ±1 point" in note
    assert {c["id"]: c["verdict"] for c in ds.claims(far)}[8] == "does not hold"
    assert [c["note"] for c in ds.claims(far) if c["id"] == 8][0].startswith("downstream half: ReLU minus SiLU")


def test_confounds_figure_and_table_from_the_configs():
    runs = {"mini-160x3-relu": dense(0.5), "mini-160x3-silu": dense(0.5), "mini-192x4-relu": dense(0.6)}
    res = analyse(runs)
    p = {r: res["params"][r] for r in runs}
    res["configs"] = {r: {"profile": "full", "train": {"tokens": (30 if "192" in r else 100) * p[r], "batch_size": 8}}
                      for r in runs}  # fmt: skip
    text = dv.scale_confounds(res)
    assert "mini-160x3 (0.9M: earlier recipe, 100 tokens per parameter, a batch of 8 sequences)" in text
    assert "30 tokens per parameter" in text and "every run was evaluated at one seed" in text
    t = ds.table_scale(res)
    assert len(t) == 3 + 10 and t.loc[0, "C.R. dense (%)"].startswith("50.0 [") and t.loc[3, "model"] == "paper 0.1B"
    fig = ds.fig_scale(res)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert "(ReLU) and 49.5 to 59.6 (SiLU)" in dv.paper_scale()  # the paper's C.R. ends, from data/paper
    assert isinstance(ds.fig_scale(dd.analyse({})), Figure)  # the paper's points alone without any run
