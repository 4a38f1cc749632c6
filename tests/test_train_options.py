"""Trainer speed options: the chunked cross-entropy against a literal float64 reference and against the full-logits
loss, causal SDPA without a mask tensor, both under torch.compile and in a training run."""

import math
import shutil
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from transformers import GPT2Config, GPT2LMHeadModel

from sparsing_lib.models import TINY, build_model, tiny_llama
from sparsing_lib.train import (
    CAUSAL_ATTENTION,
    TrainConfig,
    chunked_cross_entropy,
    lm_loss,
    loss_function,
    prepare_model,
    train,
    use_causal_attention,
)

sys.path.insert(0, str(Path(__file__).parent))
from toy import TINY_MOE, VOCAB, corpus, small_cfg  # noqa: E402


def reference_loss(hidden, weight, targets, scaling):
    """float64, one token at a time: the mean over kept tokens of log-sum-exp(z) - z[target] for the logits
    z = W h / scaling, with the gradients (softmax(z) - one-hot) / scaling pushed back through z."""
    h, w = hidden.double(), weight.double()
    loss, kept = 0.0, 0
    grad_h, grad_w = torch.zeros_like(h), torch.zeros_like(w)
    for i, t in enumerate(targets.tolist()):
        if t == -100:
            continue
        z = w @ h[i] / scaling
        lse = z.max() + torch.log(torch.exp(z - z.max()).sum())
        loss += (lse - z[t]).item()
        g = torch.exp(z - lse)
        g[t] -= 1
        grad_h[i] = w.T @ g / scaling
        grad_w += torch.outer(g, h[i]) / scaling
        kept += 1
    return loss / kept, grad_h / kept, grad_w / kept


def chunked_with_grads(hidden, weight, targets, scaling, chunk, reduction="mean"):
    h, w = hidden.clone().requires_grad_(), weight.clone().requires_grad_()
    loss = chunked_cross_entropy(h, w, targets, scaling, chunk, reduction)
    loss.backward()
    return loss, h.grad, w.grad


def test_chunked_loss_on_hand_computed_numbers():
    # logits of the kept token: [0, 2 ln 3] / 2 = [0, ln 3], softmax [1/4, 3/4]; loss ln 4 (the second is ignored)
    hidden, weight = torch.tensor([[1.0], [5.0]]), torch.tensor([[0.0], [2 * math.log(3)]])
    loss, gh, gw = chunked_with_grads(hidden, weight, torch.tensor([0, -100]), scaling=2.0, chunk=1)
    assert loss.item() == pytest.approx(math.log(4))
    assert gh[:, 0].tolist() == pytest.approx([0.75 * math.log(3), 0.0])  # (3/4) x 2 ln 3 / 2
    assert gw[:, 0].tolist() == pytest.approx([-0.375, 0.375])  # (1/4 - 1, 3/4) x h / 2


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-12), (torch.float32, 2e-6)])
@pytest.mark.parametrize("chunk", [1, 5, 64])
def test_chunked_loss_and_gradients_match_the_float64_reference(dtype, tol, chunk):
    g = torch.Generator().manual_seed(0)
    hidden, weight = torch.randn(23, 6, generator=g, dtype=dtype), torch.randn(11, 6, generator=g, dtype=dtype)
    targets = torch.randint(0, 11, (23,), generator=g)
    targets[[2, 9, 22]] = -100
    want, want_h, want_w = reference_loss(hidden, weight, targets, scaling=1.75)
    loss, gh, gw = chunked_with_grads(hidden, weight, targets, 1.75, chunk)
    assert loss.dtype == dtype and gh.dtype == dtype and gw.dtype == dtype
    assert loss.item() == pytest.approx(want, rel=tol)
    assert torch.allclose(gh.double(), want_h, rtol=tol, atol=tol) and gh[[2, 9, 22]].abs().max() == 0
    assert torch.allclose(gw.double(), want_w, rtol=tol, atol=tol)
    total, gh_sum, _ = chunked_with_grads(hidden, weight, targets, 1.75, chunk, reduction="sum")
    assert total.item() == pytest.approx(want * 20, rel=tol) and torch.allclose(gh_sum, gh * 20, rtol=tol, atol=tol)
    with torch.no_grad():  # the path without gradients gives the same number, as F.cross_entropy does
        plain = F.cross_entropy(hidden @ weight.T / 1.75, targets)
        assert chunked_cross_entropy(hidden, weight, targets, 1.75, chunk).item() == pytest.approx(
            plain.item(), rel=tol
        )
    with pytest.raises(ValueError, match="reduction='none' is not valid"):
        chunked_cross_entropy(hidden, weight, targets, reduction="none")


def grads_of(model, loss):
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("family", ["granite", "granite-moe", "llama"])
def test_lm_loss_chunked_equals_the_full_logits_loss_with_its_gradients(family):
    model = {
        "granite": lambda: build_model(TINY, "relu", VOCAB),
        "granite-moe": lambda: build_model(TINY_MOE, "silu", VOCAB),  # in training mode: with its balancing loss
        "llama": lambda: tiny_llama(VOCAB).train(),
    }[family]()
    assert family == "llama" or model.config.logits_scaling == 32 / 256  # muP: logits divided by d / 256
    x = torch.from_numpy(corpus(3 * 21).astype("int64")).view(3, 21)
    want = lm_loss(model, x[:, :-1], x[:, 1:])
    want_grads = grads_of(model, want)
    got = lm_loss(model, x[:, :-1], x[:, 1:], loss_chunk=7)  # 60 tokens: 8 chunks, the last of 4
    got_grads = grads_of(model, got)
    assert got.item() == pytest.approx(want.item(), rel=1e-6)
    assert got_grads.keys() == want_grads.keys()
    for name, g in want_grads.items():
        assert torch.allclose(got_grads[name], g, rtol=1e-4, atol=1e-6 * g.abs().max().item()), name
    total = lm_loss(model, x[:, :-1], x[:, 1:], reduction="sum")  # (an MoE adds its balancing loss once)
    assert lm_loss(model, x[:, :-1], x[:, 1:], reduction="sum", loss_chunk=16).item() == pytest.approx(total.item())


def test_chunked_loss_refuses_a_model_whose_logits_it_does_not_know():
    gpt2 = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=VOCAB, n_positions=32))
    x = torch.randint(0, VOCAB, (2, 9))
    with pytest.raises(ValueError, match="the chunked loss knows the logits of .* not gpt2"):
        lm_loss(gpt2, x[:, :-1], x[:, 1:], loss_chunk=4)


def sdpa_calls(fn, *args):
    """The keyword arguments of every SDPA call in the graph torch.compile traces for ``fn(*args)``."""
    calls = []

    def backend(gm, example_inputs):
        calls.extend(n.kwargs for n in gm.graph.nodes if "scaled_dot_product" in str(n.target))
        return gm.forward

    torch._dynamo.reset()
    torch.compile(fn, backend=backend)(*args)
    return calls


def test_causal_attention_is_the_same_attention_without_a_mask_tensor():
    model = build_model(TINY, "relu", VOCAB)
    x = torch.from_numpy(corpus(2 * 17).astype("int64")).view(2, 17)
    want = lm_loss(model, x[:, :-1], x[:, 1:]).item()
    masked = sdpa_calls(lm_loss, model, x[:, :-1], x[:, 1:])  # why the option exists: compile builds a mask
    assert len(masked) == 2 and all(c["attn_mask"] is not None and not c["is_causal"] for c in masked)
    assert use_causal_attention(model) == "sdpa" and model.config._attn_implementation == CAUSAL_ATTENTION
    causal = sdpa_calls(lm_loss, model, x[:, :-1], x[:, 1:])
    assert len(causal) == 2 and all(c["attn_mask"] is None and c["is_causal"] for c in causal)
    assert lm_loss(model, x[:, :-1], x[:, 1:]).item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="whole unpadded sequences only"):
        model(input_ids=x, attention_mask=torch.ones_like(x))
    model.set_attn_implementation("sdpa")
    assert model(input_ids=x, attention_mask=torch.ones_like(x)).logits.shape == (2, 17, VOCAB)


@pytest.mark.slow
@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on CPU needs a C compiler")
def test_compiled_step_with_both_options_matches_the_eager_default():
    model = build_model(TINY, "relu", VOCAB)
    x = torch.from_numpy(corpus(4 * 33).astype("int64")).view(4, 33)
    want = lm_loss(model, x[:, :-1], x[:, 1:])
    want_grads = grads_of(model, want)
    cfg = TrainConfig(tokens=1, loss_chunk=40, causal_attention=True)  # compile mode default
    prepare_model(model, cfg)
    torch._dynamo.reset()
    explained = torch._dynamo.explain(loss_function(cfg, compiled=False))(model, x[:, :-1], x[:, 1:])
    assert explained.graph_count == 1 and explained.graph_break_count == 0
    got = loss_function(cfg, compiled=True)(model, x[:, :-1], x[:, 1:])
    got_grads = grads_of(model, got)
    assert got.item() == pytest.approx(want.item(), rel=1e-5)
    for name, g in want_grads.items():
        assert torch.allclose(got_grads[name], g, rtol=1e-3, atol=1e-5 * g.abs().max().item()), name


def test_training_with_both_options_follows_the_default_run(tmp_path):
    # 10 steps: later, float32 rounding is amplified by training (at step 20 two chunk sizes differ by 1e-3 in
    # train loss, as much as either differs from the default), which would test the toy's chaos, not the loss
    cfg = small_cfg(tokens=10 * 8 * 32, n_checkpoints=2)
    runs = {}
    for name, options in (("default", {}), ("options", dict(loss_chunk=50, causal_attention=True))):
        model = build_model(TINY, "relu", VOCAB)
        train(model, corpus(), corpus(5000, 1), TrainConfig(**(vars(cfg) | options)), out_dir=tmp_path / name)
        assert model.config._attn_implementation == "sdpa"  # restored after training
        runs[name] = pd.read_csv(tmp_path / name / "metrics.csv")
    a, b = runs["default"], runs["options"]
    assert len(a) == len(b) == 3 and a["train_loss"].iloc[-1] < a["train_loss"].iloc[0] - 3
    assert ((b["train_loss"] - a["train_loss"]).abs() / a["train_loss"]).max() < 1e-5
    assert a["val_loss"].notna().sum() == 2 and ((b["val_loss"] - a["val_loss"]).abs() / a["val_loss"]).max() < 1e-4
