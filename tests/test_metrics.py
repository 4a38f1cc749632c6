import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

from sparsing_lib import metrics as M  # noqa: E402
from sparsing_lib.evaluation.decoding import new_cache  # noqa: E402


@pytest.fixture(scope="module", params=["llama", "gpt2", "opt"])
def setup(request):
    model = R.tiny_model(request.param, "silu" if request.param == "llama" else "relu")
    ids = R.sampled_text(model)
    mask = torch.ones_like(ids)
    mask[0, 18:] = 0
    mask[3, :4] = 0
    return model, ids, mask


def test_evaluate_dense_and_cett_match_reference(setup):
    model, ids, mask = setup
    dense = M.evaluate(model, ids, mask, batch_size=2)
    ref_loss, ref_ratios = R.sparse_eval(model, ids, mask, lambda k, a, s: torch.ones_like(a, dtype=torch.bool))
    assert dense.loss == pytest.approx(ref_loss, abs=1e-5)
    np.testing.assert_allclose(dense.layer_ratios, ref_ratios, atol=1e-12)
    assert dense.token_ratios.shape == (int(mask.sum()),)
    assert dense.activation_ratio == pytest.approx(dense.token_ratios.mean())
    assert dense.neuron_frequency.shape == (2, model.config.vocab_size and dense.neuron_frequency.shape[1])
    np.testing.assert_allclose(dense.neuron_frequency.mean(1), dense.layer_ratios)
    thresholds = M.cett_thresholds(model, ids, 0.3, mask)
    got = M.evaluate(model, ids, mask, thresholds)
    ref_loss, ref_ratios = R.sparse_eval(model, ids, mask, R.cett_rule(model, thresholds))
    assert got.loss == pytest.approx(ref_loss, abs=1e-5)
    np.testing.assert_allclose(got.layer_ratios, ref_ratios, atol=2e-3)  # fp32 vs fp64 ties at t
    assert got.activation_ratio < dense.activation_ratio


@pytest.mark.parametrize(
    "method,value,rule",
    [
        ("fat", 0.05, R.fat_rule(0.05)),
        ("topk_token", 0.25, R.topk_token_rule(0.25)),
    ],
)
def test_fat_and_topk_match_reference(setup, method, value, rule):
    model, ids, mask = setup
    got = M.evaluate(model, ids, mask, method=method, value=value)
    ref_loss, ref_ratios = R.sparse_eval(model, ids, mask, rule)
    assert got.loss == pytest.approx(ref_loss, abs=1e-5)
    np.testing.assert_allclose(got.layer_ratios, ref_ratios, atol=1e-3)


def test_topk_layer_keeps_the_fraction_over_the_batch(setup):
    model, ids, mask = setup
    got = M.evaluate(model, ids, mask, method="topk_layer", value=0.2)
    assert np.allclose(got.layer_ratios, 0.2, atol=0.01)


@pytest.mark.parametrize("p", [0.01, 0.05])
def test_cett_ppl_hits_target_and_matches_reference_loss(p):
    model = R.tiny_model("llama", "relu")
    ids = R.sampled_text(model, n_seq=16)
    res = M.cett_ppl(model, ids, p=p, tol=5e-4)
    assert res.converged and abs(res.mean_ppl_ratio - (1 + p)) <= 5e-4
    dense_loss, _ = R.sparse_eval(model, ids, None, lambda k, a, s: torch.ones_like(a, dtype=torch.bool))
    loss, ratios = R.sparse_eval(model, ids, None, R.cett_rule(model, res.thresholds[0]))
    assert math.exp(loss - dense_loss) == pytest.approx(res.ppl_ratio[0], abs=1e-5)
    assert res.activation_ratio[0] == pytest.approx(np.mean(ratios), abs=2e-3)
    assert res.forward_passes <= 16  # noisy toy PPL curve; ~5 passes on smooth ones (benchmark)


def test_cett_ppl_joint_over_checkpoints():
    models = [R.tiny_model("gpt2", seed=s) for s in (0, 1)]
    ids = R.sampled_text(models[0])
    res = M.cett_ppl(models, ids, p=0.05)
    assert len(res.thresholds) == 2 and len(res.ppl_ratio) == 2
    assert res.mean_ppl_ratio == pytest.approx(np.mean(res.ppl_ratio))
    assert abs(res.mean_ppl_ratio - 1.05) <= 5e-4


def test_pareto_columns_and_zero_threshold(setup):
    model, ids, mask = setup
    df = M.pareto(model, ids, "cett", [0.1, 0.4], mask)
    assert list(df.columns) == ["method", "value", "activation_ratio", "ppl", "ppl_ratio"]
    assert df.activation_ratio.is_monotonic_decreasing
    zero = M.pareto(model, ids, "zero", [], mask)
    assert len(zero) == 1 and zero.ppl_ratio[0] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not one of"):
        M.pareto(model, ids, "magic", [0.1])


def test_sparse_context_manager_records_ratios():
    model = R.tiny_model("gpt_neox")
    ids = R.sampled_text(model, n_seq=2)
    t = M.cett_thresholds(model, ids, 0.2)
    with M.sparse(model, t) as stats:
        model(input_ids=ids)
    assert len(stats.layer_ratios) == 2
    assert stats.activation_ratio == pytest.approx(M.evaluate(model, ids, thresholds=t).activation_ratio)
    dense = model(input_ids=ids).logits  # hooks are gone after the block
    assert torch.equal(dense, model(input_ids=ids).logits)


def test_threshold_set_roundtrip(tmp_path):
    model = R.tiny_model("gpt2")
    ids = R.sampled_text(model, n_seq=2)
    ts = M.ThresholdSet(
        M.model_identity(model), "cett", 0.2, M.cett_thresholds(model, ids, 0.2), ids.numel(), M.data_hash(ids)
    )
    ts.save(tmp_path / "t.json")
    assert M.ThresholdSet.load(tmp_path / "t.json") == ts
    assert "gpt2:L2" in ts.model


@pytest.mark.parametrize("p", [0, -0.01])
def test_bad_p_is_rejected(p):
    with pytest.raises(ValueError, match="p must be > 0"):
        M.cett_ppl(R.tiny_model("gpt2"), torch.randint(0, 48, (1, 8)), p=p)


def test_unreachable_ppl_target_is_rejected():
    model = R.tiny_model("granite")
    ids = R.sampled_text(model)
    with pytest.raises(ValueError, match="unreachable"):
        M.cett_ppl(model, ids, p=5.0)


@pytest.mark.parametrize("method,value", [("dense", None), ("zero", None), ("fat", 0.05), ("topk_layer", 0.2)])
def test_sparsify_matches_evaluate_and_excludes_padding(setup, method, value):
    """One masked forward inside ``sparsify`` sees exactly the tokens and edits that ``evaluate`` sees."""
    model, ids, mask = setup
    want = M.evaluate(model, ids, mask, batch_size=len(ids), method=method, value=value)
    with M.sparsify(model, method, value) as stats:
        model(input_ids=ids, attention_mask=mask)
    np.testing.assert_allclose(stats.layer_ratios, want.layer_ratios, atol=1e-12)
    assert stats.tokens[0] == int(mask.sum())


def test_sparsify_rejects_unknown_method():
    with pytest.raises(ValueError, match="not one of dense"):
        with M.sparsify(R.tiny_model("gpt2"), "magic", 0.1):
            pass


def test_sparsify_reports_nan_activations_when_read_and_at_exit():
    """Inside ``sparsify`` the NaN check waits on the device: a forward runs through, reading the statistics
    raises, and so does leaving the block."""
    model = R.tiny_model("llama")
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight[0, 0] = float("nan")
    with pytest.raises(FloatingPointError, match="layer 0: FFN activations contain NaN or inf"):
        with M.sparsify(model, "topk_token", 0.5) as stats:
            model(input_ids=torch.randint(0, 48, (2, 6)))
            assert stats.tokens == [12, 12]
            with pytest.raises(FloatingPointError, match="NaN or inf"):
                _ = stats.activation_ratio


def test_cached_one_token_step_counts_every_row(setup):
    """A cached step's new mask column is all ones, so its rows are taken as real without reading the mask."""
    model, ids, mask = setup
    _, kw = new_cache(model)
    with M.sparsify(model, "dense") as stats:
        model(input_ids=ids, attention_mask=mask, **kw)
        model(input_ids=ids[:, :1], attention_mask=torch.cat([mask, torch.ones_like(mask[:, :1])], 1), **kw)
    assert stats.tokens[0] == int(mask.sum()) + len(ids)
