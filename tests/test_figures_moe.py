"""The MoE chapter's library: checkpoint noise, the two curves, interpolation, the comparison and claim 17."""

from dataclasses import asdict

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib import run
from sparsing_lib.figures import moe
from sparsing_lib.runs import parse_run


def test_checkpoint_noise_is_the_residual_spread_about_a_line_in_log_ppl():
    assert moe.checkpoint_noise(np.exp([1.0, 2.0, 3.0, 4.0])) == pytest.approx(0.0, abs=1e-12)
    # log PPL 0, 1, 0 about its least-squares line y = 1/3: residuals -1/3, 2/3, -1/3; sum of squares 2/3 over 1
    assert moe.checkpoint_noise(np.exp([0.0, 1.0, 0.0])) == pytest.approx(np.sqrt(2 / 3))
    assert np.isnan(moe.checkpoint_noise([10.0, 11.0]))
    assert moe.checkpoint_noise(np.exp([9.0, 0.0, 1.0, 0.0]), last=3) == pytest.approx(np.sqrt(2 / 3))


def test_interpolate_is_linear_inside_and_nan_outside():
    out = moe.interpolate(np.array([0.15, 0.1, 0.3, 0.05]), np.array([0.2, 0.1]), np.array([30.0, 40.0]))
    assert out[0] == pytest.approx(35.0) and out[1] == pytest.approx(40.0)
    assert np.isnan(out[2]) and np.isnan(out[3])


def test_compare_hand_computed_gap_interval_and_inverse():
    van = pd.DataFrame({"activation_ratio": [0.1, 0.2], "ppl": [40.0, 30.0]})
    m = pd.DataFrame({"k": [1, 2], "activation_ratio": [0.15, 0.5], "ppl": [38.5, 33.0], "trained": [True, False]})
    c = moe.compare(m, van, noise=0.01)
    row = c.iloc[0]
    assert row["vanilla_ppl"] == pytest.approx(35.0)
    assert row["gap"] == pytest.approx(0.1)  # 38.5 / 35 - 1
    assert row["lo"] == pytest.approx(1.1 * np.exp(-1.96 * 0.01) - 1)
    assert row["vanilla_ratio_same_ppl"] == pytest.approx(0.115)  # 38.5 lies 15% of the way from 40 to 30
    assert row["worse"] and not row["better"]
    assert not c.iloc[1]["in_range"] and not c.iloc[1]["worse"]
    assert c.iloc[1]["vanilla_ratio_same_ppl"] == pytest.approx(0.17)


def _run(name, top_k, pareto, ppl_series, kind="moe"):
    n = len(ppl_series)
    sparsity = pd.DataFrame({"step": np.arange(1, n + 1) * 10, "ppl": ppl_series})
    if kind == "vanilla":
        sparsity["dense_ppl"], sparsity["activation_ratio"], sparsity["zero_ratio"] = ppl_series, 0.12, 0.3
        sparsity["ppl"] = 34.4  # the CETT-PPL-1% point, on the line from (5 %, 40) to (15 %, 32)
    cfg = dict(
        model=dict(top_k=top_k, n_experts=top_k * 4, d_ff=8 * (4 - top_k // 5), non_embedding_params=1_700_000),
        probe=dict(tokens=4096),
        train=dict(seq_len=1024, tokens=2_000_000, batch_size=64),
        corpus="smoke",
        profile="smoke",
        corpus_identity=dict(train_tokens=1),
    )
    return dict(config=cfg, sparsity=sparsity, pareto=pareto, metrics=pd.DataFrame({"tokens": [1e6, 2e6]}))


def _fake_runs(moe_shift=1.0):
    """A vanilla curve 40 -> 30 PPL over 5-30 % activation; MoEs that sit ``moe_shift`` times above it."""
    steps = 10 * 8
    van_p = pd.DataFrame(
        {
            "step": steps,
            "method": "cett",
            "value": [0.3, 0.1, 0.02],
            "activation_ratio": [0.05, 0.15, 0.25],
            "ppl": [40.0, 32.0, 30.5],
        }
    )
    runs = {moe.VANILLA: _run(moe.VANILLA, 0, van_p, [31.0, 30.6, 30.9, 30.5, 30.7, 30.3, 30.5, 30.4], "vanilla")}
    for name in moe.MOE_RUNS:
        e = int(name.split("-")[2][1:])
        k = np.arange(1, e // 2 + 1)
        ratio = k / e
        base = np.interp(ratio, [0.05, 0.15, 0.3], [40.0, 32.0, 30.0])
        p = pd.DataFrame({"step": steps, "method": "experts", "value": k, "activation_ratio": ratio})
        p["ppl"] = base * moe_shift
        runs[name] = _run(name, e // 4, p, list(np.linspace(36, 35, 8)))
    return runs


def test_claim_17_holds_when_every_point_is_clearly_worse():
    res = moe._analyse(_fake_runs(1.2))
    (claim,) = moe.claims(res)
    assert claim["id"] == 17 and claim["verdict"] == "holds" and claim["basis"] == "our runs"
    n = moe.numbers(res)
    assert n["n_worse"] == n["n_inside"] and n["n_better"] == "0"
    assert n["vanilla_dense_ppl"] == "30.40" and n["vanilla_cett_ratio"] == "12.0 %"


def test_claim_17_does_not_hold_when_the_moe_is_better():
    (claim,) = moe.claims(moe._analyse(_fake_runs(0.8)))
    assert claim["verdict"] == "does not hold"


def test_claim_17_partly_holds_when_half_the_points_are_clearly_worse():
    runs = _fake_runs(1.2)
    for name in moe.MOE_RUNS:  # the upper half of each MoE curve falls onto the vanilla curve's level
        p = runs[name]["pareto"]
        p.loc[p["activation_ratio"] > 0.2, "ppl"] /= 1.2
    (claim,) = moe.claims(moe._analyse(runs))
    assert claim["verdict"] == "partly holds"


def test_claim_17_untested_without_overlap():
    runs = _fake_runs(1.2)
    for name in moe.MOE_RUNS:
        runs[name]["pareto"]["activation_ratio"] += 0.5
    (claim,) = moe.claims(moe._analyse(runs))
    assert claim["verdict"] == "untested"


def test_table_figure_and_probe_set():
    res = moe._analyse(_fake_runs(1.1))
    t = moe.table12(res)
    assert list(t["model"])[:3] == ["MoE (16 experts)", "MoE (30 experts)", "MoE (60 experts)"]
    assert t.iloc[0]["experts (routed in training)"] == "16 (4)"
    assert isinstance(moe.fig12(res), Figure)
    assert moe.numbers(res)["probe_set"].startswith("the same probe set of about 4,096")


def test_missing_runs_are_named():
    runs = _fake_runs()
    del runs[moe.MOE_RUNS[0]]
    with pytest.raises(ValueError, match="moe-192x4-e16-relu"):
        moe._analyse(runs)


def test_replay_reads_the_committed_runs():
    res = moe.results("replay")
    assert set(res["compare"]) == set(moe.MOE_RUNS)
    assert moe.numbers(res)["probe_set"].startswith("the same 64,512 validation tokens")
    with pytest.raises(ValueError, match="profile='fast'"):
        moe.results("fast")


def test_the_recipe_sentence_names_a_run_trained_with_an_earlier_recipe():
    runs = _fake_runs(1.2)
    for name, r in runs.items():
        r["config"]["profile"] = "full"
        r["config"]["train"] = asdict(run.train_config(parse_run(name)[0], "full"))
    assert moe.recipe_sentence(moe._analyse(runs)).startswith("all four trained with the same recipe")
    old = runs["moe-192x4-e60-relu"]["config"]["train"]
    old["warmup_tokens"], old["warmup_frac"] = None, 0.01  # the first MoE runs: 1 % of the run
    sentence = moe.recipe_sentence(moe._analyse(runs))
    steps = round(0.01 * old["tokens"] / (old["batch_size"] * old["seq_len"]))
    warm = steps * old["batch_size"] * old["seq_len"] / 1e6
    assert sentence.startswith("moe-192x4-e16-relu, moe-192x4-e30-relu and mini-192x4-relu trained with the current")
    assert f"moe-192x4-e60-relu: a warm-up of {warm:.1f}M tokens instead of" in sentence
    assert "64 sequences a step as now" in sentence
