"""Training throughput (tokens/s) and MFU of the mini models on one GPU, and the sweep plan built from it.

    python benchmarks/throughput.py --out data/benchmarks

MFU = tokens/s x FLOPs per token / 790e12, with FLOPs per token = 6 (N_nonemb + d V) + 12 L d T
(PaLM's count: forward + backward of every weight matrix including the tied lm_head, plus attention
scores and values; the embedding lookup is free). 790 TFLOP/s is the dense bf16 matmul rate measured on
the lent H200 (8192^3, random data). Each case trains with the real step (bf16 autocast, torch.compile,
fused AdamW, clip) on random token ids; concurrency cases start k identical processes at once and add
their rates. The plan prices every grid run with the measured rate of its model (the best per-process
concurrency for models that gain from it).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F

from sparsing_lib.models import ModelSpec, build_model, get_spec
from sparsing_lib.run import GRIDS, parse_run, train_config
from sparsing_lib.train import H200_BF16_FLOPS, TrainConfig, make_optimizer

PAPER_01B = ModelSpec("paper-0.1B", 768, 16, head_dim=128)  # the paper's smallest scale, ~100M non-embedding


def spec_by_name(name: str) -> ModelSpec:
    return PAPER_01B if name == PAPER_01B.name else get_spec(name)


def measure(name: str, batch: int, seq_len: int, vocab: int, steps: int, warmup: int) -> dict:
    """Time ``steps`` compiled training steps of model ``name`` after ``warmup`` steps; tokens/s and MFU."""
    spec = spec_by_name(name)
    model = build_model(spec, "relu", vocab).cuda()
    cfg = TrainConfig(tokens=1, batch_size=batch, seq_len=seq_len)
    opt = make_optimizer(model, cfg, fused=True)
    fwd = torch.compile(model)
    x = torch.randint(0, vocab, (warmup + steps, batch, seq_len + 1), device="cuda")

    def step(i: int) -> None:
        with torch.autocast("cuda", torch.bfloat16):
            logits = fwd(input_ids=x[i, :, :-1]).logits
        F.cross_entropy(logits.float().flatten(0, 1), x[i, :, 1:].flatten()).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)

    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(warmup, warmup + steps):
        step(i)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3
    tok_s = steps * batch * seq_len / seconds
    fpt = spec.flops_per_token(seq_len, vocab)
    return dict(model=name, batch=batch, seq_len=seq_len, vocab=vocab, non_embedding_params=spec.non_embedding_params,
                flops_per_token=fpt, tokens_per_s=tok_s, mfu=tok_s * fpt / H200_BF16_FLOPS, warmup_s=compile_s,
                peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30, gpu=torch.cuda.get_device_name())


def concurrent(name: str, k: int, args: argparse.Namespace) -> dict:
    """Start ``k`` worker processes training ``name`` at once; their summed tokens/s."""
    cmd = [sys.executable, __file__, "--worker", name, "--batch", str(args.batch), "--seq-len", str(args.seq_len),
           "--vocab", str(args.vocab), "--steps", str(args.steps * 2), "--warmup", str(args.warmup)]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    row = results[0] | dict(tokens_per_s=sum(r["tokens_per_s"] for r in results))
    row["mfu"] = sum(r["mfu"] for r in results)
    return row


def plan(bench: pd.DataFrame, vocab: int) -> pd.DataFrame:
    """Every grid run priced with the measured (best-concurrency) throughput of its model size."""
    best = bench.groupby("model")["tokens_per_s"].max()
    rows = []
    for grid in ("scales", "width_depth", "moe"):
        for run in GRIDS[grid]:
            model, _ = parse_run(run)
            if grid == "width_depth" and model == "mini-192x4":
                continue  # already in "scales"
            cfg = train_config(model, "full")
            spec = get_spec(model)
            tokens = cfg.steps * cfg.tokens_per_step
            fpt = spec.flops_per_token(cfg.seq_len, vocab)
            if model in best:
                rate, basis = best[model], model
            else:  # price unmeasured shapes at the MFU of the nearest measured scale by FLOPs per token
                near = bench.loc[(bench["flops_per_token"] - fpt).abs().idxmin()]
                rate, basis = near["mfu"] * H200_BF16_FLOPS / fpt, f"MFU of {near['model']}"
                if spec.n_experts:
                    rate /= 2  # routed experts run as grouped small matmuls: assume half the dense rate
                    basis += " / 2 (MoE)"
            rows.append(dict(grid=grid, run=run, tokens=tokens, tokens_per_s=rate, basis=basis,
                             minutes=tokens / rate / 60))
    rows.append(dict(grid="recipe", run="mini-256x5-relu (decay on)", tokens=rows[4]["tokens"],
                     tokens_per_s=rows[4]["tokens_per_s"], basis=rows[4]["basis"], minutes=rows[4]["minutes"]))
    return pd.DataFrame(rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mini-160x3,mini-192x4,mini-256x5,mini-320x6,mini-384x7,paper-0.1B")
    ap.add_argument("--concurrency", default="mini-160x3:2,mini-160x3:4,mini-192x4:2,mini-192x4:4")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=16384)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(measure(args.worker, args.batch, args.seq_len, args.vocab, args.steps, args.warmup)))
        return
    print("MFU = tokens/s * (6*(N_nonemb + d*V) + 12*L*d*T) / 790e12  (790 TFLOP/s: measured H200 dense bf16 rate)")
    rows = []
    for name in args.models.split(","):
        rows.append(measure(name, args.batch, args.seq_len, args.vocab, args.steps, args.warmup) | dict(processes=1))
        print(f"{name:12s} {rows[-1]['tokens_per_s'] / 1e6:7.2f} M tok/s  MFU {rows[-1]['mfu']:.1%}", flush=True)
        torch.cuda.empty_cache()
    for case in filter(None, args.concurrency.split(",")):
        name, k = case.split(":")
        rows.append(concurrent(name, int(k), args) | dict(processes=int(k)))
        print(f"{name:12s} x{k} {rows[-1]['tokens_per_s'] / 1e6:7.2f} M tok/s  MFU {rows[-1]['mfu']:.1%}", flush=True)
    bench = pd.DataFrame(rows)
    sweep = plan(bench, args.vocab)
    print(bench[["model", "processes", "batch", "tokens_per_s", "mfu", "warmup_s", "peak_mem_gib"]].to_string())
    print(sweep.to_string())
    print(f"whole mini sweep: {sweep['minutes'].sum():.1f} min of H200 time (training only)")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        bench.to_csv(args.out / "throughput.csv", index=False)
        sweep.to_csv(args.out / "throughput_plan.csv", index=False)


if __name__ == "__main__":
    main()
