"""Triton kernels of the sparse gated FFN at decode time: one, two or three launches, no host synchronisation.

Decoding reads every weight once per token, so an FFN layer's time is its bytes over HBM bandwidth. The
gated FFN ``y = W_down (σ(W_gate x) ⊙ W_up x)`` must read all of ``W_gate`` to learn which neurons are
active, but only the active rows of ``W_up`` and of ``W_down`` (stored transposed, ``[d_ff, d]``, so that a
neuron's output direction is one contiguous row).

1. ``_gate_kernel`` (one program per ``BLOCK_N`` neurons): the gate GEMV over the whole ``d`` for
   ``BLOCK_N`` rows, the activation ``s = σ(g)`` in float32 (stored), and the compaction of the candidate
   neurons (``s ≠ 0`` for any batch row: the union of the batch's active sets) into an index list, each
   program claiming its slots with one atomic add on a device counter. It also zeroes the float32 output
   accumulator, so that no memset is launched.
2. Up and down over the candidates, in one of two variants (the benchmark times both):
   * ``fused`` (``_up_down_kernel``): a persistent grid of programs × ``SPLIT`` shares of ``d`` walks the
     candidate blocks of ``BLOCK_A`` neurons: their up rows, ``a = s ⊙ u``, the per-neuron cut
     ``|a_i| ≥ c_i`` (c = 0 for ReLU at the zero threshold, ``t_layer / ‖W_down[:, i]‖`` for a CETT
     threshold), then the kept rows of ``W_downᵀ`` over the program's share of ``d`` (masked loads of
     dropped rows fetch nothing), added into the float32 accumulator with relaxed atomics. The ``SPLIT``
     programs of one block re-read its up rows, from L2 after the first.
   * ``split`` (``_up_kernel`` then ``_down_kernel``): the first computes the cut activations of every
     candidate once, into a compact buffer; the second, a grid of candidate groups × ``d`` chunks, sums its
     group's kept down rows in registers and adds the sum into the accumulator once: fewer atomics and no
     re-read, for one more launch.
   In the last launch, the last program of each ``d`` chunk to finish (a ticket counter per chunk) writes
   that chunk of the output in the activation's dtype, and the last chunk resets the counters.

3. ``one`` (``one_launch._one_kernel``, a single launch, no candidate list): each program takes blocks of
   neurons through gate, up (only if the block has a candidate) and down, adding into a float32 accumulator
   that the last program converts to the output; its module says why it exists and what its batch-1 options
   (a persistent grid, eager down rows, eviction hints) are for.

Grid sizes and loop trip counts depend only on the shapes (and, for a persistent grid, the GPU's SM count),
never on the data (blocks past the candidate count are skipped inside), so a call can be captured in a CUDA
graph. In the two-launch variants batch 1 uses element-wise products and reductions, batches 2-16 are padded to
16 for ``tl.dot``.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import triton
import triton.language as tl

from .gemv import _activate, _rows_dot_x
from .one_launch import _one_kernel

MAX_BATCH = 16
MAX_CHUNKS = 256  # d-chunks of the output (each with its own ticket): d / block_d or the split


@dataclass(frozen=True)
class Config:
    """Block sizes and warps of the kernels (``block_a`` ≥ 16 when the batch is above 1). The ``one`` variant
    reads only ``block_n`` (neurons per block), ``block_k`` (d-chunk of the gate and up products),
    ``block_d`` (d-chunk of the down rows and the output, capped at d rounded up to a power of two: one chunk,
    so that all of a block's down loads are in flight together), ``warps_gate`` and, at batch 1 only, its
    options ``per_sm``, ``eager`` and ``stream`` (``one_launch`` module doc); its whole-row forms (``per_sm`` or
    ``eager``) ignore ``block_k``."""

    block_n: int = 16
    block_k: int = 512
    warps_gate: int = 4
    block_a: int = 4
    block_k2: int = 512
    block_d: int = 256
    split: int = 2
    warps_up: int = 4
    programs: int = 264  # persistent programs walking the candidate blocks (fused: per d-split; split: up)
    variant: str = "fused"  # "fused" or "split" (after a gate launch), or "one" (a single launch): module doc
    groups: int = 32  # split variant: candidate groups of the down launch (each adds its sum once)
    block_a2: int = 16  # split variant: candidate rows per step of the down launch
    pad_batch: bool = False  # batch 1 through the padded tl.dot path (block_a, block_a2 >= 16)
    per_sm: int = 0  # one variant: 0, a program per block; else a persistent grid, ≤ per_sm programs per SM
    eager: bool = False  # one variant: down rows of the candidates requested with their up rows
    stream: bool = False  # one variant: evict-first hints on the weight loads


def default_config(batch: int) -> Config:
    """The configuration ``sparse_ffn`` (and so ``SparseFFN``) runs when given none; the benchmarks tune among
    ``bench.configs``. Batch 1: the one-launch variant with 8 neurons per program. In the second H200 run (code
    f848592) a one-launch configuration was the fastest in all eight batch-1 FFN-layer cases (2.4B and 0.1B
    shapes, ReLU at 6.5, 10 and 20 %, SiLU at a CETT cut), this one in six and within 5 % in the other two, 1.4
    to 3.0 times faster than the fused variant that won the first run; the whole-model benchmark tuned to it
    too. Larger batches: the fused variant with padded ``tl.dot`` products, the fastest at batch 4 on the 2.4B
    shape in that run. Not the one-launch variant there: its batch 4 and 16 forms failed their checks at the
    2.4B shape (the race in clearing its accumulator, fixed since) and have not been timed correct there."""
    if batch == 1:
        return Config(block_n=8, block_k=256, block_d=4096, variant="one")
    return Config(block_a=16, block_k2=128, block_d=128, block_k=128)


@triton.jit
def _gate_kernel(
    x_ptr, wg_ptr, s_ptr, idx_ptr, count_ptr, out32_ptr,
    B, D: tl.constexpr, F: tl.constexpr, ACT: tl.constexpr, BP: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, ZBLOCK: tl.constexpr,
):  # fmt: skip
    pid = tl.program_id(0)
    z = pid * ZBLOCK + tl.arange(0, ZBLOCK)
    tl.store(out32_ptr + z, tl.zeros([ZBLOCK], tl.float32), mask=z < B * D)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    rmask = rows < F
    bs = tl.arange(0, BP)
    bmask = bs < B
    s = _activate(_rows_dot_x(wg_ptr, rows, rmask, x_ptr, B, D, BP, BLOCK_N, BLOCK_K), ACT)
    live = rmask[:, None] & bmask[None, :]
    tl.store(s_ptr + bs[None, :] * F + rows[:, None], s, mask=live)
    cand = (tl.sum(((s != 0.0) & live).to(tl.int32), axis=1) > 0).to(tl.int32)
    base = tl.atomic_add(count_ptr, tl.sum(cand, axis=0))
    pos = base + tl.cumsum(cand, axis=0) - 1
    tl.store(idx_ptr + pos, rows, mask=cand > 0)


@triton.jit
def _active_a(x_ptr, wu_ptr, s_ptr, cut_ptr, idx_ptr, n, blk, B, D, F, BP: tl.constexpr, BLOCK_A: tl.constexpr,
              BLOCK_K: tl.constexpr):  # fmt: skip
    """Block ``blk`` of the candidate list: its neuron ids, positions mask and the cut activations [BLOCK_A, BP]."""
    bs = tl.arange(0, BP)
    bmask = bs < B
    j = blk * BLOCK_A + tl.arange(0, BLOCK_A)
    jm = j < n
    rows = tl.load(idx_ptr + j, mask=jm, other=0)
    acc = _rows_dot_x(wu_ptr, rows, jm, x_ptr, B, D, BP, BLOCK_A, BLOCK_K)
    live = jm[:, None] & bmask[None, :]
    s = tl.load(s_ptr + bs[None, :] * F + rows[:, None], mask=live, other=0.0)
    c = tl.load(cut_ptr + rows, mask=jm, other=0.0)
    a = s * acc
    keep = live & (a != 0.0) & (tl.abs(a) >= c[:, None])
    return rows, j, jm, tl.where(keep, a, 0.0)


@triton.jit
def _finish(count_ptr, ticket_ptr, out32_ptr, y_ptr, res_ptr, B, D, BP: tl.constexpr, CHUNK: tl.constexpr,
            SUB: tl.constexpr, HAS_RES: tl.constexpr):  # fmt: skip
    """The last program of each d-chunk (grid axis 1) writes that chunk of the output in its dtype; the last
    chunk to finish resets the counters for the next call. ``ticket_ptr[0]`` counts chunks, ``[1 + c]`` the
    programs of chunk c, so the conversion runs in parallel over chunks and no address sees many atomics."""
    tl.debug_barrier()  # every thread's output atomics precede the program's ticket
    c = tl.program_id(1)
    if tl.atomic_add(ticket_ptr + 1 + c, 1) == tl.num_programs(0) - 1:
        bs = tl.arange(0, BP)
        for d0 in range(0, CHUNK, SUB):
            ds = c * CHUNK + d0 + tl.arange(0, SUB)
            m = (bs[:, None] < B) & (ds[None, :] < D) & (ds[None, :] < (c + 1) * CHUNK)
            off = bs[:, None] * D + ds[None, :]
            v = tl.load(out32_ptr + off, mask=m, other=0.0, cache_modifier=".cg")
            if HAS_RES:  # the decoder's residual add, fused
                v += tl.load(res_ptr + off, mask=m, other=0.0).to(tl.float32)
            tl.store(y_ptr + off, v.to(y_ptr.dtype.element_ty), mask=m)
        tl.store(ticket_ptr + 1 + c, 0)
        if tl.atomic_add(ticket_ptr, 1) == tl.num_programs(1) - 1:
            tl.store(count_ptr, 0)
            tl.store(ticket_ptr, 0)


@triton.jit
def _up_down_kernel(
    x_ptr, wu_ptr, wd_ptr, s_ptr, cut_ptr, idx_ptr, count_ptr, ticket_ptr, out32_ptr, y_ptr, res_ptr,
    B, D: tl.constexpr, F: tl.constexpr, BP: tl.constexpr, BLOCK_A: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, CHUNK: tl.constexpr, STEPS: tl.constexpr, HAS_RES: tl.constexpr,
):  # fmt: skip
    """Fused variant: a persistent grid (programs × d-splits) walks the candidate blocks; each block's up rows,
    then its kept down rows over this program's share of d, added into the output with relaxed atomics."""
    pid = tl.program_id(0)
    sid = tl.program_id(1)
    n = tl.load(count_ptr)
    for step in range(STEPS):  # a fixed trip count (known from the shapes), blocks past the list skipped
        blk = pid + step * tl.num_programs(0)
        if blk * BLOCK_A < n:
            _fused_block(x_ptr, wu_ptr, wd_ptr, s_ptr, cut_ptr, idx_ptr, out32_ptr, n, blk, sid, B, D, F, BP,
                         BLOCK_A, BLOCK_K, BLOCK_D, CHUNK)  # fmt: skip
    _finish(count_ptr, ticket_ptr, out32_ptr, y_ptr, res_ptr, B, D, BP, CHUNK, BLOCK_D, HAS_RES)


@triton.jit
def _fused_block(x_ptr, wu_ptr, wd_ptr, s_ptr, cut_ptr, idx_ptr, out32_ptr, n, blk, sid, B, D, F,
                 BP: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
                 CHUNK: tl.constexpr):  # fmt: skip
    bs = tl.arange(0, BP)
    bmask = bs < B
    rows, j, jm, a = _active_a(x_ptr, wu_ptr, s_ptr, cut_ptr, idx_ptr, n, blk, B, D, F, BP, BLOCK_A, BLOCK_K)
    row_kept = tl.sum((a != 0.0).to(tl.int32), axis=1) > 0
    for d0 in range(0, CHUNK, BLOCK_D):
        ds = sid * CHUNK + d0 + tl.arange(0, BLOCK_D)
        dm = (ds < D) & (ds < (sid + 1) * CHUNK)
        wd = tl.load(wd_ptr + rows[:, None] * D + ds[None, :], mask=row_kept[:, None] & dm[None, :], other=0.0)
        if BP == 1:
            part = tl.sum(a * wd.to(tl.float32), axis=0)[None, :]
        else:
            part = tl.dot(tl.trans(a.to(wd.dtype)), wd)
        tl.atomic_add(out32_ptr + bs[:, None] * D + ds[None, :], part, mask=bmask[:, None] & dm[None, :],
                      sem="relaxed")  # fmt: skip


@triton.jit
def _up_kernel(
    x_ptr, wu_ptr, s_ptr, cut_ptr, idx_ptr, count_ptr, a_ptr,
    B, D: tl.constexpr, F: tl.constexpr, BP: tl.constexpr, BLOCK_A: tl.constexpr, BLOCK_K: tl.constexpr,
    STEPS: tl.constexpr,
):  # fmt: skip
    """Split variant, first half: the cut activations of every candidate, stored in candidate order."""
    pid = tl.program_id(0)
    n = tl.load(count_ptr)
    bs = tl.arange(0, BP)
    for step in range(STEPS):
        blk = pid + step * tl.num_programs(0)
        if blk * BLOCK_A < n:
            rows, j, jm, a = _active_a(x_ptr, wu_ptr, s_ptr, cut_ptr, idx_ptr, n, blk, B, D, F, BP, BLOCK_A, BLOCK_K)
            tl.store(a_ptr + bs[None, :] * F + j[:, None], a, mask=jm[:, None] & (bs[None, :] < B))


@triton.jit
def _down_kernel(
    wd_ptr, a_ptr, idx_ptr, count_ptr, ticket_ptr, out32_ptr, y_ptr, res_ptr,
    B, D: tl.constexpr, F: tl.constexpr, BP: tl.constexpr, BLOCK_A: tl.constexpr,
    BLOCK_D: tl.constexpr, STEPS: tl.constexpr, HAS_RES: tl.constexpr,
):  # fmt: skip
    """Split variant, second half: a grid of (candidate groups × d-chunks); each program sums its group's kept
    down rows over its chunk in registers and adds the sum into the output once."""
    pid = tl.program_id(0)
    sid = tl.program_id(1)
    n = tl.load(count_ptr)
    bs = tl.arange(0, BP)
    bmask = bs < B
    ds = sid * BLOCK_D + tl.arange(0, BLOCK_D)
    dm = ds < D
    acc = tl.zeros([BP, BLOCK_D], tl.float32)
    n_blocks = tl.cdiv(n, BLOCK_A)
    for step in range(STEPS):
        blk = pid + step * tl.num_programs(0)
        j = blk * BLOCK_A + tl.arange(0, BLOCK_A)
        jm = j < n  # blocks past the list load nothing and add zeros
        rows = tl.load(idx_ptr + j, mask=jm, other=0)
        a = tl.load(a_ptr + bs[None, :] * F + j[:, None], mask=jm[:, None] & bmask[None, :], other=0.0)
        row_kept = tl.sum((a != 0.0).to(tl.int32), axis=1) > 0
        wd = tl.load(wd_ptr + rows[:, None] * D + ds[None, :], mask=row_kept[:, None] & dm[None, :], other=0.0)
        if BP == 1:
            acc += tl.sum(a * wd.to(tl.float32), axis=0)[None, :]
        else:
            acc += tl.dot(tl.trans(a.to(wd.dtype)), wd)
    if pid < n_blocks:
        tl.atomic_add(out32_ptr + bs[:, None] * D + ds[None, :], acc, mask=bmask[:, None] & dm[None, :],
                      sem="relaxed")  # fmt: skip
    _finish(count_ptr, ticket_ptr, out32_ptr, y_ptr, res_ptr, B, D, BP, BLOCK_D, BLOCK_D, HAS_RES)


def _one_constants(batch: int, d: int, cfg: Config, steps: int = 1, gate_only: bool = False) -> dict:
    """The one-launch kernel's block constants for ``batch`` tokens of width ``d``, ``steps`` blocks per program:
    up to 4 tokens padded to a power of two for the element-wise path, more to 16 for ``tl.dot``; the down chunk
    capped at d rounded up to a power of two; the output tiles of the last program kept at ``block_d`` elements
    in all; whole rows (``ROWS``, the persistent and eager forms) padded to ``DP`` columns; ``GATE_ONLY`` the
    diagnostic of ``sparse_ffn``."""
    bp = triton.next_power_of_2(batch) if batch <= 4 else MAX_BATCH
    block_d = min(cfg.block_d, triton.next_power_of_2(d))
    return dict(BP=bp, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, BLOCK_D=block_d,
                BLOCK_F=block_d // bp if bp <= 4 else block_d, ROWS=bool(cfg.per_sm or cfg.eager), STEPS=steps,
                DP=triton.next_power_of_2(d), EAGER=cfg.eager,
                EVICT="evict_first" if cfg.stream else "", GATE_ONLY=gate_only)  # fmt: skip


@functools.lru_cache
def _sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a GPU, asked once per device (a host-side property: no synchronisation, so
    a call inside a CUDA-graph capture is fine). Under Triton's interpreter (CPU tensors) a stand-in of 2, so
    that the tests' small layers give persistent programs several blocks each."""
    return torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 2


def _one_grid(d_ff: int, cfg: Config, sms: int) -> tuple[int, int]:
    """(programs, blocks per program) of the one-launch kernel on a GPU of ``sms`` SMs. One program per block of
    ``block_n`` neurons; with ``per_sm``, the fewest steps that at most ``per_sm`` programs per SM need, and then
    the fewest programs that cover the blocks in that many steps, so that every program walks the same number
    of blocks, give or take one (2.4B shape, 2-neuron blocks, 132 SMs × 4: 480 programs of 6 blocks each)."""
    blocks = triton.cdiv(d_ff, cfg.block_n)
    if not cfg.per_sm:
        return blocks, 1
    steps = triton.cdiv(blocks, cfg.per_sm * sms)
    return triton.cdiv(blocks, steps), steps


class Workspace:
    """Fixed-size device buffers of one layer (reused by every call, so CUDA graphs see fixed addresses):
    the float32 activations, the candidate list, the counters (candidates, chunk tickets, the one-launch
    ticket), the float32 output accumulator, the split variant's compact activations and the one-launch
    variant's accumulator, which that variant leaves zeroed after each call (no launch zeroes it first)."""

    def __init__(self, d: int, d_ff: int, device: torch.device):
        self.s = torch.empty(MAX_BATCH, d_ff, dtype=torch.float32, device=device)
        self.idx = torch.empty(d_ff, dtype=torch.int32, device=device)
        self.counters = torch.zeros(3 + MAX_CHUNKS, dtype=torch.int32, device=device)  # the last: one-launch ticket
        self.out32 = torch.empty(MAX_BATCH * d, dtype=torch.float32, device=device)
        self.a = torch.empty(MAX_BATCH, d_ff, dtype=torch.float32, device=device)
        self.acc = torch.zeros(MAX_BATCH * d, dtype=torch.float32, device=device)  # one-launch: zero between calls


def sparse_ffn(
    x: torch.Tensor,
    w_gate: torch.Tensor,
    w_up: torch.Tensor,
    w_down_t: torch.Tensor,
    cut: torch.Tensor,
    act: str,
    ws: Workspace,
    cfg: Config | None = None,
    residual: torch.Tensor | None = None,
    gate_only: bool = False,
) -> torch.Tensor:
    """``W_down (a ⊙ [|a| ≥ cut])`` with ``a = σ(W_gate x) ⊙ W_up x`` for ``x`` [B ≤ 16, d] (contiguous);
    weights ``[d_ff, d]`` contiguous (``w_down_t`` = W_downᵀ), ``cut`` float32 [d_ff]; ``act`` relu or silu.
    With ``residual`` (like ``x``) the result is ``residual + FFN(x)``, the decoder's residual add fused.
    ``gate_only`` (the one-launch variant only; a diagnostic of the benchmark, ``one_launch`` module doc): the
    same launch stopped after the gate, its activations left in ``ws.s[:B]`` and the output the residual alone
    (zeros without one)."""
    b, d = x.shape
    d_ff = w_gate.shape[0]
    cfg = cfg or default_config(b)
    if not 1 <= b <= MAX_BATCH:
        raise ValueError(f"got {b} tokens: the sparse FFN kernels take 1 to {MAX_BATCH} per call (decoding)")
    if not x.is_cuda and os.environ.get("TRITON_INTERPRET") != "1":
        raise ValueError("CPU tensors: the sparse FFN kernels need a CUDA GPU (TRITON_INTERPRET=1 runs them slowly)")
    if max(cfg.split, triton.cdiv(d, cfg.block_d)) > MAX_CHUNKS:
        raise ValueError(f"{cfg} splits d = {d} into more than {MAX_CHUNKS} chunks")
    y = torch.empty_like(x)
    res = y if residual is None else residual.contiguous()  # y: a placeholder the kernels never read
    if gate_only and cfg.variant != "one":
        raise ValueError(f"{cfg}: gate_only is a diagnostic of the one-launch variant")
    if cfg.variant == "one":
        if b > 1 and (cfg.per_sm or cfg.eager or cfg.stream):
            raise ValueError(f"{cfg}: the one-launch options per_sm, eager and stream are for one token, got {b}")
        programs, steps = _one_grid(d_ff, cfg, _sm_count(x.device))
        _one_kernel[(programs,)](
            x, w_gate, w_up, w_down_t, cut, ws.s, ws.counters[-1:], ws.acc, y, res, b, d, d_ff,
            ACT=0 if act == "relu" else 1, HAS_RES=residual is not None, num_warps=cfg.warps_gate,
            **_one_constants(b, d, cfg, steps, gate_only),
        )  # fmt: skip
        return y
    bp = 1 if b == 1 and not cfg.pad_batch else MAX_BATCH
    n_gate = triton.cdiv(d_ff, cfg.block_n)
    zblock = triton.next_power_of_2(triton.cdiv(b * d, n_gate))
    _gate_kernel[(n_gate,)](
        x, w_gate, ws.s, ws.idx, ws.counters, ws.out32, b, d, d_ff,
        ACT=0 if act == "relu" else 1, BP=bp, BLOCK_N=cfg.block_n, BLOCK_K=cfg.block_k, ZBLOCK=zblock,
        num_warps=cfg.warps_gate,
    )  # fmt: skip
    n_blocks = triton.cdiv(d_ff, cfg.block_a)
    if cfg.variant == "fused":
        chunk = triton.cdiv(triton.cdiv(d, cfg.split), cfg.block_d) * cfg.block_d
        progs = min(n_blocks, cfg.programs)
        _up_down_kernel[(progs, cfg.split)](
            x, w_up, w_down_t, ws.s, cut, ws.idx, ws.counters, ws.counters[1:], ws.out32, y, res, b, d, d_ff,
            BP=bp, BLOCK_A=cfg.block_a, BLOCK_K=cfg.block_k2, BLOCK_D=cfg.block_d, CHUNK=chunk,
            STEPS=triton.cdiv(n_blocks, progs), HAS_RES=residual is not None, num_warps=cfg.warps_up,
        )  # fmt: skip
        return y
    progs = min(n_blocks, cfg.programs)
    _up_kernel[(progs,)](
        x, w_up, ws.s, cut, ws.idx, ws.counters, ws.a, b, d, d_ff,
        BP=bp, BLOCK_A=cfg.block_a, BLOCK_K=cfg.block_k2, STEPS=triton.cdiv(n_blocks, progs), num_warps=cfg.warps_up,
    )  # fmt: skip
    groups = min(triton.cdiv(d_ff, cfg.block_a2), cfg.groups)
    _down_kernel[(groups, triton.cdiv(d, cfg.block_d))](
        w_down_t, ws.a, ws.idx, ws.counters, ws.counters[1:], ws.out32, y, res, b, d, d_ff,
        BP=bp, BLOCK_A=cfg.block_a2, BLOCK_D=cfg.block_d,
        STEPS=triton.cdiv(triton.cdiv(d_ff, cfg.block_a2), groups), HAS_RES=residual is not None,
        num_warps=cfg.warps_up,
    )  # fmt: skip
    return y
