"""One decode step's attention over a static KV cache in a single Triton launch, for the whole-model benchmark
(``benchmarks/decode_model.py``), where the dense and the sparse engine share it: only their FFN call differs.

What it replaces, per layer, were separate launches around the QKV product in eager torch: the RMSNorm before
it, the write of the new key and value into the cache (``index_copy_``), the boolean mask turned into an
additive one, and the attention kernel, which read every position of the cache, the masked ones too. At batch
1 on the 2.4B shape each of these kernels moves kilobytes, so their launches and latencies, not their bytes,
are what they cost. The kernel here does the same work in one launch, one program per (token, head):

* the norm. The engine's RMSNorm has no weight, so for a token it is one scalar ``r = 1/√(mean(h²) + ε)`` that
  commutes with the QKV product: ``rms_norm(h) W_qkvᵀ = r · (h W_qkvᵀ)``. The product runs on the raw residual
  stream and each program scales its head's slice by ``r``, computed from the token's row (ε as
  ``F.rms_norm`` takes it by default: the dtype's machine epsilon);
* the cache write: the scaled key and value, rounded to the cache's dtype, go to position ``pos`` (read from the
  device, so that the launch can be captured in a CUDA graph and replayed at every position);
* attention: the query against the new key and the cached keys before ``pos`` only, in blocks of ``BLOCK_L``
  positions with a running maximum and sum (softmax in float32), weighted values in float32, the output in
  the activations' dtype. Nothing past ``pos`` is read: the loop has the cache's fixed trip count, and the
  blocks from ``pos`` on are skipped without a load.

Launch shape: at 36 heads and batch 1 there are only 36 programs, each walking its head's cached positions in
blocks of ``BLOCK_L`` = 128 with 8 warps: 79 registers and no spill at the 2.4B shape (head size 64) for sm_90.
As ptxas schedules the loop (read from its SASS), a block's key and value loads are issued in three waves, each
waiting for the last, so a block costs about three memory latencies; at the positions the benchmark decodes
(up to about 220) that is one or two blocks. The next step, if the launch shows up in a step's time, is to split
the positions over more programs and combine their partial softmax sums.

``reference.cache_attention`` is the same computation in plain torch (the CPU path of the benchmark and of the
tests, which check both against the earlier separate launches at toy size).
"""

from __future__ import annotations

import math
import os

import torch
import triton
import triton.language as tl

from .reference import check_cache

BLOCK_L, WARPS = 128, 8  # positions per block and warps per program (module doc)


@triton.jit
def _cache_attention_kernel(
    y_ptr, hs_ptr, kv_ptr, pos_ptr, out_ptr, eps, scale,
    B, H: tl.constexpr, D: tl.constexpr, HD: tl.constexpr, L: tl.constexpr,
    DP: tl.constexpr, HDP: tl.constexpr, BLOCK_L: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    b = pid // H
    h = pid % H
    ds = tl.arange(0, DP)
    row = tl.load(hs_ptr + b * D + ds, mask=ds < D, other=0.0).to(tl.float32)
    r = 1.0 / tl.sqrt(tl.sum(row * row, axis=0) / D + eps)  # the token's RMSNorm, a scalar
    j = tl.arange(0, HDP)
    jm = j < HD
    qkv = y_ptr + b * 3 * D + h * HD + j
    q = tl.load(qkv, mask=jm, other=0.0).to(tl.float32) * r
    k = (tl.load(qkv + D, mask=jm, other=0.0).to(tl.float32) * r).to(kv_ptr.dtype.element_ty)
    v = (tl.load(qkv + 2 * D, mask=jm, other=0.0).to(tl.float32) * r).to(kv_ptr.dtype.element_ty)
    pos = tl.load(pos_ptr).to(tl.int32)
    k_cache = kv_ptr + (b * H + h) * L * HD  # kv: [2, B, H, L, HD]
    v_cache = k_cache + B * H * L * HD
    tl.store(k_cache + pos * HD + j, k, mask=jm)
    tl.store(v_cache + pos * HD + j, v, mask=jm)
    q = q * scale
    m = tl.sum(q * k.to(tl.float32), axis=0)  # the new position's score: the running maximum starts there
    total = m * 0.0 + 1.0
    acc = v.to(tl.float32)
    for start in range(0, L, BLOCK_L):  # a fixed trip count; blocks from pos on are skipped, none is read
        if start < pos:
            ls = start + tl.arange(0, BLOCK_L)
            lm = ls < pos
            tile = ls[:, None] * HD + j[None, :]
            live = lm[:, None] & jm[None, :]
            kt = tl.load(k_cache + tile, mask=live, other=0.0)
            vt = tl.load(v_cache + tile, mask=live, other=0.0)
            s = tl.where(lm, tl.sum(kt.to(tl.float32) * q[None, :], axis=1), float("-inf"))
            m_new = tl.maximum(m, tl.max(s, axis=0))
            alpha = tl.exp(m - m_new)
            p = tl.exp(s - m_new)
            acc = acc * alpha + tl.sum(p[:, None] * vt.to(tl.float32), axis=0)
            total = total * alpha + tl.sum(p, axis=0)
            m = m_new
    tl.store(out_ptr + b * D + h * HD + j, (acc / total).to(out_ptr.dtype.element_ty), mask=jm)


def cache_attention(
    y: torch.Tensor, hs: torch.Tensor, kv: torch.Tensor, pos: torch.Tensor, heads: int, block_l: int = BLOCK_L
) -> torch.Tensor:
    """Attention output [B, d] of the tokens whose unnormed QKV product is ``y`` [B, 3d] and residual stream
    ``hs`` [B, d], over the cache ``kv`` [2, B, heads, L, d/heads] (written at position ``pos``, a one-element
    integer tensor on the device); module doc. CUDA tensors (CPU ones under ``TRITON_INTERPRET=1``)."""
    b, d, hd, length = check_cache(y, hs, kv, pos, heads)
    if not y.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("CPU tensors: the attention kernel needs a CUDA GPU (reference.cache_attention runs on a CPU)")
    out = torch.empty_like(hs)
    _cache_attention_kernel[(b * heads,)](
        y.contiguous(), hs.contiguous(), kv, pos, out, torch.finfo(hs.dtype).eps, 1 / math.sqrt(hd), b, heads, d, hd,
        length, DP=triton.next_power_of_2(d), HDP=triton.next_power_of_2(hd), BLOCK_L=block_l, num_warps=WARPS,
    )  # fmt: skip
    return out
