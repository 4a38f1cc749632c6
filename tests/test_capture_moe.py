"""The capture layer on a mixture of experts (GraniteMoe, the MoE minis' class): ``capture.ExpertNeurons``
against transformers' own per-expert forward, against a float64 MoE layer written out here by hand, and against
the MoE probe's reading of the same model on the same text."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from sparsing_lib import metrics, models, probes
from sparsing_lib.capture import ExpertNeurons, Hooks, ffn_layers
from sparsing_lib.train import checkpoint_path, windows

VOCAB = 64
E, K = 8, 2
SPEC = models.ModelSpec("tiny-moe", 32, 2, kind="moe", head_dim=16, n_experts=E, top_k=K)  # 8 experts of 16 neurons
D = SPEC.d_ff


def tiny_moe(act: str, seed: int = 0) -> torch.nn.Module:
    """A random tiny GraniteMoe in float64 on transformers' eager per-expert loop (the grouped products that
    it uses by default have no float64 kernel)."""
    model = models.build_model(SPEC, act, VOCAB, seed).eval()
    model.set_experts_implementation("eager")
    return model.double()


def hand_layer(moe: torch.nn.Module, x: torch.Tensor, act: str, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """One MoE layer token by token in float64: route to the top-K experts by router logit with softmax weights
    over them (in float32, as the model's router), run each routed expert, zero the neurons whose output norm
    w·|σ(g)·u|·‖D_e[:, i]‖ is under ``threshold``; returns (layer output [T, d], neuron inputs [T, E·D] with zeros
    for non-routed experts)."""
    wr = moe.router.weight.detach().double().numpy()
    gu = moe.experts.gate_up_proj.detach().double().numpy()  # [E, 2D, d]: gate rows, then up rows
    down = moe.experts.down_proj.detach().double().numpy()  # [E, d, D]
    sigma = (lambda z: np.maximum(z, 0.0)) if act == "relu" else (lambda z: z / (1.0 + np.exp(-z)))
    x = x.detach().double().numpy()
    y, a_all = np.zeros_like(x), np.zeros((len(x), E * D))
    for t, xt in enumerate(x):
        logits = (wr @ xt).astype(np.float32)  # GraniteMoe's router works in float32 whatever the model's dtype
        top = sorted(range(E), key=lambda e: -logits[e])[:K]
        w = torch.softmax(torch.from_numpy(logits[top]), 0).double().numpy()  # float32, as the router rounds it
        for e, we in zip(top, w):
            a = we * sigma(gu[e, :D] @ xt) * (gu[e, D:] @ xt)
            a = np.where(np.abs(a) * np.linalg.norm(down[e], axis=0) >= threshold, a, 0.0)
            y[t] += down[e] @ a
            a_all[t, e * D : (e + 1) * D] = a
    return y, a_all


@pytest.mark.parametrize("act", ["silu", "relu"])
@torch.no_grad()
def test_opened_experts_compute_the_transformers_forward_with_the_same_state_dict(act):
    model = tiny_moe(act)
    ids = torch.randint(0, VOCAB, (3, 12), generator=torch.Generator().manual_seed(1))
    ref = model(input_ids=ids).logits
    keys = list(model.state_dict())
    ffns = ffn_layers(model)
    assert all(isinstance(layer.block_sparse_moe.experts.neurons, ExpertNeurons) for layer in model.model.layers)
    assert list(model.state_dict()) == keys and len(ffn_layers(model)) == 2  # opened once, nothing added
    torch.testing.assert_close(model(input_ids=ids).logits, ref, rtol=0, atol=1e-12)
    down = model.model.layers[1].block_sparse_moe.experts.down_proj
    w = ffns[1].weight()
    assert w.shape == (32, E * D)
    assert torch.equal(w[:, 3 * D + 5], down[3, :, 5])  # column e·D + i is neuron i of expert e


@torch.no_grad()
def test_cett_edit_matches_a_float64_moe_layer_written_by_hand():
    model = tiny_moe("relu")
    ids = torch.randint(0, VOCAB, (2, 10), generator=torch.Generator().manual_seed(2))
    norms = []
    ffns = ffn_layers(model)

    def dense_watch(i, a, s, y):
        n = (a.abs() * ffns[i].column_norms().double())[a != 0]
        norms.append(float(n.mean()))  # no neuron sits right at it, as one would at a median

    with Hooks(model, watch=dense_watch):
        model(input_ids=ids)
    thresholds = norms  # a large share of each layer's active neurons fall under their layer's mean
    inputs, outputs, seen = {}, {}, {}
    handles = []
    for i, layer in enumerate(model.model.layers):
        moe = layer.block_sparse_moe
        handles.append(moe.register_forward_pre_hook(lambda m, args, i=i: inputs.__setitem__(i, args[0])))
        handles.append(moe.register_forward_hook(lambda m, args, out, i=i: outputs.__setitem__(i, out)))
    with metrics.sparse(model, thresholds) as stats, Hooks(model, watch=lambda i, a, s, y: seen.__setitem__(i, a)):
        model(input_ids=ids)
    for h in handles:
        h.remove()
    for i, layer in enumerate(model.model.layers):
        y, a = hand_layer(layer.block_sparse_moe, inputs[i].reshape(-1, 32), "relu", thresholds[i])
        np.testing.assert_allclose(outputs[i].reshape(-1, 32).numpy(), y, rtol=0, atol=1e-12)
        np.testing.assert_allclose(seen[i].numpy(), a, rtol=0, atol=1e-12)
        assert stats.layer_ratios[i] == pytest.approx((a != 0).mean(), abs=1e-12)
        assert 0 < (a != 0).mean() < K / E / 1.5  # the edit removed about half of the active neurons


@torch.no_grad()
def test_zeroing_neurons_equals_zeroing_their_down_projection_columns_end_to_end():
    model = tiny_moe("silu", seed=3)
    twin = tiny_moe("silu", seed=3)  # never opened: transformers' own per-expert forward
    drop = [(0, 1, [0, 3, 7]), (0, 5, list(range(D))), (1, 2, [4])]  # (layer, expert, neurons)
    keep = torch.ones(2, E, D, dtype=torch.float64)
    for layer, expert, neurons in drop:
        keep[layer, expert, neurons] = 0.0
        twin.model.layers[layer].block_sparse_moe.experts.down_proj[expert][:, neurons] = 0.0
    ids = torch.randint(0, VOCAB, (2, 9), generator=torch.Generator().manual_seed(4))
    with Hooks(model, edit=lambda i, a, s: a * keep[i].flatten()):
        got = model(input_ids=ids).logits
    torch.testing.assert_close(got, twin(input_ids=ids).logits, rtol=0, atol=1e-12)
    assert not torch.allclose(got, model(input_ids=ids).logits, atol=1e-6)  # the edit mattered


@pytest.mark.parametrize("act", ["silu", "relu"])
def test_dense_activation_ratio_is_the_moe_probes_reading(tmp_path, act):
    """The probe counts every neuron of the K routed experts as active (K/E); the hooks count non-zero inputs of
    the down projection, which is the same for SiLU and lower by the silenced share for ReLU."""
    build = lambda: models.build_model(SPEC, act, VOCAB, seed=5)  # noqa: E731
    model = build().eval()
    torch.save(model.state_dict(), checkpoint_path(tmp_path, 7))
    val = np.random.default_rng(6).integers(0, VOCAB, 6 * 16)
    probes.probe_moe_checkpoints(build, tmp_path, tmp_path, val, 16, tokens_per_step=1, batch_size=4, progress=False)
    probe = pd.read_csv(tmp_path / "sparsity.csv").iloc[0]
    ev = metrics.evaluate(model, windows(val, 16), batch_size=4)
    assert probe["activation_ratio"] == K / E
    assert ev.ppl == pytest.approx(probe["ppl"], rel=1e-5)  # the opened model is the probed function
    if act == "silu":
        assert ev.activation_ratio == probe["activation_ratio"]
        assert ev.layer_ratios == [K / E] * 2
    else:
        assert 0.3 * K / E < ev.activation_ratio < 0.7 * K / E  # about half the routed neurons pass the ReLU
    assert ev.neuron_frequency.shape == (2, E * D) and math.isclose(ev.neuron_frequency.mean(), ev.activation_ratio)
