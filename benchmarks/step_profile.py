"""Where a training step's time goes: a few steps of a mini under torch.profiler, by category and by kernel.

    python benchmarks/step_profile.py --configs mini-256x5:default:64,mini-256x5:default:64:causal --out $OUT --tag v5

A config is ``benchmarks/mfu.py``'s (``model:mode:batch[:micro][:flag...]``) and its step is built the same way
(``mfu.build_step``: the trainer's model, optimizer, loss and ``train_step``). After ``--warmup`` untimed steps
(compilation) ``--steps`` steps run under the profiler. On CUDA each kernel's device time counts, under the CPU
op that launched it (whose input shapes tell a matmul's role); on CPU each op's self time, with inductor's fused
C++ kernels recorded as ops of their own. The time is split into categories (``CATEGORIES``) by the names of
kernel and op and by matmul shape (the vocabulary, the FFN width or else an attention projection); ``gaps`` is
the step's wall time that no kernel (CUDA) or op (CPU) covers: Python, launches, an idle GPU. Writes
``step_profile_<tag>.csv`` (one row per config and category, per top kernel and for the step) and
``step_profile_<tag>.log`` (command, ``sparsing_lib.run.environment()`` with the revision from git or
``SPARSING_GIT_REV``, and the tables). CPU proportions do not predict a GPU's: run it on the GPU for those.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

import pandas as pd
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile

from benchmarks.mfu import build_step, parse_config
from sparsing_lib.paths import device_hardware
from sparsing_lib.run import environment

CATEGORIES = {
    "embed_logits_loss": "embedding, logits (lm_head matmuls) and loss",
    "attention": "attention kernels (SDPA)",
    "attn_proj": "attention projection matmuls (q, k, v, o)",
    "ffn": "FFN matmuls (gate, up, down)",
    "norm_elementwise": "norms, RoPE, activations and other elementwise or reduction kernels",
    "optimizer": "AdamW and gradient clipping",
    "other": "copies, memsets and anything unnamed",
    "gaps": "wall time with no kernel (CUDA) or op (CPU) running",
}
# first match wins; names are the kernel's and its op's, lower case
KEYWORDS = (
    ("optimizer", ("adam", "foreach", "multi_tensor", "optimizer")),
    ("attention", ("flash", "fmha", "attention", "sdpa", "scaled_dot_product", "cudnn")),
    ("embed_logits_loss", ("log_softmax", "nll_loss", "cross_entropy", "logsumexp", "embedding", "_softmax")),
    ("other", ("memcpy", "memset")),
)
OPTIMIZER_STEP = "Optimizer.step"
MATMULS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "gemm", "nvjet", "xmma", "cutlass", "cublas")
ELEMENTWISE = ("aten::", "triton", "cpp_fused", "elementwise", "vectorized", "reduce_kernel", "fused")


def category(name: str, shapes: list, vocab: int, d_ff: int) -> str:
    """The category (a key of ``CATEGORIES``) of a kernel or op named ``name`` (kernel and op names joined) whose
    op had input ``shapes``; a matmul's role comes from its shapes: the vocabulary's width makes it a logits
    matmul, the FFN's width an FFN one, anything else an attention projection."""
    low = name.lower()
    for cat, words in KEYWORDS:
        if any(w in low for w in words):
            return cat
    if any(w in low for w in MATMULS):
        dims = {d for shape in shapes if isinstance(shape, list | tuple) for d in shape}
        return "embed_logits_loss" if vocab in dims else "ffn" if d_ff in dims else "attn_proj"
    return "norm_elementwise" if any(w in low for w in ELEMENTWISE) else "other"


def _in_optimizer_step(evt: object) -> bool:
    """Whether ``evt`` runs inside ``Optimizer.step`` (whose record_function is named after it): on CPU AdamW runs
    as plain elementwise ops (``aten::mul_``, ``aten::lerp_``), which only their caller tells from the model's."""
    while evt is not None:
        if evt.name.startswith(OPTIMIZER_STEP):
            return True
        evt = evt.cpu_parent
    return False


def timings(prof: profile, cuda: bool) -> tuple[list[tuple[str, list, float]], float]:
    """(name, op input shapes, microseconds) for every kernel (CUDA: attributed to its launching op) or every
    op's self time (CPU), and the device time of CUDA kernels no op claims (0 on CPU)."""
    rows, linked = [], 0.0
    for evt in prof.events():
        if evt.device_type != DeviceType.CPU:
            continue
        name = evt.name + (f" <- {OPTIMIZER_STEP}" if _in_optimizer_step(evt.cpu_parent) else "")
        if cuda:
            for k in evt.kernels:
                rows.append((f"{k.name} <- {name}", evt.input_shapes, k.duration))
                linked += k.duration
        elif evt.self_cpu_time_total > 0:
            rows.append((name, evt.input_shapes, evt.self_cpu_time_total))
    if not cuda:
        return rows, 0.0
    device = sum(e.time_range.elapsed_us() for e in prof.events() if e.device_type == DeviceType.CUDA)
    return rows, max(0.0, device - linked)


def profile_config(config: str, seq_len: int, vocab: int, steps: int, warmup: int, device: str) -> pd.DataFrame:
    """Profile ``steps`` steps of ``config`` after ``warmup`` untimed ones; rows of section category | kernel | step
    with milliseconds, share of the step's wall time and calls, per step."""
    cuda = device == "cuda"
    if not cuda:  # inductor's C++ kernels as profiler events, not hidden in the compiled graph's self time
        torch._inductor.config.cpp.enable_kernel_profile = True
    step = build_step(config, seq_len, vocab, device)
    step.run(warmup, 0)
    sync = torch.cuda.synchronize if cuda else lambda: None
    sync()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, record_shapes=True) as prof:
        t0 = time.perf_counter()
        step.run(steps, warmup)
        sync()
        wall_us = (time.perf_counter() - t0) * 1e6
    rows, unlinked = timings(prof, cuda)
    d_ff = step.spec.d_ff
    by_cat: dict[str, float] = defaultdict(float, other=unlinked)
    kernels: dict[tuple[str, str], list] = defaultdict(lambda: [0.0, 0])  # (name, category): [us, calls]
    for name, shapes, us in rows:
        cat = category(name, shapes, vocab, d_ff)
        by_cat[cat] += us
        kernels[name, cat][0] += us
        kernels[name, cat][1] += 1
    busy = sum(by_cat.values())
    by_cat["gaps"] = max(0.0, wall_us - busy)
    base = dict(config=config, device=device_hardware(device), steps=steps)
    out = [
        dict(section="step", name="wall", category="", us=wall_us, calls=steps),
        dict(section="step", name="busy", category="", us=busy, calls=len(rows)),
    ]
    out += [dict(section="category", name=cat, category=cat, us=by_cat.get(cat, 0.0), calls=0) for cat in CATEGORIES]
    out += [dict(section="kernel", name=n, category=cat, us=us, calls=k) for (n, cat), (us, k) in kernels.items()]
    out = [
        base
        | dict(section=r["section"], name=r["name"], category=r["category"])
        | dict(ms_per_step=r["us"] / steps / 1e3, share=r["us"] / wall_us, calls_per_step=r["calls"] / steps)
        for r in out
    ]
    return pd.DataFrame(out)


def report(table: pd.DataFrame, top: int) -> str:
    """The categories and the ``top`` kernels of one config as text for the log."""
    cats = table[table.section == "category"].set_index("name")
    step = table[table.section == "step"].set_index("name")["ms_per_step"]
    lines = [f"{table.config.iloc[0]} on {table.device.iloc[0]}: wall {step['wall']:.2f} ms/step"]
    lines += [f"  {n:18s} {r.ms_per_step:9.3f} ms {100 * r.share:5.1f} %  {CATEGORIES[n]}" for n, r in cats.iterrows()]
    kern = table[table.section == "kernel"].nlargest(top, "ms_per_step")
    lines.append(f"  top {len(kern)} kernels (CUDA) or ops (CPU), name <- launching op:")
    for r in kern.itertuples():
        lines.append(f"  {r.ms_per_step:9.3f} ms {100 * r.share:5.1f} % x{r.calls_per_step:5.1f}  {r.name[:150]}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", required=True, help="comma-separated model:mode:batch[:micro][:flag...]")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=12288)
    ap.add_argument("--steps", type=int, default=5, help="profiled steps")
    ap.add_argument("--warmup", type=int, default=5, help="untimed steps first (compilation)")
    ap.add_argument("--top", type=int, default=25, help="kernels listed in the log")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("data/benchmarks"))
    ap.add_argument("--tag", default="run")
    args = ap.parse_args(argv)
    configs = [parse_config(c)["config"] for c in args.configs.split(",") if c]
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment() | dict(gpus=torch.cuda.device_count())
    log = args.out / f"step_profile_{args.tag}.log"
    command = " ".join(argv if argv is not None else sys.argv[1:])
    log.write_text(f"command: python benchmarks/step_profile.py {command}\nenvironment: {json.dumps(env)}\n")
    tables = []
    for config in configs:
        torch._dynamo.reset()  # each config compiles afresh, as in its own process
        tables.append(profile_config(config, args.seq_len, args.vocab, args.steps, args.warmup, args.device))
        text = report(tables[-1], args.top)
        print(text, flush=True)
        with open(log, "a") as f:
            f.write(text + "\n")
        pd.concat(tables).to_csv(args.out / f"step_profile_{args.tag}.csv", index=False)  # after each config
    return 0


if __name__ == "__main__":
    sys.exit(main())
