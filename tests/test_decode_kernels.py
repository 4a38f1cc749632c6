"""The Triton kernels under Triton's CPU interpreter on small shapes, against the float64 gather reference.

``TRITON_INTERPRET=1`` must be set before Triton is first imported (its standard library is decorated then),
so ``test_decode.py::test_kernels_under_interpreter`` runs this file in a process of its own with it set; run
directly, it is skipped. Skipped too where Triton is not installed (it is optional)."""

import os

import pytest
import torch

if os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("runs under TRITON_INTERPRET=1, started by test_decode.py", allow_module_level=True)
pytest.importorskip("triton")

from sparsing_lib.decode import bench, cuts, gather_ffn  # noqa: E402
from sparsing_lib.decode import kernels as K  # noqa: E402


@pytest.mark.parametrize(
    "act,batch,threshold,cfg",
    [
        ("relu", 1, 0.0, K.Config(block_n=16, block_k=32, block_a=4, block_k2=32, block_d=32, split=2)),
        ("relu", 3, 0.0, K.Config(block_n=32, block_k=64, block_a=16, block_k2=16, block_d=16, split=3)),
        ("silu", 1, 0.3, K.Config(block_n=16, block_k=64, block_a=8, block_k2=64, block_d=64, split=1)),
        ("silu", 16, 0.2, K.Config(block_n=16, block_k=32, block_a=16, block_k2=32, block_d=32, split=2)),
        ("relu", 1, 0.0, K.Config(block_n=16, block_k=32, block_a=2, block_k2=32, block_d=32, programs=5)),
        (
            "relu",
            1,
            0.0,
            K.Config(block_n=16, block_k=32, block_a=4, block_d=32, variant="split", programs=3, groups=2),
        ),
        (
            "silu",
            5,
            0.3,
            K.Config(block_a=16, block_k2=32, block_d=16, variant="split", programs=2, block_a2=32, groups=3),
        ),
        ("relu", 1, 0.0, K.Config(block_n=16, block_k=32, block_d=32, variant="one")),  # d in three chunks
        ("relu", 1, 0.15, K.Config(block_n=4, block_k=32, block_d=128, variant="one")),  # a CETT cut on ReLU
        ("silu", 1, 0.3, K.Config(block_n=8, block_k=64, block_d=128, variant="one")),  # one chunk of d
        ("relu", 4, 0.0, K.Config(block_n=16, block_k=32, block_d=32, variant="one")),
        ("silu", 3, 0.3, K.Config(block_n=4, block_k=64, block_d=128, variant="one")),  # padded to 4 tokens
        ("silu", 16, 0.2, K.Config(block_n=32, block_k=16, block_d=64, variant="one")),
        ("relu", 1, 0.0, K.default_config(1)),  # what SparseFFN runs for one token
        # Batch-1 forms of the one-launch variant (kernels' Config, one_launch module doc); on CPU tensors the
        # persistent grid takes 2 SMs, so at 2 neurons per block 8 programs walk 13 blocks each, the last ones
        # past d_ff (masked), and at 4 neurons and one program per SM 2 programs walk 25 (an odd count).
        ("relu", 1, 0.0, K.Config(block_n=8, block_k=32, block_d=128, stream=True, variant="one")),
        ("silu", 1, 0.3, K.Config(block_n=4, block_k=32, block_d=128, stream=True, variant="one")),
        ("relu", 1, 0.15, K.Config(block_n=4, block_d=128, eager=True, variant="one")),  # the cut drops candidates
        ("silu", 1, 0.3, K.Config(block_n=2, block_d=128, eager=True, stream=True, variant="one")),
        ("relu", 1, 0.0, K.Config(block_n=2, block_d=128, per_sm=4, variant="one")),
        ("silu", 1, 0.3, K.Config(block_n=2, block_d=32, per_sm=4, variant="one")),  # output in three tiles
        ("relu", 1, 0.15, K.Config(block_n=4, block_d=128, per_sm=1, eager=True, variant="one")),
        ("silu", 1, 0.3, K.Config(block_n=2, block_d=128, per_sm=4, eager=True, variant="one")),
    ],
)
def test_kernels_match_float64_reference_under_interpreter(act, batch, threshold, cfg):
    d, f = 80, 200  # neither a multiple of the blocks: the masks are exercised
    g = torch.Generator().manual_seed(batch)
    wg, wu = (torch.randn(f, d, generator=g) / d**0.5 for _ in range(2))
    wd = torch.randn(d, f, generator=g) / f**0.5
    x = torch.randn(batch, d, generator=g)
    cut = cuts(threshold, wd)
    ws = K.Workspace(d, f, x.device)
    ws.out32.fill_(float("nan"))  # poisoned: the gate kernel must zero what the second kernel adds into
    ref, keep = gather_ffn(x.double(), wg.double(), wu.double(), wd.T.double(), cut.double(), act)
    assert 0.05 < keep.float().mean() < 0.6  # a sparse case, not all or nothing
    for _ in range(2):  # the second call checks that the counters were reset
        y = K.sparse_ffn(x, wg, wu, wd.T.contiguous(), cut, act, ws, cfg)
        assert y.shape == (batch, d) and torch.isfinite(y).all()
        assert ((y.double() - ref).norm() / ref.norm()).item() < 1e-5
        assert not ws.counters.any() and not ws.acc.any()  # reset for the next call


ONE = K.Config(block_n=8, block_k=32, block_d=64, variant="one")
PERSISTENT = K.Config(block_n=2, block_d=64, per_sm=4, variant="one")
EAGER = K.Config(block_n=4, block_d=64, eager=True, variant="one")


@pytest.mark.parametrize("batch,cfg", [(1, ONE), (4, ONE), (1, PERSISTENT), (1, EAGER)])
@pytest.mark.parametrize("ratio", [0.065, 0.3, 1.0])
def test_one_launch_variant_at_chosen_activation_ratios(batch, cfg, ratio):
    """Exactly ``ratio`` of the neurons active for each token (the benchmark's controlled layer), with the
    residual add: the output equals the float64 gather path plus the residual, call after call."""
    d, f = 48, 200
    x = torch.randn(batch, d, dtype=torch.float64, generator=torch.Generator().manual_seed(batch))
    layer = bench.controlled_layer(x, f, ratio, "relu", torch.float32, seed=7)
    assert layer["kept"] == pytest.approx(max(1, round(ratio * f)) / f)
    res = torch.randn(batch, d, generator=torch.Generator().manual_seed(1))
    ws = K.Workspace(d, f, x.device)
    for _ in range(2):
        y = K.sparse_ffn(layer["x"], layer["wg"], layer["wu"], layer["wdt"], layer["cut"], "relu", ws, cfg, res)
        assert ((y.double() - res.double() - layer["ref"]).norm() / layer["ref"].norm()).item() < 1e-5
        assert not ws.counters.any() and not ws.acc.any()


def test_batch_1_options_refuse_more_tokens():
    wg, wu, wdt = (torch.randn(16, 8) for _ in range(3))
    ws = K.Workspace(8, 16, torch.device("cpu"))
    for cfg in (PERSISTENT, EAGER, K.Config(block_n=8, stream=True, variant="one")):
        with pytest.raises(ValueError, match="for one token, got 2"):
            K.sparse_ffn(torch.randn(2, 8), wg, wu, wdt, cuts(0.0, wdt.T), "relu", ws, cfg)


@pytest.mark.parametrize(
    "batch,cfg",
    [
        (1, ONE),
        (4, ONE),
        (1, PERSISTENT),
        (1, EAGER),
        (1, K.Config(block_n=16, block_k=32, block_a=16, block_k2=32, block_d=32, programs=3)),
        (4, K.Config(block_n=16, block_k=32, block_a=16, block_k2=32, block_d=32, programs=3)),
        (
            1,
            K.Config(
                block_n=16, block_k=32, block_a=16, block_k2=32, block_d=16, variant="split", programs=2, groups=3
            ),
        ),
        (
            4,
            K.Config(
                block_n=16, block_k=32, block_a=16, block_k2=32, block_d=16, variant="split", programs=2, groups=3
            ),
        ),
    ],
)
def test_no_active_neuron_leaves_the_residual_alone(batch, cfg):
    """Every gate negative: no block has a candidate, nothing is added, and the output is the residual."""
    d, f = 40, 72
    g = torch.Generator().manual_seed(batch)
    x = torch.rand(batch, d, generator=g) + 0.1
    wg, wu = -(torch.rand(f, d, generator=g) + 0.1), torch.randn(f, d, generator=g)
    wdt = torch.randn(f, d, generator=g)
    res = torch.randn(batch, d, generator=g)
    ws = K.Workspace(d, f, x.device)
    ws.out32.fill_(float("nan"))
    for _ in range(2):
        y = K.sparse_ffn(x, wg, wu, wdt, cuts(0.0, wdt.T), "relu", ws, cfg, res)
        assert torch.equal(y, res)
        assert not ws.counters.any() and not ws.acc.any()


@pytest.mark.parametrize(
    "act,batch,cfg",
    [
        ("relu", 1, ONE),
        ("relu", 1, K.Config(block_n=4, block_k=32, block_d=64, stream=True, variant="one")),
        ("relu", 1, EAGER),
        ("relu", 1, PERSISTENT),
        ("silu", 1, PERSISTENT),
        ("relu", 3, ONE),
        ("silu", 16, K.Config(block_n=16, block_k=16, block_d=64, variant="one")),
    ],
)
def test_gate_only_diagnostic_leaves_the_gate_activations_and_adds_nothing(act, batch, cfg):
    """The one-launch kernel stopped after its gate (the benchmark's diagnostic of where a layer's time goes):
    its activations equal the float64 gate, σ(W_gate x), for every neuron, so every gate row was read; for ReLU
    the non-zero ones are exactly the reference's candidates; no up or down row is added (the output is the
    residual, bit for bit), and the ticket and the accumulator are left clean for the next call."""
    d, f = 48, 200
    x = torch.randn(batch, d, dtype=torch.float64, generator=torch.Generator().manual_seed(batch))
    layer = bench.controlled_layer(x, f, 0.1, act, torch.float32, seed=3)  # ReLU: |gate| ≥ 0.1, no near-zero sign
    gate = layer["x"].double() @ layer["wg"].double().T
    want = torch.relu(gate) if act == "relu" else torch.nn.functional.silu(gate)
    res = torch.randn(batch, d, generator=torch.Generator().manual_seed(1))
    ws = K.Workspace(d, f, x.device)
    for _ in range(2):
        ws.s.fill_(float("nan"))  # poisoned: every neuron's activation must be written
        y = K.sparse_ffn(layer["x"], layer["wg"], layer["wu"], layer["wdt"], layer["cut"], act, ws, cfg, res, True)
        assert torch.equal(y, res)
        got = ws.s[:batch].double()
        assert ((got - want).norm() / want.norm()).item() < 1e-5
        if act == "relu":
            assert torch.equal(got != 0, want != 0) and (want != 0).any(0).float().mean() >= 0.1
        assert not ws.counters.any() and not ws.acc.any()


def test_gate_only_is_refused_outside_the_one_launch_variant():
    wg, wu, wdt = (torch.randn(16, 8) for _ in range(3))
    ws = K.Workspace(8, 16, torch.device("cpu"))
    with pytest.raises(ValueError, match="gate_only is a diagnostic of the one-launch variant"):
        K.sparse_ffn(torch.randn(1, 8), wg, wu, wdt, cuts(0.0, wdt.T), "relu", ws, K.Config(), gate_only=True)


@pytest.mark.parametrize("batch,d,heads,block_l", [(1, 24, 4, 4), (2, 64, 4, 8), (3, 40, 5, 64)])
def test_cache_attention_kernel_matches_the_torch_path(batch, d, heads, block_l):
    """The attention launch of the whole-model benchmark (``decode.attention``) against ``reference.
    cache_attention`` step after step (head sizes 6, 16 and 8: not all powers of two; several blocks of
    positions): the same output and the same cache, and nothing read past the current position (there the
    kernel's cache is poisoned with NaN, the reference's zero)."""
    from sparsing_lib.decode import attention, reference

    g = torch.Generator().manual_seed(batch)
    hd, length = d // heads, 12
    kv = torch.full((2, batch, heads, length, hd), float("nan"))
    kv_ref = torch.zeros(kv.shape, dtype=torch.float64)
    w = torch.randn(3 * d, d, generator=g) / d**0.5
    for p in range(length):
        hs = 3 * torch.randn(batch, d, generator=g)
        y, pos = hs @ w.T, torch.tensor([p])
        got = attention.cache_attention(y, hs, kv, pos, heads, block_l)
        want = reference.cache_attention(y.double(), hs.double(), kv_ref, pos, heads)
        assert got.shape == (batch, d) and ((got.double() - want).norm() / want.norm()).item() < 1e-5
        assert (kv[:, :, :, : p + 1].double() - kv_ref[:, :, :, : p + 1]).abs().max().item() < 1e-5
        assert kv[:, :, :, p + 1 :].isnan().all()  # untouched past the position
