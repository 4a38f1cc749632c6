import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

from sparsing_lib.capture import Hooks, ffn_layers, run  # noqa: E402

FAMILIES = ["llama", "granite", "gpt2", "gpt_neox", "opt"]


@pytest.mark.parametrize("family", FAMILIES)
def test_capture_matches_reference_and_respects_padding(family):
    model = R.tiny_model(family, "silu" if family == "llama" else "relu")
    ids = torch.randint(0, 48, (3, 10))
    mask = torch.ones_like(ids)
    mask[0, 7:] = 0  # right padding
    mask[2, :3] = 0  # left padding
    ref = R.capture(model, ids, mask)
    got = [dict() for _ in ffn_layers(model)]

    def watch(i, a, s, y):
        got[i].update(a=a.double().numpy(), s=s.double().numpy(), y=y.double().numpy())

    seen = []
    run(model, Hooks(model, watch=lambda i, a, s, y: seen.append(a.shape[0])), ids, mask, max_tokens=20)
    assert seen == [int(mask[:2].sum())] * 2 + [int(mask[2:].sum())] * 2  # 2 rows per pass, 2 layers
    run(model, Hooks(model, watch=watch), ids, mask)
    for g, r, f in zip(got, ref, ffn_layers(model)):
        assert g["a"].shape[0] == int(mask.sum())
        np.testing.assert_allclose(g["a"], r["a"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g["s"], r["s"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(g["y"], r["y"], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(f.weight().detach().double().numpy(), r["w"])


def test_edit_changes_output_and_loss_counts_only_real_pairs():
    model = R.tiny_model("llama")
    ids = torch.randint(0, 48, (2, 8))
    mask = torch.ones_like(ids)
    mask[1, 5:] = 0
    nll, count = run(model, Hooks(model), ids, mask)
    assert count == 7 + 4
    nll0, _ = run(model, Hooks(model, edit=lambda i, a, s: torch.zeros_like(a)), ids, mask)
    assert nll0 != pytest.approx(nll)


def test_unsupported_model_names_supported_families():
    cfg = tf.BloomConfig(vocab_size=32, hidden_size=16, n_layer=1, n_head=2)
    with pytest.raises(ValueError, match="supported: .*llama.*ADAPTERS"):
        ffn_layers(tf.BloomForCausalLM(cfg))


def test_empty_and_all_padding_inputs_are_rejected():
    model = R.tiny_model("gpt2")
    with pytest.raises(ValueError, match="empty or all padding"):
        run(model, Hooks(model), torch.zeros((0, 5), dtype=torch.long))
    ids = torch.randint(0, 48, (2, 5))
    with pytest.raises(ValueError, match="empty or all padding"):
        run(model, Hooks(model), ids, torch.zeros_like(ids))


def test_nan_activations_are_rejected():
    model = R.tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="NaN or inf"):
        run(model, Hooks(model, watch=lambda *x: None), torch.randint(0, 48, (1, 6)))


def test_deferred_nan_check_raises_when_the_hooks_exit():
    """With ``defer_checks`` the forward runs through (no host read per layer) and the error comes at exit."""
    model = R.tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.up_proj.weight[0, 0] = float("nan")
    seen = []
    with pytest.raises(FloatingPointError, match="layer 1: FFN activations contain NaN or inf"):
        with Hooks(model, watch=lambda i, a, s, y: seen.append(i), defer_checks=True) as hooks:
            model(input_ids=torch.randint(0, 48, (1, 6)))
            assert seen == [0, 1]
            with pytest.raises(FloatingPointError, match="layer 1"):
                hooks.check()
    model = R.tiny_model("llama")
    with Hooks(model, watch=lambda *x: None, defer_checks=True):  # finite: exits quietly
        model(input_ids=torch.randint(0, 48, (1, 6)))
