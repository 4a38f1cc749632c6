"""Trainer: schedule, muP groups, deterministic batches, exact resume, divergence record, MoE balancing loss."""

import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from sparsing_lib.models import TINY, build_model
from sparsing_lib.probes import checkpoint_files
from sparsing_lib.train import Batches, TrainConfig, lm_loss, make_optimizer, train

sys.path.insert(0, str(Path(__file__).parent))
from toy import TINY_MOE, VOCAB, corpus, small_cfg  # noqa: E402


def test_derived_steps_warmup_and_checkpoints_in_stable_phase_plus_the_last_step_after_a_decay():
    cfg = TrainConfig(tokens=10_000 * 64 * 1024, decay_frac=0.1)
    assert cfg.steps == 10_000 and cfg.warmup_steps == 100 and cfg.decay_steps == 1000 and cfg.stable_end == 9000
    ck = cfg.checkpoint_steps
    assert len(ck) == 31 and ck[0] == 100 and ck[-2] == 9000 and ck[-1] == 10_000  # 30 stable, then the decayed one
    plain = TrainConfig(tokens=10_000 * 64 * 1024)
    assert plain.stable_end == 10_000 and len(plain.checkpoint_steps) == 30 and plain.checkpoint_steps[-1] == 10_000


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
