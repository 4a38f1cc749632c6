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
    text = m.fig15_verdict(mono.reset_index(), {"cett", "fat"})
    assert "non-decreasing in 1 of 2" in text and "0.9980 (dip), below 1" in text
    assert "Per-layer series are not recorded" in text
    assert "not recorded" not in m.fig15_verdict(mono.reset_index(), {"topk_layer"})


def fake_run(model, act, params, cett_act=0.1, zero=0.4):
    sparsity = pd.DataFrame(
        dict(step=[10, 20], cett=0.07, activation_ratio=[0.2, cett_act], ppl=[30.0, 30.3], dense_ppl=[29.0, 30.0],
             ppl_ratio=[1.01, 1.01], loss=[3.37, math.log(30.0)], zero_ratio=[0.5, zero])
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
    return dict(runs=runs, scale="small", fig1=fig1, fig1_meta=dict(run="small", step=20, p=0.01))


def test_paired_models_are_ordered_by_size_and_skip_relu_only(res):
    assert m.paired_models(res["runs"]) == ["small", "big"]


def test_relu_reduction_by_hand(res):
    assert m.relu_reduction(res["runs"]["small-relu"]) == pytest.approx(1 - 0.1 / 0.4)


def test_table_and_verdict_follow_the_data(res):
    t = m.table_fig2(res)
    # Top-k at PPL ratio 1.01: between (1.005, 0.3) and (1.5, 0.15); FAT between (1.001, 0.35) and (1.2, 0.15)
    assert t["Top-k (per token) (% active)"].iloc[0] == pytest.approx(100 * (0.3 - 0.15 * 0.005 / 0.495))
    assert t["FAT-ε (% active)"].iloc[0] == pytest.approx(100 * (0.35 - 0.2 * 0.009 / 0.199))
    assert set(t["Top-k (per token) vs CETT"]) == {"more"}
    assert "keeps fewer neurons than both" in m.fig2_verdict(t, "small")
    t.loc[1, "FAT-ε vs CETT"] = "unranked"
    assert m.fig2_verdict(t, "small").startswith("the sweeps are too coarse")
    t.loc[1, "FAT-ε vs CETT"] = "fewer"
    v = m.fig2_verdict(t, "small")
    assert v.startswith("CETT does not keep the fewest") and "FAT-ε on small SiLU (keeps fewer)" in v


def test_numbers_and_figures(res):
    out = m.numbers(res)
    assert out["relu_cut"] == "75%" and "larger than the paper" in out["relu_cut_vs_paper"]
    assert out["relu_loss"] == f"{math.log(30.0):.3f}" and out["relu_dense_ppl"] == "30.00"
    assert out["fig1_relu_active"] == "50%" and out["fig1_relu_zero"] == "1"
    assert out["scales"] == "small, big" and out["n_runs"] == "4"
    for f in (m.fig1, m.fig2, m.fig15):
        assert isinstance(f(res), Figure)


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
    with pytest.raises(ValueError, match="scale='mini-1x1' is not valid"):
        m.results("replay", scale="mini-1x1")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_full_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        m.results("full")


def test_describe_and_versus_in_words():
    assert m.describe(m.at_ppl_ratio(CURVE, 1.01)) == "26.7%"
    assert m.describe(m.at_ppl_ratio(CURVE, 1.2)).startswith("less than 10.0%")
    assert m.describe(m.at_ppl_ratio(CURVE, 0.99)).startswith("more than 50.0%")
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
    from sparsing_lib.train import ProbeConfig, TrainConfig

    monkeypatch.setattr(
        runner,
        "train_config",
        lambda m_, p: TrainConfig(tokens=20 * 4 * 32, batch_size=4, seq_len=32, n_checkpoints=2, eval_tokens=256,
                                  log_every=5, compile=False),
    )  # fmt: skip
    monkeypatch.setattr(
        runner,
        "probe_config",
        lambda p: ProbeConfig(joint_last=1, tokens=512, domain_tokens=64, token_ratio_tokens=64, batch_size=8,
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
    from sparsing_lib.train import checkpoint_files, load_checkpoint, windows

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
