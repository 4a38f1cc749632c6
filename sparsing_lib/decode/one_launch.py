"""The single-launch sparse FFN kernel (``Config.variant == "one"``): gate, up and down in one launch, no
candidate list, no host synchronisation; ``kernels.sparse_ffn`` launches it.

Each program takes blocks of ``BLOCK_N`` neurons through the gate, the activation, then, only if the block has a
candidate, their up rows (masked loads of the other rows fetch nothing), the cut, and their kept rows of
``W_downᵀ``, whose sum it adds into a float32 accumulator (relaxed atomics, one per output element per block
with a kept neuron). At batch 1 every load of a block is issued before the first is used (``gemv``); 2 to 4
tokens run through the same code one token after the other, more through the padded ``tl.dot`` products. The
last program to take a ticket writes the output (with the residual) and zeroes the accumulator for the next
call, each tile only after all its warps have read it.

Why one launch: in the first H200 measurement (2.4B shape, batch 1) the two-launch variants lost time in two
places. Their loops over ``d`` waited for each chunk's load before issuing the next, so the gate streamed well
below the bandwidth of a cuBLAS GEMV; and the second launch is a chain of dependent waits (count, indices, up
rows chunk by chunk, down rows chunk by chunk, tickets). This kernel keeps a whole block in flight per program
with several programs per SM, and the up and down reads of some blocks overlap the gate reads of others.

Batch-1 forms added after the second H200 run (16.3 µs at the 2.4B shape and 6.5 %, 30 MB at 1.84 TB/s, against
11.1 µs for those bytes at the measured copy bandwidth), each aimed at a part of that gap (``_rows_block``). They
load whole rows (``gemv._whole_rows``) in one register layout for gate, up and down rows: with the chunked gate
rows of the other forms carried through a loop, the compiler converted whole down tiles through shared memory.

* ``STEPS > 1``, a persistent grid (``Config.per_sm``): ``per_sm`` programs per SM, all resident, each walking
  the blocks ``pid, pid + P, …`` two per trip, with every block's gate rows requested one block ahead of their
  use. With one program per block, a program whose block has a candidate spends two of its three memory
  latencies waiting for a few up and down rows, and its slot on the SM fetches no gate rows meanwhile (42 % of
  8-neuron blocks at 6.5 %); here the next block's gate rows are in flight during those waits. And 720 blocks
  of 8 neurons fill 528 slots 1.36 times, the last part-wave at a third of the occupancy; the persistent grid
  gives every program the same number of blocks (``kernels._one_grid``). The ticket counts programs
  (``tl.num_programs``), not blocks, so the output conversion needs no change.
* ``EAGER`` (``Config.eager``): a block's candidate down rows are requested together with its up rows, not
  after the cut: one memory latency fewer per candidate block, and so in the chain of latencies (gate, up,
  down, atomics, ticket, output) that the last blocks add after the weights have streamed. It reads nothing
  extra for ReLU at the zero threshold (every candidate is kept); under a CETT cut it reads the rows of the
  candidates the cut drops (for SiLU, all of them).
* ``EVICT`` (``Config.stream``, any batch-1 form): the weight loads carry the evict-first hint (L1 and L2), as
  every weight is read once per decode step; the accumulator, input and counters keep their L2 lines.

``GATE_ONLY`` (``kernels.sparse_ffn(..., gate_only=True)``) is a diagnostic, not a form to run: it measures how
much of a configuration's time its gate pass takes. Each block stops after its gate product and activation and
stores the activations (float32, into the workspace's buffer: without a use of the product the compiler would
drop the gate loads); no up or down row is read and nothing is added, while the launch, the gate loads, the
ticket and the last program's output pass are those of the full kernel (the output is the residual alone). The
full kernel's time minus this one's is what its up and down work adds to the layer.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .gemv import _activate, _rows_times_x, _whole_rows, _whole_rows_dot_x


@triton.jit
def _one_block(x_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, acc_ptr, rows, g, B, D: tl.constexpr, F: tl.constexpr,
               ACT: tl.constexpr, BP: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
               BLOCK_D: tl.constexpr, EVICT: tl.constexpr, GATE_ONLY: tl.constexpr):  # fmt: skip
    """A block's work after its gate product ``g`` [BLOCK_N, BP]: the activation, and if the block has a
    candidate, the up rows, the cut and the kept down rows added into the accumulator. Returns whether it
    added anything. ``GATE_ONLY``: the activations stored into ``s_ptr`` [·, F] instead (module doc)."""
    bs = tl.arange(0, BP)
    bmask = bs < B
    s = _activate(g, ACT)
    s = tl.where((rows < F)[:, None] & bmask[None, :], s, 0.0)
    cand = tl.max((s != 0.0).to(tl.int32), axis=1) > 0  # the union over the batch
    wrote = False
    if GATE_ONLY:
        tl.store(s_ptr + bs[None, :] * F + rows[:, None], s, mask=(rows < F)[:, None] & bmask[None, :])
    elif tl.max(cand.to(tl.int32), axis=0) > 0:  # most blocks have no candidate at low activation ratios
        a = s * _rows_times_x(wu_ptr, rows, cand, x_ptr, B, D, BP, BLOCK_N, BLOCK_K, EVICT)  # candidate rows only
        c = tl.load(cut_ptr + rows, mask=cand, other=0.0)
        a = tl.where((a != 0.0) & (tl.abs(a) >= c[:, None]), a, 0.0)
        kept = tl.max((a != 0.0).to(tl.int32), axis=1) > 0
        if tl.max(kept.to(tl.int32), axis=0) > 0:
            for d0 in tl.static_range(0, D, BLOCK_D):  # one chunk when BLOCK_D ≥ d: every load in flight at once
                ds = d0 + tl.arange(0, BLOCK_D)
                wd = tl.load(wd_ptr + rows[:, None] * D + ds[None, :], mask=kept[:, None] & (ds[None, :] < D),
                             other=0.0, eviction_policy=EVICT)  # fmt: skip
                if BP > 4:
                    tl.atomic_add(acc_ptr + bs[:, None] * D + ds[None, :], tl.dot(tl.trans(a.to(wd.dtype)), wd),
                                  mask=bmask[:, None] & (ds[None, :] < D), sem="relaxed")  # fmt: skip
                elif BP == 1:
                    part = tl.sum(a * wd.to(tl.float32), axis=0)[None, :]
                    tl.atomic_add(acc_ptr + ds[None, :], part, mask=ds[None, :] < D, sem="relaxed")
                else:
                    for b in range(BP):
                        ab = tl.sum(tl.where(bs[None, :] == b, a, 0.0), axis=1)  # column b of a
                        part = tl.sum(ab[:, None] * wd.to(tl.float32), axis=0)
                        tl.atomic_add(acc_ptr + b * D + ds, part, mask=(ds < D) & (b < B), sem="relaxed")
            wrote = True
    return wrote


@triton.jit
def _rows_block(x_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, acc_ptr, w, rows, D: tl.constexpr, F: tl.constexpr,
                ACT: tl.constexpr, DP: tl.constexpr, EAGER: tl.constexpr, EVICT: tl.constexpr,
                GATE_ONLY: tl.constexpr):  # fmt: skip
    """Batch 1: ``_one_block`` for a block whose gate rows ``w`` are loaded whole (``gemv._whole_rows``), with its
    up and down rows loaded whole too (one layout for all three). Returns whether it added anything."""
    s = _activate(_whole_rows_dot_x(w, rows, x_ptr, D, DP), ACT)
    s = tl.where(rows < F, s, 0.0)
    cand = s != 0.0
    wrote = False
    if GATE_ONLY:
        tl.store(s_ptr + rows, s, mask=rows < F)
    elif tl.max(cand.to(tl.int32), axis=0) > 0:
        if EAGER:  # the candidates' down rows requested with their up rows
            wd = _whole_rows(wd_ptr, rows, cand, D, DP, EVICT)
        a = s * _whole_rows_dot_x(_whole_rows(wu_ptr, rows, cand, D, DP, EVICT), rows, x_ptr, D, DP)
        c = tl.load(cut_ptr + rows, mask=cand, other=0.0)
        a = tl.where((a != 0.0) & (tl.abs(a) >= c), a, 0.0)
        kept = a != 0.0
        if tl.max(kept.to(tl.int32), axis=0) > 0:
            if not EAGER:
                wd = _whole_rows(wd_ptr, rows, kept, D, DP, EVICT)
            ds = tl.arange(0, DP)
            part = tl.sum(a[:, None] * wd.to(tl.float32), axis=0)  # dropped rows have a = 0
            tl.atomic_add(acc_ptr + ds, part, mask=ds < D, sem="relaxed")
            wrote = True
    return wrote


@triton.jit
def _one_kernel(
    x_ptr, wg_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, ticket_ptr, acc_ptr, y_ptr, res_ptr,
    B, D: tl.constexpr, F: tl.constexpr, ACT: tl.constexpr, BP: tl.constexpr, BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr, BLOCK_F: tl.constexpr, HAS_RES: tl.constexpr,
    ROWS: tl.constexpr, STEPS: tl.constexpr, DP: tl.constexpr, EAGER: tl.constexpr, EVICT: tl.constexpr,
    GATE_ONLY: tl.constexpr,
):  # fmt: skip
    """One-launch kernel: each program takes ``STEPS`` blocks of ``BLOCK_N`` neurons (one, or with a persistent
    grid the blocks ``pid + step · programs``) through gate, up and down and adds their output into the float32
    accumulator; the last program to finish writes the output and clears the accumulator for the next call, in
    [BP, BLOCK_F] tiles. ``ROWS``: batch 1 through ``_rows_block`` (the persistent and eager forms)."""
    pid = tl.program_id(0)
    bs = tl.arange(0, BP)
    bmask = bs < B
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    if not ROWS:
        g = _rows_times_x(wg_ptr, rows, rows < F, x_ptr, B, D, BP, BLOCK_N, BLOCK_K, EVICT)
        wrote = _one_block(x_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, acc_ptr, rows, g, B, D, F, ACT, BP, BLOCK_N,
                           BLOCK_K, BLOCK_D, EVICT, GATE_ONLY)  # fmt: skip
    elif STEPS == 1:
        w = _whole_rows(wg_ptr, rows, rows < F, D, DP, EVICT)
        wrote = _rows_block(x_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, acc_ptr, w, rows, D, F, ACT, DP, EAGER, EVICT,
                            GATE_ONLY)  # fmt: skip
    else:  # persistent: two blocks per trip, each block's gate rows requested one block ahead of their use
        step = tl.num_programs(0) * BLOCK_N
        wa = _whole_rows(wg_ptr, rows, rows < F, D, DP, EVICT)
        wrote = tl.zeros([], tl.int1)
        for _ in range((STEPS + 1) // 2):  # blocks past the last (rows ≥ F) load nothing and have no candidate
            rows_b = rows + step
            wb = _whole_rows(wg_ptr, rows_b, rows_b < F, D, DP, EVICT)
            tl.debug_barrier()  # keeps ptxas from sinking those loads below the work that follows (its scheduler
            # delays loads used only later, and so would leave one block in flight instead of two)
            wrote |= _rows_block(x_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, acc_ptr, wa, rows, D, F, ACT, DP, EAGER,
                                 EVICT, GATE_ONLY)  # fmt: skip
            rows = rows_b + step
            wa = _whole_rows(wg_ptr, rows, rows < F, D, DP, EVICT)
            tl.debug_barrier()
            wrote |= _rows_block(x_ptr, wu_ptr, wd_ptr, cut_ptr, s_ptr, acc_ptr, wb, rows_b, D, F, ACT, DP, EAGER,
                                 EVICT, GATE_ONLY)  # fmt: skip
    tl.debug_barrier()  # every thread's output atomics precede the program's ticket
    if wrote:  # release: this program's additions are visible to whoever takes the last ticket
        ticket = tl.atomic_add(ticket_ptr, 1, sem="acq_rel")
    else:  # nothing to release (no fence), but the last ticket must still acquire everyone's additions
        ticket = tl.atomic_add(ticket_ptr, 1, sem="acquire")
    if ticket == tl.num_programs(0) - 1:
        for d0 in tl.static_range(0, D, BLOCK_F):
            ds = d0 + tl.arange(0, BLOCK_F)
            m = bmask[:, None] & (ds[None, :] < D)
            off = bs[:, None] * D + ds[None, :]
            v = tl.load(acc_ptr + off, mask=m, other=0.0, cache_modifier=".cg")
            if HAS_RES:  # the decoder's residual add, fused
                v += tl.load(res_ptr + off, mask=m, other=0.0).to(tl.float32)
            tl.store(y_ptr + off, v.to(y_ptr.dtype.element_ty), mask=m)
            # Every warp has read this tile before any warp clears it: the compiler gives the zero store its own
            # register layout (four floats per thread, warps over rows and columns, where the load has one warp
            # per row), so without the barrier a warp that runs ahead zeroes elements another warp has yet to read.
            tl.debug_barrier()
            tl.store(acc_ptr + off, tl.zeros([BP, BLOCK_F], tl.float32), mask=m)
        tl.store(ticket_ptr, 0)
