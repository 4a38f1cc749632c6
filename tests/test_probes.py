"""End-of-run probes on checkpoints a toy run saved: the joint CETT search and its readings for a dense
run, PPL against the number of routed experts for an MoE run, and the per-vocabulary ratios."""

import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sparsing_lib import metrics, run, runs
from sparsing_lib.models import TINY, build_model
from sparsing_lib.probes import (
    ProbeConfig,
    VocabAccumulator,
    probe_checkpoints,
    probe_moe_checkpoints,
    set_top_k,
    vocab_probe_windows,
    vocab_ratios,
)
from sparsing_lib.train import lm_loss, train

sys.path.insert(0, str(Path(__file__).parent))
from toy import TINY_MOE, VOCAB, corpus, small_cfg  # noqa: E402


@pytest.mark.slow
def test_probes_write_joint_cett_results(tmp_path):
    cfg = small_cfg(n_checkpoints=6)
    model = build_model(TINY, "relu", VOCAB)
    train(model, corpus(), corpus(5000, 1), cfg, ckpt_dir=tmp_path / "ck", progress=False)
    pc = ProbeConfig(
        joint_last=3,
        tokens=512,
        domain_tokens=128,
        vocab_tokens=3000,
        batch_size=16,
        topk_values=[0.3],
        fat_values=[0.0, 2.0],
        curve_last=2,
        cett_values=[0.05, 0.5],
    )
    doms = {"x": corpus(1000, 2), "y": corpus(1000, 3)}
    df = probe_checkpoints(
        lambda: build_model(TINY, "relu", VOCAB),
        tmp_path / "ck",
        tmp_path,
        corpus(5000, 1),
        doms,
        cfg.seq_len,
        cfg.tokens_per_step,
        pc,
        progress=False,
    )
    assert len(df) == len(cfg.checkpoint_steps) and df["cett"].nunique() == 1
    last = df.tail(3)  # the joint search targets a 1% PPL increase on average over the last checkpoints
    assert abs(last["ppl_ratio"].mean() - 1.01) < 0.01
    assert ((df["activation_ratio"] > 0) & (df["activation_ratio"] <= df["zero_ratio"] + 1e-9)).all()
    freq = np.load(tmp_path / "neuron_frequency.npz")
    assert freq["frequency"].shape == (3, 2, TINY.n_layers, TINY.d_ff) and list(freq["domains"]) == ["x", "y"]
    vr = np.load(tmp_path / "vocab_ratios.npz")  # 1500 per domain: 31 windows of 32 each, no training split given
    assert vr["mean"].shape == (3, VOCAB) and vr["count"].sum() == 2 * 31 * 32 and vr["count"].dtype == np.int32
    assert vr["steps"].tolist() == freq["steps"].tolist() == [cfg.checkpoint_steps[i] for i in (0, 2, 5)]
    par = pd.read_csv(tmp_path / "pareto.csv")
    steps = cfg.checkpoint_steps
    assert set(par.step) == set(steps[-2:])  # the sweeps run on the last two checkpoints only
    for step in steps[-2:]:
        cur = par[par.step == step]
        cett = cur[cur.method == "cett"].set_index("value")
        assert list(cett.index) == [0.05, 0.5] and sorted(cur[cur.method == "fat"]["value"]) == [0.0, 2.0]
        assert cett.loc[0.5, "activation_ratio"] < cett.loc[0.05, "activation_ratio"]  # larger CETT, sparser
        assert cett.loc[0.5, "ppl_ratio"] > 1.0


def test_set_top_k_changes_routing_and_rejects_bad_k():
    model = build_model(TINY_MOE, "relu", VOCAB).eval()
    x = torch.from_numpy(corpus(64).astype(np.int64)).view(2, 32)
    before = lm_loss(model, x[:, :-1], x[:, 1:])
    set_top_k(model, 8)
    assert all(layer.block_sparse_moe.router.top_k == 8 for layer in model.model.layers)
    assert not torch.allclose(lm_loss(model, x[:, :-1], x[:, 1:]), before)
    with pytest.raises(ValueError, match="between 1 and the 8 experts"):
        set_top_k(model, 9)


def test_moe_probes_write_loss_per_checkpoint_and_ppl_per_expert_count(tmp_path):
    cfg = small_cfg(n_checkpoints=4, tokens=20 * 8 * 32)
    model = build_model(TINY_MOE, "relu", VOCAB)
    train(model, corpus(), corpus(5000, 1), cfg, ckpt_dir=tmp_path / "ck", progress=False)
    df = probe_moe_checkpoints(
        lambda: build_model(TINY_MOE, "relu", VOCAB),
        tmp_path / "ck",
        tmp_path,
        corpus(2048, 1),
        cfg.seq_len,
        cfg.tokens_per_step,
        batch_size=16,
        progress=False,
    )
    assert list(df["step"]) == cfg.checkpoint_steps and (df["activation_ratio"] == 2 / 8).all()
    assert df["loss"].iloc[-1] < df["loss"].iloc[0] and np.allclose(df["ppl"], np.exp(df["loss"]))
    par = pd.read_csv(tmp_path / "pareto.csv")
    assert list(par["value"]) == [1, 2, 3, 4] and (par["step"] == cfg.checkpoint_steps[-1]).all()
    assert np.allclose(par["activation_ratio"], par["value"] / 8)
    assert par.set_index("value").loc[2, "ppl_ratio"] == pytest.approx(1.0)  # the trained top-k is the reference
    assert par.set_index("value").loc[1, "ppl_ratio"] > 1.0


# ----------------------------------------------------------------------------- per-vocabulary ratios


def test_vocab_accumulator_averages_every_occurrence_of_an_id():
    acc = VocabAccumulator(10)
    acc.add(torch.tensor([0.1, 0.3, 0.2]), torch.tensor([5, 7, 5]))
    acc.add(torch.tensor([[0.4, 0.6]]), torch.tensor([[7, 9]]))  # a second batch adds to the same sums
    mean, count = acc.result()
    assert mean[[5, 7, 9]] == pytest.approx([0.15, 0.35, 0.6]) and np.isnan(np.delete(mean, [5, 7, 9])).all()
    assert count.tolist() == [0, 0, 0, 0, 0, 2, 0, 2, 0, 1] and count.sum() == 5
    with pytest.raises(ValueError, match=r"token ids must lie in \[0, 10\)"):
        acc.add(torch.tensor([1.0]), torch.tensor([10]))


def test_vocab_probe_windows_take_equal_validation_shares_then_training_tokens():
    val = {"a": np.arange(10, dtype=np.uint16), "b": np.arange(100, 106, dtype=np.uint16)}
    train_ids = np.arange(1000, 1100, dtype=np.uint16)
    # share 20 // 2 = 10: a gives 2 windows of 4 (8 tokens), b 1 window (4); the other 8 from the training split
    wins, sources, tokens = vocab_probe_windows(val, train_ids, 20, 4)
    assert sources == ["a", "b", "train"] and tokens == [8, 4, 8] and wins.shape == (5, 4)
    assert wins[2].tolist() == [100, 101, 102, 103] and wins[3].tolist() == [1000, 1001, 1002, 1003]
    _, sources, tokens = vocab_probe_windows(val, None, 20, 4)  # no training split: validation only
    assert sources == ["a", "b"] and tokens == [8, 4]
    with pytest.raises(ValueError, match="whole window"):
        vocab_probe_windows(val, None, 20, 50)


def test_vocab_ratios_equal_the_per_position_ratios_averaged_per_id():
    torch.manual_seed(0)
    model = build_model(TINY, "relu", VOCAB).eval()
    ids = torch.from_numpy(corpus(6 * 32, 4).astype(np.int64) % 7).view(6, 32)  # 7 ids, each repeated many times
    thr = [0.02] * TINY.n_layers
    mean, count = vocab_ratios(model, ids, thr, batch_size=4)  # two batches: the sums carry across them
    per_position = metrics.evaluate(model, ids, thresholds=thr).token_ratios  # one ratio per position, row-major
    flat = ids.reshape(-1).numpy()
    assert count.sum() == ids.numel() and count.tolist() == np.bincount(flat, minlength=VOCAB).tolist()
    for token in range(7):
        assert mean[token] == pytest.approx(per_position[flat == token].mean(), rel=1e-6)
    assert np.isnan(mean[7:]).all() and 0 < np.nanmin(mean) and np.nanmax(mean) < 1


@pytest.mark.slow
def test_the_smoke_grid_records_the_format_2_probes():
    """Every dense run of the cached smoke grid: kept checkpoints, per-domain per-layer frequencies and
    per-vocabulary ratios whose counts add up to the tokens probed."""
    folder = run.smoke_runs()
    for d in sorted(p for p in folder.iterdir() if (p / "vocab_ratios.npz").exists()):
        cfg = json.loads((d / "config.json").read_text())
        assert cfg["format"] == runs.FORMAT
        vr, nf = runs.load_arrays(d, "vocab_ratios"), runs.load_arrays(d, "neuron_frequency")
        steps = pd.read_csv(d / "sparsity.csv").step.to_numpy()
        assert vr["steps"].tolist() == nf["steps"].tolist() == steps[runs.kept_checkpoints(len(steps))].tolist()
        assert vr["count"].sum() == vr["source_tokens"].sum() <= cfg["probe"]["vocab_tokens"]
        m = cfg["model"]
        assert nf["frequency"].shape == (len(vr["steps"]), len(nf["domains"]), m["n_layers"], m["d_ff"])
        seen = vr["count"] > 0
        assert np.isfinite(vr["mean"][:, seen]).all() and np.isnan(vr["mean"][:, ~seen]).all()
        assert ((vr["mean"][:, seen] >= 0) & (vr["mean"][:, seen] <= 1)).all()
