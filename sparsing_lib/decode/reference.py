"""The sparse FFN's algorithm in plain torch (any device and dtype; float64 on the CPU for tests), the CETT
threshold written as a per-neuron cut on the activation, and the bandwidth model of a decode step.

A CETT threshold ``t`` drops neuron ``i`` of a layer when its output norm ``|a_i|·‖W_down[:, i]‖`` is below
``t``. Dividing by the column norm gives a cut on the activation itself: keep ``i`` iff
``|a_i| ≥ c_i = t / ‖W_down[:, i]‖`` (``metrics.sparse`` applies the same rule). Because
``a_i = σ(g_i)·u_i`` needs the up product ``u_i``, the gate alone can only rule out the neurons with
``σ(g_i) = 0``: for ReLU that is most of them, for SiLU almost none, so a SiLU model at its CETT threshold
still reads all of ``W_up`` and saves only the dropped rows of ``W_down``.

``cache_attention`` is the whole-model benchmark's attention step in plain torch: the computation of the
Triton kernel in ``attention`` (its module doc), as a CPU path and a reference.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

ACTS = {"relu": F.relu, "silu": F.silu}


def cuts(threshold: float, w_down: torch.Tensor) -> torch.Tensor:
    """Per-neuron cuts ``c_i = t / ‖W_down[:, i]‖`` in float32 for ``w_down`` [d, d_ff] (a zero-norm
    column gets an infinite cut: its neuron contributes nothing and is never read)."""
    if not threshold >= 0:
        raise ValueError(f"a CETT threshold must be a non-negative number, got {threshold!r}")
    norms = w_down.float().norm(dim=0)
    return torch.where(norms > 0, threshold / norms.clamp_min(1e-30), torch.full_like(norms, float("inf")))


def gather_ffn(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down_t: torch.Tensor, cut: torch.Tensor, act: str
) -> tuple[torch.Tensor, torch.Tensor]:
    """The kernels' algorithm step by step: gate for all neurons, the union over the batch of the neurons
    with a non-zero activation, up rows of those only, the cut ``|a| ≥ cut``, down rows of the kept ones.
    Returns the output [B, d] and the boolean kept mask [B, d_ff]."""
    s = ACTS[act](x @ w_gate.T)  # [B, d_ff]
    cand = (s != 0).any(0).nonzero().squeeze(1)
    a = s[:, cand] * (x @ w_up[cand].T)
    keep = (a != 0) & (a.abs() >= cut[cand].to(a.dtype))
    a = torch.where(keep, a, torch.zeros_like(a))
    rows = keep.any(0)
    y = a[:, rows] @ w_down_t[cand[rows]]
    mask = torch.zeros_like(s, dtype=torch.bool)
    mask[:, cand] = keep
    return y, mask


def check_cache(
    y: torch.Tensor, hs: torch.Tensor, kv: torch.Tensor, pos: torch.Tensor, heads: int
) -> tuple[int, int, int, int]:
    """(B, d, head size, cache length) of an attention step's inputs, or a ValueError naming what does not fit:
    ``y`` [B, 3d], ``hs`` [B, d], a contiguous ``kv`` [2, B, heads, L, d/heads] in ``hs``'s dtype, ``pos`` one
    integer."""
    if hs.dim() != 2 or heads < 1 or hs.shape[1] % heads:
        raise ValueError(f"hidden states {tuple(hs.shape)} do not split into {heads} heads")
    b, d = hs.shape
    want = (2, b, heads, kv.shape[3] if kv.dim() == 5 else 0, d // heads)
    if tuple(y.shape) != (b, 3 * d):
        raise ValueError(f"QKV product {tuple(y.shape)}: expected {(b, 3 * d)} for hidden states {(b, d)}")
    if kv.dim() != 5 or tuple(kv.shape) != want or not kv.is_contiguous() or kv.dtype != hs.dtype:
        raise ValueError(f"cache {tuple(kv.shape)} {kv.dtype}: expected a contiguous {want} (2, batch, heads, "
                         f"length, head size) in {hs.dtype}")  # fmt: skip
    if pos.numel() != 1 or pos.dtype not in (torch.int32, torch.int64):
        raise ValueError(f"the position must be one integer, got {pos.numel()} of {pos.dtype}")
    return b, d, d // heads, kv.shape[3]


def cache_attention(y: torch.Tensor, hs: torch.Tensor, kv: torch.Tensor, pos: torch.Tensor, heads: int) -> torch.Tensor:
    """Attention output [B, d] of one decode step (``attention`` module doc): ``y`` = ``hs W_qkvᵀ`` [B, 3d] scaled by
    the weightless RMSNorm of ``hs``, key and value written into ``kv`` [2, B, heads, L, d/heads] at ``pos``, the
    query attending to positions up to ``pos`` (the mask keeps the shapes static, as a CUDA graph needs)."""
    b, d, hd, length = check_cache(y, hs, kv, pos, heads)
    wide = torch.promote_types(hs.dtype, torch.float32)  # float32 for bf16, as F.rms_norm computes it
    r = torch.rsqrt(hs.to(wide).pow(2).mean(-1, keepdim=True) + torch.finfo(hs.dtype).eps)
    q, k, v = (y.to(wide) * r).to(hs.dtype).view(b, 3, heads, hd).unbind(1)
    kv.index_copy_(3, pos.view(1), torch.stack([k, v]).unsqueeze(3))
    mask = (torch.arange(length, device=kv.device) <= pos).view(1, 1, 1, length)
    return F.scaled_dot_product_attention(q[:, :, None], kv[0], kv[1], attn_mask=mask).reshape(b, d)


def dense_ffn(
    x: torch.Tensor, w_gate: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor, act: str
) -> torch.Tensor:
    """The dense gated FFN ``W_down (σ(W_gate x) ⊙ W_up x)`` with ``w_down`` [d, d_ff] as Linear stores it."""
    return (ACTS[act](x @ w_gate.T) * (x @ w_up.T)) @ w_down.T


def ffn_bytes(d: int, d_ff: int, candidate: float, kept: float, bytes_per: int = 2) -> float:
    """Bytes a sparse decode step must read for one layer: all of W_gate, the candidate rows of W_up and the
    kept rows of W_down (``candidate`` and ``kept``: fractions of the d_ff neurons, for the union over the
    batch). The dense layer reads ``ffn_bytes(d, d_ff, 1, 1)``."""
    return d * d_ff * bytes_per * (1 + candidate + kept)


def union_ratio(ratio: float, batch: int) -> float:
    """Expected fraction of neurons active for at least one of ``batch`` tokens with independent active
    sets of fraction ``ratio`` each."""
    return 1 - (1 - ratio) ** batch


def speedup_limit(d: int, d_ff: int, candidate: float, kept: float, other_bytes: float = 0.0) -> float:
    """Bandwidth-bound speed-up of a sparse over a dense step: dense bytes over sparse bytes, with
    ``other_bytes`` read by both (attention, embeddings, norms) added to each side."""
    dense = ffn_bytes(d, d_ff, 1, 1) + other_bytes
    return dense / (ffn_bytes(d, d_ff, candidate, kept) + other_bytes)
