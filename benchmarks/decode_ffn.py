"""One FFN layer at decode time: dense cuBLAS against the sparse Triton kernels, with the bandwidth limit.

    SPARSING_GIT_REV=<rev> python benchmarks/decode_ffn.py --out $OUT          # one H200, ~3 minutes
    python benchmarks/decode_ffn.py --smoke --out /tmp/decode                   # CPU, reference path

Cases: shapes 2.4B (d 2304, d_ff 5760) and 0.1B (768, 1920), bf16; ReLU at activation ratios 0.065, 0.10,
0.20 (each batch row its own random active set, so the union grows with the batch) and SiLU at the
CETT-PPL-1% ratio of our largest SiLU run (a CETT cut: all of W_up is read); batches 1, 4, 16. Each call is
captured in a CUDA graph and replayed over a rotating set of layers whose weights exceed the L2 cache, so
the weights stream from HBM; per-layer time = median replay / layers. Every kernel configuration is first
checked against the float64 reference (a failing or crashing one is skipped, and logged); the fastest
correct one is reported. The limit is dense bytes over sparse bytes (gate + candidate up rows + kept
down rows, measured on the generated pattern). For ReLU at batch 1, after the winner is chosen, the same
harness times where its time goes (``bench.diagnose``: cuBLAS's gate product alone, the winning one-launch
configuration stopped after its gate, a device copy of the sparse bytes), extra columns of decode_ffn.csv and
a "where the time goes" line in the log. Writes decode_ffn.csv, decode_ffn.log and decode_summary.csv under
--out.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import pandas as pd
import torch

from sparsing_lib.decode import bench

RELU_RATIOS = (0.065, 0.10, 0.20)
BATCHES = (1, 4, 16)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--smoke", action="store_true", help="CPU reference path at toy size (tests the logic)")
    p.add_argument("--reps", type=int, default=None)
    args = p.parse_args(argv)
    args.cuda = not args.smoke
    if args.cuda and not torch.cuda.is_available():
        p.error("no CUDA GPU: run with --smoke on a CPU")
    args.reps = args.reps or (200 if args.cuda else 3)
    args.out.mkdir(parents=True, exist_ok=True)
    log = bench.log_to(args.out / "decode_ffn.log")

    log(
        bench.header("python " + " ".join(sys.argv if argv is None else ["benchmarks/decode_ffn.py", *argv]), args.cuda)
    )
    args.copy_bw = bench.copy_bandwidth(args.cuda)
    log(f"# copy bandwidth: {args.copy_bw / 1e12:.2f} TB/s (read + write)")
    silu_run = bench.largest_run("silu")
    silu = bench.run_ratios(silu_run)["mean"]
    log(f"# SiLU ratio {silu:.4f}: CETT-PPL-1% of {silu_run}, our largest probed SiLU run")
    shapes = ("2.4B", "0.1B") if args.cuda else ("smoke",)
    cases = [(a, r) for a, rs in (("relu", RELU_RATIOS), ("silu", (round(silu, 4),))) for r in rs]
    rows = []
    for shape in shapes:
        for act, ratio in cases:
            for batch in BATCHES:
                t0 = time.time()
                log(f"{shape} {act} ratio {ratio} batch {batch}")
                rows.append(bench.ffn_case(shape, act, ratio, batch, args.cuda, args.reps, args.copy_bw, log))
                r = rows[-1]
                log(f"  dense {r['dense_us']:.2f} us, sparse {r['sparse_us']:.2f} us, speed-up {r['speedup']:.2f}x")
                log(f"  (limit {r['limit']:.2f}x), union kept {r['kept_union']:.3f}  [{time.time() - t0:.0f} s]")
                df = pd.DataFrame(rows)  # written after every case: a run cut short keeps what it measured
                df.to_csv(args.out / "decode_ffn.csv", index=False)
                bench.write_summary(args.out)
    cols = ["shape", "activation", "activation_ratio", "batch", "dense_us", "sparse_us", "speedup", "limit"]
    log(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    return df


if __name__ == "__main__":
    main()
