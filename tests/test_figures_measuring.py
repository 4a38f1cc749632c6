"""The measuring chapter's readings: interpolation at equal PPL, ranking, monotonicity, verdicts, Fig. 1."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure

from sparsing_lib.figures import measuring as m


def curve(points):
    return pd.DataFrame(points, columns=["ppl_ratio", "activation_ratio"])


CURVE = curve([(1.0, 0.5), (1.005, 0.3), (1.02, 0.2), (1.1, 0.1)])


def test_at_ppl_ratio_interpolates_between_the_points_around_the_target():
    r = m.at_ppl_ratio(CURVE, 1.01)
    # between (1.005, 0.3) and (1.02, 0.2): a third of the way, 0.3 - 0.1 / 3
    assert r["value"] == pytest.approx(0.3 - 0.1 / 3)
    assert (r["lo"], r["hi"], r["short"]) == (0.2, 0.3, False)


def test_at_ppl_ratio_beyond_the_sweep():
    r = m.at_ppl_ratio(CURVE, 1.2)
    assert math.isnan(r["value"]) and r["short"] and r["hi"] == 0.1
    r = m.at_ppl_ratio(CURVE, 0.99)  # every point costs more PPL
    assert math.isnan(r["value"]) and not r["short"] and r["lo"] == 0.5


def test_rank_needs_the_whole_bracket_on_one_side():
    r = m.at_ppl_ratio(CURVE, 1.01)  # bracket [0.2, 0.3]
    assert m.rank(r, 0.15) == "more"
    assert m.rank(r, 0.25) == "unranked"
    assert m.rank(r, 0.35) == "fewer"


def sweep(run, cett, act, ppl):
    return pd.DataFrame(dict(run=run, cett=cett, activation_ratio=act, ppl_ratio=ppl))


def test_monotonicity_finds_a_dip_below_one():
    sw = pd.concat(
        [
            sweep("dip", [0.1, 0.3, 0.2], [0.3, 0.1, 0.2], [0.999, 1.05, 0.998]),
            sweep("ok", [0.1, 0.2, 0.3], [0.3, 0.2, 0.1], [1.001, 1.01, 1.05]),
        ]
    )
    mono = m.monotonicity(sw).set_index("run")
    assert not mono.loc["dip", "ppl_non_decreasing"] and mono.loc["ok", "ppl_non_decreasing"]
    assert mono.activation_non_increasing.all()
    assert mono.loc["dip", "min_ppl_ratio"] == 0.998
    assert list(mono.n_values) == [3, 3]
    text = m.fig15_verdict(mono.reset_index(), {"cett", "fat"})
    assert text.startswith("over the 3 CETT values swept per run")
    assert "non-decreasing in 1 of 2" in text and "0.9980 (dip), below 1" in text
    assert "per-layer Top-k series have no counterpart" in text
    assert "no counterpart" not in m.fig15_verdict(mono.reset_index(), {"topk_layer"})


def fake_run(model, act, params, cett_act=0.1, zero=0.4):
    sparsity = pd.DataFrame(
        dict(step=[10, 20], cett=0.07, activation_ratio=[0.2, cett_act], ppl=[30.0, 30.3], dense_ppl=[29.0, 30.0],
             ppl_ratio=[1.01, 1.01], loss=[3.37, math.log(30.0)], zero_ratio=[0.5, zero], layer_0=[0.3, 0.2],
             layer_1=[0.1, 0.05], layer_2=[0.2, 0.1])
    )  # fmt: skip
    rows = [(m_, v, a, 30 * p, p) for m_, pts in PARETO.items() for v, a, p in pts]
    pareto = pd.DataFrame(rows, columns=["method", "value", "activation_ratio", "ppl", "ppl_ratio"]).assign(step=20)
    return dict(
        config=dict(model=dict(name=model, non_embedding_params=params), train=dict(tokens=1e6),
                    probe=dict(tokens=4096), activation=act),
        env=dict(gpu=None), sparsity=sparsity, pareto=pareto, cett=dict(p=0.01, joint_steps=[10, 20]),
    )  # fmt: skip


PARETO = {
    "topk_token": [(0.15, 0.15, 1.5), (0.3, 0.3, 1.005)],
    "fat": [(0.5, 0.15, 1.2), (0.1, 0.35, 1.001)],
    "cett": [(0.02, 0.3, 1.0005), (0.1, 0.1, 1.01), (0.3, 0.05, 1.2)],
}


@pytest.fixture
def res():
    runs = {f"{mod}-{a}": fake_run(mod, a, p) for mod, p in (("big", 2e6), ("small", 1e6)) for a in m.ACTS}
    runs["wd-relu"] = fake_run("wd", "relu", 5e5)  # ReLU only: not a pair
    fig1 = pd.concat(
        pd.DataFrame(dict(neuron=range(4), s=0.0, a=[0.0, 1.0, 2.0, 0.5], n=[0.0, 1.0, 4.0, 0.5], threshold=0.8,
                          active=[False, True, True, False], model=a, layer=1))
        for a in m.ACTS
    )  # fmt: skip
    return dict(runs=runs, scales=["small", "big"], fig1=fig1, fig1_meta=dict(run="small", step=20, p=0.01))


def test_paired_models_are_ordered_by_size_and_skip_relu_only(res):
    assert m.paired_models(res["runs"]) == ["small", "big"]


def test_relu_reduction_by_hand(res):
    assert m.relu_reduction(res["runs"]["small-relu"]) == pytest.approx(1 - 0.1 / 0.4)


def test_table_and_verdict_follow_the_data(res):
    t = m.table_fig2(res)
    assert list(t.model) == ["small ReLU", "small SiLU", "big ReLU", "big SiLU"]  # every pair, whatever is drawn
    # Top-k at PPL ratio 1.01: between (1.005, 0.3) and (1.5, 0.15); FAT between (1.001, 0.35) and (1.2, 0.15)
    assert t["Top-k (per token) (% active)"].iloc[0] == pytest.approx(100 * (0.3 - 0.15 * 0.005 / 0.495))
    assert t["FAT-ε (% active)"].iloc[0] == pytest.approx(100 * (0.35 - 0.2 * 0.009 / 0.199))
    assert set(t["Top-k (per token) vs CETT"]) == {"more"}
    # ReLU cut 1 - 0.1 / 0.4 at the last step; 1 - 0.2 / 0.5 = 60% at the other joint step
    assert t["ReLU cut vs zero threshold (%)"].iloc[0] == pytest.approx(75) and math.isnan(t.iloc[1, -2])
    assert t["cut, last checkpoints (%)"].iloc[0] == "60.0–75.0" and pd.isna(t.iloc[1, -1])
    assert m.fig2_count(t) == dict(n=4, best=4, beaten=0, unranked=0)
    assert m.fig2_verdict(t).startswith("CETT keeps fewer neurons than both Top-k and FAT-ε at equal PPL in 4 of 4")
    t.loc[1, "FAT-ε vs CETT"] = "unranked"
    v = m.fig2_verdict(t)
    assert "in 3 of 4 runs; elsewhere the sweeps are too coarse to rank: FAT-ε on small SiLU" in v
    t.loc[2, "Top-k (per token) vs CETT"] = "fewer"
    assert m.fig2_count(t) == dict(n=4, best=2, beaten=1, unranked=1)
    v = m.fig2_verdict(t)
    assert (
        "unlike the paper, another method keeps fewer in 1" in v and "Top-k (per token) on big ReLU (keeps fewer)" in v
    )


def test_reduction_spread_and_verdict_by_hand(res):
    assert m.reduction_spread(res["runs"]["small-relu"]) == pytest.approx((0.6, 0.75))
    v = m.reduction_verdict({"a": 0.5, "b": 0.58, "c": 0.57})
    assert v == (
        "50% to 58% over our 3 ReLU scales against the paper's 61%; within 5 points of it at 2 of 3, "
        "and the cut grows from one scale to the next 1 of 2 times"
    )
    assert (
        m.reduction_verdict({"a": 0.6})
        == "60% over our 1 ReLU scale against the paper's 61%; within 5 points of it at 1 of 1"
    )


def test_layer_profile_and_verdict(res):
    lp = m.layer_profile(res["runs"]["small-relu"])
    assert list(lp.depth) == [0.0, 0.5, 1.0] and list(lp.activation_ratio) == [0.2, 0.05, 0.1]
    assert m.layer_verdict(res["runs"]) == (
        "ReLU: the densest layer is the first layer in 2 of 2 runs; "
        "SiLU: the densest layer is the first layer in 2 of 2 runs"
    )
    res["runs"]["big-silu"]["sparsity"]["layer_1"] = 0.9
    assert "SiLU: the densest layer is the first layer in 1, an inner layer in 1 of 2" in m.layer_verdict(res["runs"])


def test_chosen_scales_keeps_size_order_and_rejects_unknowns():
    assert m.chosen_scales("all", ["s", "b"]) == ["s", "b"]
    assert m.chosen_scales("b, s", ["s", "b"]) == ["s", "b"]
    with pytest.raises(ValueError, match="scales='x' is not valid"):
        m.chosen_scales("s,x", ["s", "b"])


def test_span_in_words():
    assert m.span([0.1, 0.25]) == "10.0% to 25.0%"
    assert m.span([0.1, float("nan")], "{:.0f}%") == "10% (1 of 2 beyond the sweep)"
    assert m.span([float("nan")]) == "beyond the sweep in every run"


def test_claims_follow_the_results(res):
    got = {c["id"]: c for c in m.claims(res)}
    assert [got[i]["verdict"] for i in (3, 4, 5)] == ["partly holds", "partly holds", "holds"]
    assert all(c["basis"] == "our runs" for c in got.values())
    assert (
        "in 4 of 4 runs (beaten in 0, unranked in 0)" in got[3]["note"]
        and "by 75% over our 2 ReLU scales" in got[4]["note"]
    )
    assert "both monotone in 4 of 4 runs over the 3 CETT values" in got[5]["note"]
    for r in res["runs"].values():  # a cut of 58% is within 5 points of the paper's 61%
        r["sparsity"].loc[1, "activation_ratio"] = 0.42 * 0.4
    assert {c["id"]: c["verdict"] for c in m.claims(res)}[4] == "holds"
    res["runs"]["big-relu"]["sparsity"].loc[1, "activation_ratio"] = 0.5  # more than the zero threshold's 0.4
    assert {c["id"]: c["verdict"] for c in m.claims(res)}[4] == "does not hold"


@pytest.mark.parametrize(
    ("ranks", "verdict"),
    [
        (["fewer"] * 4, "does not hold"),
        (["unranked"] * 4, "untested"),
        (["more", "more", "more", "fewer"], "partly holds"),
    ],
)
def test_claim_3_branches(res, monkeypatch, ranks, verdict):
    t = m.table_fig2(res)
    t["FAT-ε vs CETT"] = ranks
    monkeypatch.setattr(m, "table_fig2", lambda _: t)
    assert m.claims(res)[0]["verdict"] == verdict


def test_claim_5_branches(res):
    for r in res["runs"].values():  # PPL falls between the two last CETT values: not monotone
        p = r["pareto"]
        p.loc[(p.method == "cett") & (p.value == 0.3), "ppl_ratio"] = 1.001
    assert m.claims(res)[2]["verdict"] == "does not hold"
    p = res["runs"]["big-relu"]["pareto"]
    p.loc[(p.method == "cett") & (p.value == 0.3), "ppl_ratio"] = 1.2
    c = m.claims(res)[2]
    assert c["verdict"] == "partly holds" and "in 1 of 4 runs" in c["note"]


def test_numbers_and_figures(res):
    out = m.numbers(res)
    assert out["relu_cut_verdict"].startswith("75% over our 2") and out["relu_act"] == "10.0%"
    assert out["fig1_relu_active"] == "50%" and out["fig1_relu_zero"] == "1"
    assert out["scales"] == "small, big" and out["n_runs"] == "4" and out["params_range"] == "1.00M to 2.00M"
    assert out["claim_5"].startswith("holds (both monotone")
    for f in (m.fig1, m.fig2, m.fig15):
        assert isinstance(f(res), Figure)
    res["scales"] = ["small"]  # one scale, as in the smoke profile
    assert isinstance(m.fig2(res), Figure)


def test_top_share_by_hand():
    assert m._top_share(np.array([4.0, 3, 2, 1, 0, 0, 0, 0, 0, 0])) == pytest.approx(0.4)


def test_fig1_source_names_the_model():
    assert "step 20" in m.fig1_source(dict(run="tiny", step=20))
    legacy = dict(spec="mini-160x3", d_model=160, d_ff=400, n_layers=3, steps=100, train_tokens=102400,
                  hardware="cpu", git_revision="abc")  # fmt: skip
    assert "only 100 steps (102,400 tokens)" in m.fig1_source(legacy)


def test_token_contributions_use_the_down_projection_column_norms():
    from sparsing_lib.capture import ffn_layers
    from sparsing_lib.models import TINY, build_model

    model = build_model(TINY, "relu", vocab_size=64).eval()
    w = ffn_layers(model)[1].down.weight
    with torch.no_grad():
        w.zero_()
        w[0] = torch.arange(1, w.shape[1] + 1)  # column i has norm i + 1
    ids = torch.arange(16)[None] % 64
    d = m.token_contributions(model, ids, layer=1, threshold=2.0)
    nz = d[d.a != 0]
    assert len(nz) > 0
    np.testing.assert_allclose(nz.n / nz.a.abs(), nz.neuron + 1, rtol=1e-6)
    assert (d.active == (d.n >= 2.0)).all()


def test_replay_rejects_an_unknown_scale():
    with pytest.raises(ValueError, match="scales='mini-1x1' is not valid"):
        m.results("replay", scales="mini-160x3,mini-1x1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_full_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        m.results("full")


def test_versus_in_words():
    assert (m.versus(0.53, 0.61), m.versus(0.58, 0.61), m.versus(0.7, 0.61)) == (
        "smaller than",
        "close to",
        "larger than",
    )


def test_fig1_from_checkpoint_matches_the_runs_threshold(tmp_path, monkeypatch):
    """A tiny run on the committed smoke corpus: the Fig. 1 token's threshold is the one the run's CETT value
    gives the middle layer on the probe set, recomputed independently here."""
    from sparsing_lib import metrics
    from sparsing_lib import run as runner
    from sparsing_lib.probes import ProbeConfig
    from sparsing_lib.train import TrainConfig

    monkeypatch.setattr(
        runner,
        "train_config",
        lambda m_, p: TrainConfig(tokens=20 * 4 * 32, batch_size=4, seq_len=32, n_checkpoints=2, eval_tokens=256,
                                  log_every=5, compile=False),
    )  # fmt: skip
    monkeypatch.setattr(
        runner,
        "probe_config",
        lambda p: ProbeConfig(joint_last=1, tokens=512, domain_tokens=64, vocab_tokens=256, batch_size=8,
                              topk_values=[0.5], fat_values=[0.0], cett_values=[0.1]),
    )  # fmt: skip
    rec = runner.run_one("tiny-32x2-relu", tmp_path / "runs", tmp_path / "ck", "smoke", "smoke", None, "cpu",
                         progress=False)  # fmt: skip
    assert rec["status"] == "done", rec.get("traceback")
    d = m.fig1_from_checkpoint(tmp_path / "runs" / "tiny-32x2-relu", tmp_path / "ck" / "tiny-32x2-relu")
    assert set(d.model) == {"relu"} and set(d.layer) == {1} and len(d) == 80
    assert (d.active == (d.n >= d.threshold)).all() and (d.s >= 0).all()
    # the same thresholds from the run's probe set, built here from the corpus slice and the last checkpoint
    from sparsing_lib import corpus
    from sparsing_lib.models import TINY, build_model
    from sparsing_lib.probes import checkpoint_files, load_checkpoint
    from sparsing_lib.train import windows

    r = m.load_run(tmp_path / "runs" / "tiny-32x2-relu")
    ids = windows(runner.mix(corpus.load_val_by_domain(root="smoke"), 512, 32), 32)
    _, path = checkpoint_files(tmp_path / "ck" / "tiny-32x2-relu")[-1]
    model = load_checkpoint(lambda: build_model(TINY, "relu", r["config"]["vocab_size"]), path, "cpu")
    thr = metrics.cett_thresholds(model, ids, r["cett"]["cett"], max_tokens=8 * 32)
    assert d.threshold.iloc[0] == pytest.approx(thr[1]) and thr[1] > 0


def test_fig1_verdict_follows_the_shares():
    assert m.fig1_verdict({"relu": 0.88, "silu": 0.91}).startswith("a few neurons carry most")
    v = m.fig1_verdict({"relu": 0.88, "silu": 0.3})
    assert v.startswith("the output is spread") and "30% in the SiLU model" in v
