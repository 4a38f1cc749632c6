"""Triton device functions that every sparse FFN kernel shares: rows of a weight matrix times the batch's inputs
(the gate and up products), and the gate activation.

The batch-1 forms are written for bandwidth: all loads of a block of rows are issued before the first is used,
so that a program has one memory latency per block, not one per chunk of ``d``. Two things keep them in flight.
The loops over ``d`` are unrolled (``tl.static_range``), and the input is loaded through pointers shaped like
the weight tile, so that both get the same register layout: a ``[1, BLOCK_K]`` load of the input would need a
layout conversion through shared memory, whose barriers would make each chunk wait for the last. The weight
loads take an eviction hint (``EVICT``: "" for none, "evict_first" for weights read once per decode step; it
cannot be combined with the ``.cg`` cache modifier, which ptxas refuses).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _activate(g, ACT: tl.constexpr):
    """The gate activation of every variant: ReLU (ACT 0) or SiLU (ACT 1), on the float32 gate product."""
    if ACT == 0:
        s = tl.maximum(g, 0.0)
    else:
        s = g * tl.sigmoid(g)
    return s


@triton.jit
def _rows_dot_x(w_ptr, rows, rmask, x_ptr, B, D, BP: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr):
    """[BLOCK_R, BP]: the given rows of a [·, D] matrix times the batch's inputs, in float32. Batch 1 keeps
    a [BLOCK_R, BLOCK_K] partial sum and reduces it once after the loop (no shuffles per step)."""
    bs = tl.arange(0, BP)
    bmask = bs < B
    if BP == 1:
        part = tl.zeros([BLOCK_R, BLOCK_K], tl.float32)
        for k0 in range(0, D, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            km = ks < D
            w = tl.load(w_ptr + rows[:, None] * D + ks[None, :], mask=rmask[:, None] & km[None, :], other=0.0)
            xv = tl.load(x_ptr + ks[None, :], mask=km[None, :], other=0.0)
            part += w.to(tl.float32) * xv.to(tl.float32)
        acc = tl.sum(part, axis=1)[:, None]
    else:
        acc = tl.zeros([BLOCK_R, BP], tl.float32)
        for k0 in range(0, D, BLOCK_K):
            ks = k0 + tl.arange(0, BLOCK_K)
            km = ks < D
            w = tl.load(w_ptr + rows[:, None] * D + ks[None, :], mask=rmask[:, None] & km[None, :], other=0.0)
            xv = tl.load(x_ptr + bs[:, None] * D + ks[None, :], mask=bmask[:, None] & km[None, :], other=0.0)
            acc += tl.dot(w, tl.trans(xv.to(w.dtype)))
    return acc


@triton.jit
def _rows_dot_x_all(w_ptr, rows, rmask, x_ptr, D: tl.constexpr, BLOCK_R: tl.constexpr, BLOCK_K: tl.constexpr,
                    EVICT: tl.constexpr = ""):  # fmt: skip
    """[BLOCK_R]: the given rows of a [·, D] matrix times the single input, in float32, with the loop over d
    unrolled and the input in the weight tile's layout (module doc): the program keeps its whole block of rows
    in flight."""
    part = tl.zeros([BLOCK_R, BLOCK_K], tl.float32)
    for k0 in tl.static_range(0, D, BLOCK_K):
        ks = k0 + tl.arange(0, BLOCK_K)
        km = ks[None, :] < D
        w = tl.load(w_ptr + rows[:, None] * D + ks[None, :], mask=rmask[:, None] & km, other=0.0,
                    eviction_policy=EVICT)  # fmt: skip
        xv = tl.load(x_ptr + 0 * rows[:, None] + ks[None, :], mask=km, other=0.0)
        part += w.to(tl.float32) * xv.to(tl.float32)
    return tl.sum(part, axis=1)


@triton.jit
def _rows_times_x(w_ptr, rows, rmask, x_ptr, B, D: tl.constexpr, BP: tl.constexpr, BLOCK_R: tl.constexpr,
                  BLOCK_K: tl.constexpr, EVICT: tl.constexpr = ""):  # fmt: skip
    """[BLOCK_R, BP]: up to 4 tokens through the unrolled element-wise loop, one token after the other (the
    first token's loads bring the rows from HBM, the others' find them in L1 or L2; unrolling over tokens too
    would hoist every token's loads and double the registers), more through the padded ``tl.dot``."""
    if BP == 1:
        return _rows_dot_x_all(w_ptr, rows, rmask, x_ptr, D, BLOCK_R, BLOCK_K, EVICT)[:, None]
    if BP > 4:
        return _rows_dot_x(w_ptr, rows, rmask, x_ptr, B, D, BP, BLOCK_R, BLOCK_K)
    bs = tl.arange(0, BP)
    acc = tl.zeros([BLOCK_R, BP], tl.float32)
    for b in range(BP):  # a loop, not unrolled: one token's loads in registers at a time
        if b < B:
            g = _rows_dot_x_all(w_ptr, rows, rmask, x_ptr + b * D, D, BLOCK_R, BLOCK_K, EVICT)
            acc = tl.where(bs[None, :] == b, g[:, None], acc)
    return acc


@triton.jit
def _whole_rows(w_ptr, rows, rmask, D: tl.constexpr, DP: tl.constexpr, EVICT: tl.constexpr):
    """[BLOCK_R, DP]: whole rows of a [·, D] matrix (``DP``: d rounded up to a power of two) as one tensor.
    Unlike the unrolled chunks of ``_rows_dot_x_all`` it can be carried through a loop, so that a persistent
    program can load its next block's rows while it works on this one. The compiler lays it out with lanes and
    warps across the columns (16 bytes per thread and step) and each thread's rows in its registers, as it lays
    out the down rows of the chunked form: the sum over rows of the down product needs no other thread, and
    every tile of a block (gate, up, down) has the same layout, so none is converted through shared memory.
    Columns past d that no warp reaches are masked to constants and take no registers (at d 2304 with 4 warps a
    thread keeps three steps of 1024 columns, the third only partly used)."""
    ks = tl.arange(0, DP)[None, :]
    return tl.load(w_ptr + rows[:, None] * D + ks, mask=rmask[:, None] & (ks < D), other=0.0, eviction_policy=EVICT)


@triton.jit
def _whole_rows_dot_x(w, rows, x_ptr, D: tl.constexpr, DP: tl.constexpr):
    """[BLOCK_R]: rows loaded by ``_whole_rows`` times the single input, in float32 (the input loaded through
    pointers of the tile's shape, so in its layout, from L1 or L2)."""
    ks = tl.arange(0, DP)[None, :]
    xv = tl.load(x_ptr + 0 * rows[:, None] + ks, mask=ks < D, other=0.0)
    return tl.sum(w.to(tl.float32) * xv.to(tl.float32), axis=1)
