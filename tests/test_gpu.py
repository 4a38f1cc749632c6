"""CUDA-only paths: the compiled bf16 training step, MoE training with its balancing loss, and the CETT
search on the GPU against the float64 reference. Skipped without CUDA; run on the device with
``python -m pytest -m gpu tests/test_gpu.py``."""

import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

from sparsing_lib import metrics as M  # noqa: E402
from sparsing_lib.models import TINY, ModelSpec, build_model  # noqa: E402
from sparsing_lib.train import (  # noqa: E402
    TrainConfig,
    lm_loss,
    loss_function,
    make_optimizer,
    prepare_model,
    train_step,
)

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
VOCAB = 256


def batch(n=8, t=128, seed=0):
    g = torch.Generator().manual_seed(seed)
    ramp = (torch.arange(t + 1) * 7 + torch.randint(0, 3, (n, t + 1), generator=g)) % VOCAB  # learnable ids
    return ramp.cuda()


def test_compiled_loss_equals_eager_loss_under_bf16_autocast():
    model = build_model(TINY, "relu", VOCAB).cuda()
    x = batch()
    eager = lm_loss(model, x[:, :-1], x[:, 1:])
    compiled = torch.compile(lm_loss)(model, x[:, :-1], x[:, 1:])
    assert torch.isfinite(eager) and abs(compiled.item() - eager.item()) < 1e-2 * eager.item()


def test_chunked_loss_and_causal_attention_match_the_default_compiled_step_in_bf16():
    model = build_model(TINY, "relu", VOCAB).cuda()
    x = batch()

    def loss_and_grads(cfg):
        torch._dynamo.reset()
        model.zero_grad(set_to_none=True)
        loss = loss_function(cfg, compiled=True)(model, x[:, :-1], x[:, 1:])
        loss.backward()
        return loss.item(), torch.cat([p.grad.flatten() for p in model.parameters()])

    want, want_grad = loss_and_grads(TrainConfig(tokens=1))
    fast = TrainConfig(tokens=1, loss_chunk=300, causal_attention=True)  # 1,024 tokens: 4 chunks, the last of 124
    prepare_model(model, fast)
    got, got_grad = loss_and_grads(fast)
    assert abs(got - want) < 2e-3 * want  # bf16 logits rounded in another order
    assert torch.nn.functional.cosine_similarity(got_grad, want_grad, dim=0) > 0.999


@pytest.mark.parametrize("experts", [8, 60])
def test_moe_trains_on_cuda_with_its_balancing_loss(experts):
    spec = ModelSpec("t-moe", 64, 2, kind="moe", head_dim=16, n_experts=experts, top_k=experts // 4)
    model = build_model(spec, "relu", VOCAB).cuda()
    opt = make_optimizer(model, TrainConfig(tokens=1), fused=True)
    x = batch()
    model.eval()
    plain = lm_loss(model, x[:, :-1], x[:, 1:])
    model.train()
    assert lm_loss(model, x[:, :-1], x[:, 1:]) > plain  # the balancing loss is added in training
    losses = [train_step(model, lm_loss, opt, x[:, :-1], x[:, 1:], 1.0)[0].item() for _ in range(30)]
    assert np.isfinite(losses).all() and losses[-1] < losses[0] - 0.5


def test_cett_thresholds_on_cuda_match_the_float64_reference():
    model = R.tiny_model("granite", "silu")
    ids = R.sampled_text(model)
    layers = R.capture(model, ids)
    got = M.cett_thresholds(model.cuda(), ids.cuda(), 0.2)
    for t, layer in zip(got, layers):
        assert abs(R.cett(layer, t) - 0.2) < 3e-3
