"""End-of-run probes on checkpoints a toy run saved: the joint CETT search and its readings for a dense
run, PPL against the number of routed experts for an MoE run."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sparsing_lib.models import TINY, build_model
from sparsing_lib.probes import ProbeConfig, probe_checkpoints, probe_moe_checkpoints, set_top_k
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
        token_ratio_tokens=100,
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
    assert freq["frequency"].shape == (6, 2, TINY.n_layers, TINY.d_ff) and list(freq["domains"]) == ["x", "y"]
    assert np.load(tmp_path / "token_ratios.npz")["token_ratios"].shape == (6, 100)
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
