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
down rows, measured on the generated pattern). Writes decode_ffn.csv, decode_ffn.log and
decode_summary.csv under --out.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
import traceback
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from sparsing_lib.decode import bench, ffn_bytes
from sparsing_lib.decode.reference import ACTS, gather_ffn

RELU_RATIOS = (0.065, 0.10, 0.20)
BATCHES = (1, 4, 16)
L2_BYTES = 50 * 2**20  # the H200's L2 cache; the rotating layers together are three times larger


def dense_call(layer: dict):
    act = ACTS[layer["act"]]
    return lambda x: F.linear(act(F.linear(x, layer["wg"])) * F.linear(x, layer["wu"]), layer["wd"])


def sparse_calls(layers: list[dict], cuda: bool) -> list[tuple[str, object]]:
    """(name, per-layer function) for each configuration; the CPU runs the reference gather path."""
    if not cuda:
        return [
            ("reference", lambda x, L: gather_ffn(x, L["wg"], L["wu"], L["wdt"], L["cut"].to(x.dtype), L["act"])[0])
        ]
    from sparsing_lib.decode import kernels as K

    ws = K.Workspace(layers[0]["wg"].shape[1], layers[0]["wg"].shape[0], layers[0]["wg"].device)
    b = layers[0]["x"].shape[0]
    return [
        (str(c), lambda x, L, c=c: K.sparse_ffn(x, L["wg"], L["wu"], L["wdt"], L["cut"], L["act"], ws, c))
        for c in bench.configs(b)
    ]


def run_case(shape: str, act: str, ratio: float, batch: int, args, log) -> dict:
    d, d_ff = bench.SHAPES[shape]
    dev = "cuda" if args.cuda else "cpu"
    dtype = torch.bfloat16 if args.cuda else torch.float32
    n_layers = 2 if not args.cuda else max(2, math.ceil(3 * L2_BYTES / ffn_bytes(d, d_ff, 1, 1)))
    x64 = torch.randn(batch, d, dtype=torch.float64, device=dev, generator=torch.Generator(dev).manual_seed(batch))
    layers = [bench.controlled_layer(x64, d_ff, ratio, act, dtype, seed=1000 * batch + i) for i in range(n_layers)]
    x = layers[0]["x"]
    first = layers[0]
    dense = [dense_call(L) for L in layers]
    row = dict(level="ffn layer", shape=shape, activation=act, activation_ratio=ratio, batch=batch, layers=n_layers)
    row.update({k: first[k] for k in ("kept", "kept_union", "candidate_union")})
    row["dense_rel_err"] = bench.rel_error(dense[0](x), first["dense_ref"])
    t = bench.time_us(lambda: [f(x) for f in dense], args.reps, args.cuda)
    row["dense_us"] = t["median_us"] / n_layers
    row["dense_p10_us"], row["dense_p90_us"] = t["p10_us"] / n_layers, t["p90_us"] / n_layers
    best = None
    for name, fn in sparse_calls(layers, args.cuda):
        try:
            err = bench.rel_error(fn(x, first), first["ref"])
            ok = err < bench.TOLERANCE
            log(f"  CHECK {'ok  ' if ok else 'FAIL'} rel. error {err:.2e} (dense {row['dense_rel_err']:.2e})  {name}")
            if not ok:
                continue
            ts = bench.time_us(lambda fn=fn: [fn(x, L) for L in layers], args.reps, args.cuda)
            log(f"        {ts['median_us'] / n_layers:8.2f} us/layer")
            if best is None or ts["median_us"] < best[1]["median_us"]:
                best = (name, ts, err)
        except Exception:  # a config that does not compile or crashes is skipped, not fatal
            log(f"  CRASH {name}\n" + "".join("        " + s for s in traceback.format_exc().splitlines(True)[-4:]))
    if best is None:
        row.update(sparse_us=float("nan"), config="none passed", sparse_rel_err=float("nan"))
    else:
        row.update(config=best[0], sparse_rel_err=best[2], sparse_us=best[1]["median_us"] / n_layers)
        row["sparse_p10_us"], row["sparse_p90_us"] = best[1]["p10_us"] / n_layers, best[1]["p90_us"] / n_layers
    row["speedup"] = row["dense_us"] / row["sparse_us"]
    dense_b = ffn_bytes(d, d_ff, 1, 1)
    sparse_b = ffn_bytes(d, d_ff, row["candidate_union"], row["kept_union"])
    row["limit"] = dense_b / sparse_b
    row["dense_tbps"] = dense_b / row["dense_us"] / 1e6
    row["sparse_tbps"] = sparse_b / row["sparse_us"] / 1e6
    row["copy_limit_sparse_us"] = sparse_b / args.copy_bw * 1e6
    row["copy_limit_dense_us"] = dense_b / args.copy_bw * 1e6
    return row


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
    logf = open(args.out / "decode_ffn.log", "w")

    def log(msg: str) -> None:
        print(msg, flush=True)
        logf.write(msg + "\n")

    log(
        bench.header("python " + " ".join(sys.argv if argv is None else ["benchmarks/decode_ffn.py", *argv]), args.cuda)
    )
    args.copy_bw = bench.copy_bandwidth(args.cuda)
    log(f"# copy bandwidth: {args.copy_bw / 1e12:.2f} TB/s (read + write)")
    silu = bench.run_ratios("mini-336x7-silu")["mean"]
    shapes = ("2.4B", "0.1B") if args.cuda else ("smoke",)
    cases = [(a, r) for a, rs in (("relu", RELU_RATIOS), ("silu", (round(silu, 4),))) for r in rs]
    rows = []
    for shape in shapes:
        for act, ratio in cases:
            for batch in BATCHES:
                t0 = time.time()
                log(f"{shape} {act} ratio {ratio} batch {batch}")
                rows.append(run_case(shape, act, ratio, batch, args, log))
                r = rows[-1]
                log(f"  dense {r['dense_us']:.2f} us, sparse {r['sparse_us']:.2f} us, speed-up {r['speedup']:.2f}x")
                log(f"  (limit {r['limit']:.2f}x), union kept {r['kept_union']:.3f}  [{time.time() - t0:.0f} s]")
                df = pd.DataFrame(rows)  # written after every case: a run cut short keeps what it measured
                df.to_csv(args.out / "decode_ffn.csv", index=False)
                bench.write_summary(args.out)
    cols = ["shape", "activation", "activation_ratio", "batch", "dense_us", "sparse_us", "speedup", "limit"]
    log(df[cols].to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    logf.close()
    return df


if __name__ == "__main__":
    main()
