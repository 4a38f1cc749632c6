"""Trainer: schedule, muP groups, deterministic batches, exact resume, divergence record, probes."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sparsing_lib.models import TINY, ModelSpec, build_model
from sparsing_lib.train import (
    Batches,
    ProbeConfig,
    TrainConfig,
    checkpoint_files,
    lm_loss,
    make_optimizer,
    probe_checkpoints,
    probe_moe_checkpoints,
    set_top_k,
    train,
)

VOCAB = 64


TINY_MOE = ModelSpec("tiny-moe", 32, 2, kind="moe", head_dim=16, n_experts=8, top_k=2)


def corpus(n=40_000, seed=0):
    """Token ids with learnable structure: a noisy repeating ramp."""
    rng = np.random.default_rng(seed)
    ids = (np.arange(n) * 7 + rng.integers(0, 3, n)) % VOCAB
    return ids.astype(np.uint16)


def small_cfg(**kw):
    base = dict(
        tokens=60 * 8 * 32,
        batch_size=8,
        seq_len=32,
        n_checkpoints=25,
        eval_tokens=1024,
        log_every=5,
        compile=False,
        lr=0.01,
    )
    return TrainConfig(**(base | kw))


def test_derived_steps_warmup_and_checkpoints_in_stable_phase():
    cfg = TrainConfig(tokens=10_000 * 64 * 1024, decay_frac=0.1)
    assert cfg.steps == 10_000 and cfg.warmup_steps == 100 and cfg.decay_steps == 1000
    ck = cfg.checkpoint_steps
    assert len(ck) == 30 and ck[0] == 100 and ck[-1] == 9000


def test_wsd_schedule_and_mup_groups():
    model = build_model(TINY, "relu", VOCAB)
    cfg = small_cfg(tokens=200 * 8 * 32, decay_frac=0.2)
    from transformers import get_wsd_schedule

    opt = make_optimizer(model, cfg, fused=False)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([0.01 / (32 / 256), 0.01, 0.01])
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.1, 0.0]
    assert opt.defaults["betas"] == (0.9, 0.95)
    sched = get_wsd_schedule(opt, cfg.warmup_steps, cfg.decay_steps, num_training_steps=cfg.steps, decay_type="linear")
    lrs = []
    for _ in range(cfg.steps):
        lrs.append(sched.get_last_lr()[1])
        opt.step(), sched.step()
    assert lrs[0] < 0.01 and lrs[cfg.warmup_steps] == pytest.approx(0.01)
    stable = lrs[cfg.warmup_steps : cfg.steps - cfg.decay_steps]
    assert np.allclose(stable, 0.01)
    decay = lrs[cfg.steps - cfg.decay_steps :]
    assert all(a > b for a, b in zip(decay, decay[1:])) and decay[-1] < 0.001


def test_batches_visit_every_window_once_per_epoch_and_are_reproducible():
    ids = np.arange(8 * 33 + 1).astype(np.uint16)
    b = Batches(ids, seq_len=8, batch_size=3, seed=5, device=torch.device("cpu"))
    assert b.n_windows == 33
    starts = torch.cat([b(s)[0][:, 0] for s in range(11)])
    assert sorted(starts.tolist()) == list(range(0, 33 * 8, 8))
    x, y = b(4)
    assert torch.equal(x[:, 1:], y[:, :-1])
    again = Batches(ids, 8, 3, 5, torch.device("cpu"))
    assert torch.equal(again(12)[0], b(12)[0])  # crosses into epoch 1 identically


def test_train_lowers_loss_writes_metrics_and_checkpoints(tmp_path):
    torch.manual_seed(0)
    model = build_model(TINY, "relu", VOCAB)
    cfg = small_cfg()
    s = train(model, corpus(), corpus(5000, 1), cfg, out_dir=tmp_path / "run", ckpt_dir=tmp_path / "ck", progress=False)
    assert s["status"] == "done" and s["tokens"] == cfg.steps * cfg.tokens_per_step
    assert s["epochs"] == pytest.approx(cfg.steps * 8 / ((40_000 - 1) // 32))
    m = pd.read_csv(tmp_path / "run" / "metrics.csv")
    val = m["val_loss"].dropna()
    assert len(val) == len(cfg.checkpoint_steps) >= 25
    assert val.iloc[-1] < val.iloc[0] - 0.5 and m["train_loss"].iloc[-1] < math.log(VOCAB)
    assert [s for s, _ in checkpoint_files(tmp_path / "ck")] == cfg.checkpoint_steps


def test_paused_run_resumes_to_identical_weights(tmp_path):
    cfg = small_cfg(tokens=40 * 8 * 32)
    full = build_model(TINY, "silu", VOCAB)
    train(full, corpus(), corpus(5000, 1), cfg, ckpt_dir=tmp_path / "a", progress=False)
    part = build_model(TINY, "silu", VOCAB)
    s = train(part, corpus(), corpus(5000, 1), cfg, ckpt_dir=tmp_path / "b", time_limit=0.0, progress=False)
    assert s["status"] == "paused" and s["step"] < cfg.steps
    resumed = build_model(TINY, "silu", VOCAB, seed=123)  # different init: everything must come from state.pt
    s = train(resumed, corpus(), corpus(5000, 1), cfg, ckpt_dir=tmp_path / "b", progress=False)
    assert s["status"] == "done"
    for (n, p), q in zip(full.named_parameters(), resumed.parameters()):
        assert torch.allclose(p, q, atol=1e-6), n


def test_divergence_stops_with_a_record(tmp_path):
    model = build_model(TINY, "relu", VOCAB)
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(float("nan"))
    s = train(model, corpus(), corpus(5000, 1), small_cfg(), out_dir=tmp_path, progress=False)
    assert s["status"] == "diverged"
    assert not np.isfinite(pd.read_csv(tmp_path / "metrics.csv")["train_loss"].iloc[-1])


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


def switch_balancing_loss(router_inputs, weights, top_k):
    """float64 reference: n_experts x sum over experts of (share of top-k picks) x (mean router probability),
    over every token of every layer."""
    probs = [torch.softmax(x.double() @ w.double().T, -1) for x, w in zip(router_inputs, weights)]
    probs = torch.cat(probs)
    picks = torch.zeros_like(probs).scatter_(1, probs.topk(top_k, -1).indices, 1.0)
    return probs.shape[1] * (picks.mean(0) * probs.mean(0)).sum().item()


def test_moe_training_loss_adds_the_load_balancing_loss():
    model = build_model(TINY_MOE, "relu", VOCAB)
    x = torch.from_numpy(corpus(2 * 33).astype(np.int64)).view(2, 33)
    routers = [layer.block_sparse_moe.router for layer in model.model.layers]
    inputs = []
    for r in routers:
        r.register_forward_pre_hook(lambda module, args: inputs.append(args[0].detach()))
    model.eval()
    plain = lm_loss(model, x[:, :-1], x[:, 1:])
    inputs.clear()
    model.train()
    trained = lm_loss(model, x[:, :-1], x[:, 1:])
    balance = switch_balancing_loss(inputs, [r.weight.detach() for r in routers], TINY_MOE.top_k)
    assert model.config.router_aux_loss_coef == 0.01 and balance > 0
    assert trained.item() == pytest.approx(plain.item() + 0.01 * balance, abs=1e-5)


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
