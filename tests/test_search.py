import math
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import reference as R  # noqa: E402

from sparsing_lib import metrics as M  # noqa: E402
from sparsing_lib.search import Curve, _small_part_fused, cett_sums, small_part, solve_increasing  # noqa: E402

FAMILIES = ["llama", "granite", "gpt2", "gpt_neox", "opt"]


@pytest.fixture(scope="module", params=FAMILIES)
def setup(request):
    model = R.tiny_model(request.param, "silu" if request.param == "granite" else "relu")
    ids = R.sampled_text(model)
    return model, ids, R.capture(model, ids)


def test_cett_sums_match_reference(setup):
    model, ids, layers = setup
    for layer in layers:
        a = torch.from_numpy(layer["a"]).float()
        w = torch.from_numpy(layer["w"]).float()
        y = torch.from_numpy(layer["y"]).float()
        col = w.norm(dim=0)
        norms = np.unique(np.abs(layer["a"]) * np.linalg.norm(layer["w"], axis=0))
        idx = (np.array([0.1, 0.5, 0.8, 0.95]) * (len(norms) - 1)).astype(int)
        ts = torch.tensor((norms[idx] + norms[idx + 1]) / 2)  # midway between norms: no ties at the boundary
        got = (cett_sums(a, w, y.norm(dim=1), col, ts) / len(a)).numpy()
        want = [R.cett(layer, float(t)) for t in ts]
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("target", [0.05, 0.2, 0.5])
def test_thresholds_reproduce_target_cett(setup, target):
    model, ids, layers = setup
    got = M.cett_thresholds(model, ids, target)
    for t, layer in zip(got, layers):
        assert abs(R.cett(layer, t) - target) < 3e-3  # the fast threshold hits the target CETT
        exact = R.threshold(layer, target)  # and agrees with the exact float64 search in activity
        col = np.linalg.norm(layer["w"], axis=0)
        norms = np.abs(layer["a"]) * col
        assert abs(np.mean(norms >= t) - np.mean(norms >= exact)) < 0.01


def test_curve_monotone_and_activation_monotone_in_cett(setup):
    model, ids, layers = setup
    curves = M.cett_curves(model, ids)
    for c in curves.curves:
        assert np.all(np.diff(c.thresholds) > 0)
        assert np.all(np.diff(c.cett) >= -1e-6)  # CETT(t) nondecreasing on the grid
    values = np.linspace(0, 0.9, 10)
    ts = np.array([curves.thresholds(v) for v in values])
    assert np.all(np.diff(ts, axis=0) >= 0)
    ratios = [M.evaluate(model, ids, thresholds=t).activation_ratio for t in ts[::3]]
    assert np.all(np.diff(ratios) <= 0) and ratios[0] > ratios[-1]


def test_curve_inversion_edge_cases():
    c = Curve(np.array([0.0, 1.0, 2.0, 3.0]), np.array([0.0, 0.2, 0.2, 0.6]))
    assert c.threshold(0.2) == 2.0  # largest t on a plateau
    assert c.threshold(0.0) == 0.0
    assert c.threshold(1.0) == math.inf
    assert c.threshold(0.7) == 3.0
    assert 2.0 < c.threshold(0.4) < 3.0


def test_solver_reaches_tolerance_quickly_and_detects_unreachable():
    res = solve_increasing(lambda x: 1 + 0.3 * x**1.7, 1.01, 1e-4)
    assert abs(res.value - 1.01) <= 1e-4 and res.evaluations <= 8
    with pytest.raises(ValueError, match="unreachable"):
        solve_increasing(lambda x: 1 + 0.001 * x, 1.01, 1e-4)


@pytest.mark.parametrize("bad", [-0.1, 1.5, float("nan")])
def test_bad_cett_is_rejected(bad):
    model = R.tiny_model("gpt2")
    with pytest.raises(ValueError, match=r"CETT must be a number in \[0, 1\]"):
        M.cett_thresholds(model, torch.randint(0, 48, (1, 8)), bad)


def test_all_zero_layer_is_rejected():
    model = R.tiny_model("llama")
    with torch.no_grad():
        model.model.layers[1].mlp.gate_proj.weight.zero_()  # ReLU(0) = 0: layer 1 never activates
    with pytest.raises(ValueError, match="layer 1: all FFN activations are zero"):
        M.cett_thresholds(model, torch.randint(0, 48, (2, 8)), 0.2)


@pytest.mark.skipif(not (shutil.which("cc") or shutil.which("gcc")), reason="torch.compile on CPU needs a C compiler")
def test_compiled_mask_equals_eager():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(64, 40, generator=g).to(torch.bfloat16)
    limits = torch.rand(3, 40, generator=g)  # fp32 limits against bf16 activations, as in cett_sums
    want = small_part(a, limits)
    assert want.shape == (3, 64, 40) and 0 < want.ne(0).float().mean() < 1
    assert torch.equal(_small_part_fused(a, limits), want)
