"""Training throughput (tokens/s) and MFU of the mini models on one GPU, and the sweep plan built from it.

    python benchmarks/throughput.py --out data/benchmarks

MFU = tokens/s x FLOPs per token / 790e12, with FLOPs per token = 6 (N_nonemb + d V) + 12 L d T
(PaLM's count: forward + backward of every weight matrix including the tied lm_head, plus attention
scores and values; the embedding lookup is free). 790 TFLOP/s is the H200's dense bf16 matmul rate
(``sparsing_lib.paths.H200_BF16_FLOPS``, which gives its source). Each case trains with the real step
(bf16 autocast, torch.compile, fused AdamW, clip) on random token ids (``--eager``: without
torch.compile); concurrency cases start k identical processes at once and add their rates. The plan
(``--plan``, CPU only) prices every grid run from committed measurements: benchmark rates and the wall
times of finished runs, alone (``--solo-runs``) or side by side in one call (``--packed``, once per
call); see ``plan``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sparsing_lib.models import ModelSpec, build_model, get_spec
from sparsing_lib.paths import H200_BF16_FLOPS
from sparsing_lib.run import GRIDS, train_config
from sparsing_lib.runs import load_run, parse_run, run_variant
from sparsing_lib.train import TrainConfig, lm_loss, make_optimizer, train_step

# shapes measured besides the mini family: the paper's smallest scale (~100M non-embedding) and two 7-layer
# shapes wider than mini-336x7 with 32-wide heads, to compare head widths at the largest mini size
EXTRA = {
    s.name: s
    for s in (
        ModelSpec("paper-0.1B", 768, 16, head_dim=128),
        ModelSpec("mini-384x7", 384, 7),
        ModelSpec("mini-352x7", 352, 7),
    )
}


def spec_by_name(name: str) -> ModelSpec:
    return EXTRA[name] if name in EXTRA else get_spec(name)


def measure(
    name: str,
    batch: int,
    seq_len: int,
    vocab: int,
    steps: int,
    warmup: int,
    barrier: tuple[Path, int] | None = None,
    compiled: bool = True,
) -> dict:
    """Time ``steps`` compiled training steps of model ``name`` after ``warmup`` steps; tokens/s and MFU.

    ``barrier`` = (folder, k): after warm-up, wait until k processes have checked in there, so that the
    timed windows of concurrent processes overlap."""
    spec = spec_by_name(name)
    model = build_model(spec, "relu", vocab).cuda()
    cfg = TrainConfig(tokens=1, batch_size=batch, seq_len=seq_len)
    opt = make_optimizer(model, cfg, fused=True)
    loss_fn = torch.compile(lm_loss) if compiled else lm_loss
    x = torch.randint(0, vocab, (warmup + steps, batch, seq_len + 1), device="cuda")

    def step(i: int) -> None:
        train_step(model, loss_fn, opt, x[i, :, :-1], x[i, :, 1:], cfg.grad_clip)

    t0 = time.perf_counter()
    for i in range(warmup):
        step(i)
    torch.cuda.synchronize()
    compile_s = time.perf_counter() - t0
    if barrier:
        (barrier[0] / str(os.getpid())).touch()
        while len(list(barrier[0].iterdir())) < barrier[1]:
            time.sleep(0.05)
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    start.record()
    for i in range(warmup, warmup + steps):
        step(i)
    end.record()
    torch.cuda.synchronize()
    seconds = start.elapsed_time(end) / 1e3
    tok_s = steps * batch * seq_len / seconds
    fpt = spec.flops_per_token(seq_len, vocab)
    return dict(
        model=name,
        compiled=compiled,
        batch=batch,
        seq_len=seq_len,
        vocab=vocab,
        non_embedding_params=spec.non_embedding_params,
        flops_per_token=fpt,
        tokens_per_s=tok_s,
        mfu=tok_s * fpt / H200_BF16_FLOPS,
        warmup_s=compile_s,
        peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30,
        gpu=torch.cuda.get_device_name(),
    )


def concurrent(name: str, k: int, args: argparse.Namespace) -> dict:
    """Start ``k`` worker processes training ``name`` at once; their summed tokens/s."""
    barrier = Path(tempfile.mkdtemp())
    cmd = [
        sys.executable,
        __file__,
        "--worker",
        name,
        "--batch",
        str(args.batch),
        "--seq-len",
        str(args.seq_len),
        "--vocab",
        str(args.vocab),
        "--steps",
        str(args.steps),
        "--warmup",
        str(args.warmup),
        "--barrier",
        f"{barrier}:{k}",
    ] + (["--eager"] if args.eager else [])
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(k)]
    results = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    row = results[0] | dict(tokens_per_s=sum(r["tokens_per_s"] for r in results))
    row["mfu"] = sum(r["mfu"] for r in results)
    return row


def load_runs(folders: list[Path]) -> list[dict]:
    """Run name, model, tokens and wall seconds (training, probing and everything around them) of finished runs."""
    runs = [load_run(f) for f in folders]
    return [
        dict(
            run=r["config"]["run"],
            model=parse_run(r["config"]["run"])[0],
            tokens=r["env"]["tokens"],
            wall_s=r["env"]["wall_seconds"],
        )
        for r in runs
    ]


def run_overhead(solo: list[dict], rates: pd.Series) -> float:
    """Seconds a run spends beyond tokens / benchmark rate (compilation, validation, checkpoints, probing,
    loading), the mean over runs that had the GPU to themselves."""
    return float(np.mean([r["wall_s"] - r["tokens"] / rates[r["model"]] for r in solo]))


def sweep_runs() -> list[tuple[str, str]]:
    """(grid, run) for every run of the mini sweep; the recipe-validation run repeats mini-160x3-relu (the
    cheapest scale) with a decay phase (``python -m sparsing_lib.run --grid scales --slice mini-160x3-relu
    --decay-frac 0.1 --out data/runs/recipe --ckpt .scratch/ckpt-recipe``)."""
    return [
        (g, r)
        for g in ("scales", "width_depth", "moe")
        for r in GRIDS[g]
        if not (g == "width_depth" and r == "mini-192x4-relu")
    ] + [("recipe", "mini-160x3-relu")]


def plan(bench: pd.DataFrame, vocab: int, solo: list[dict], packed: list[list[dict]], startup_s: float) -> pd.DataFrame:
    """Every run of the mini sweep priced in minutes of H200 time, from measurements only.

    A finished run costs what it took: its wall time if it trained alone (``solo``); a group that trained
    side by side in one call (``packed``) costs its longest wall time, shared by tokens. A run still to do
    costs the wall time of its finished twin of the other activation (same model, same tokens), or else
    tokens / rate plus the mean overhead of the solo runs; its rate is the model's best measured
    single-process rate (compiled or eager), or for a dense model not measured, the MFU interpolated
    linearly in log FLOPs per token between the measured dense models around it. Every call also pays
    ``startup_s`` (process start and imports, which run wall times leave out), once per solo run and once
    per packed group."""
    bench = bench[bench["processes"] == 1]  # concurrent benchmark rates did not add up (see README)
    bench = bench.assign(compiled=bench["compiled"] if "compiled" in bench else True)
    best = bench.loc[bench.groupby("model")["tokens_per_s"].idxmax()].set_index("model")
    dense = best[[spec_by_name(m).n_experts == 0 for m in best.index]].sort_values("flops_per_token")
    overhead = run_overhead(solo, best["tokens_per_s"]) if solo else 0.0
    measured = {r["run"]: (r["wall_s"] + startup_s, "measured, alone") for r in solo}
    for group in packed:
        wall, tokens = max(r["wall_s"] for r in group) + startup_s, sum(r["tokens"] for r in group)
        measured |= {r["run"]: (wall * r["tokens"] / tokens, f"measured, {len(group)} side by side") for r in group}
    rows = []
    for grid, run in sweep_runs():
        model, _ = parse_run(run)
        spec, cfg = get_spec(model), train_config(model, "full")
        tokens, fpt = cfg.steps * cfg.tokens_per_step, spec.flops_per_token(cfg.seq_len, vocab)
        twin = next((r for r in solo if r["model"] == model and r["tokens"] == tokens), None)
        done = grid != "recipe" and run in measured
        if done:
            seconds, basis = measured[run]
        elif twin:
            seconds, basis = twin["wall_s"] + startup_s, f"as the finished {twin['run']}"
        else:
            if model in best.index:
                rate = best.loc[model, "tokens_per_s"]
                eager = "" if best.loc[model, "compiled"] else " (eager)"
                basis = f"benchmark rate{eager} + mean overhead {overhead:.1f} s"
            elif spec.n_experts:
                raise ValueError(f"{model}: MoE throughput is not interpolated; measure it first")
            else:
                mfu = np.interp(np.log(fpt), np.log(dense["flops_per_token"]), dense["mfu"])
                rate, basis = mfu * H200_BF16_FLOPS / fpt, f"interpolated MFU + mean overhead {overhead:.1f} s"
            seconds = tokens / rate + overhead + startup_s
        rows.append(
            dict(
                grid=grid,
                run=run,
                done=done,
                tokens=tokens,
                tokens_per_param=tokens / spec.non_embedding_params,
                basis=basis,
                minutes=seconds / 60,
            )
        )
    return pd.DataFrame(rows)


# The order in which the sessions train the sweep: what the chapters most need first (the scale laws, the largest
# scales first), then the seeds, the repetition runs, the width-depth shapes, the MoE variants and last the
# recipe-validation run (Fig. 11), whose shape rests on the width-depth runs.
SWEEP_ORDER = ("large", "scale", "seed", "repetition", "width_depth", "moe", "recipe")


def sweep_group(run: str) -> str:
    """The group of a sweep run for ``SWEEP_ORDER``: large, scale, seed, repetition, width_depth, moe or recipe."""
    variant, kind = run_variant(run), get_spec(parse_run(run)[0]).kind
    return "repetition" if variant.split > 1 else "seed" if variant.seed else kind


def sweep_rates(mfu: pd.DataFrame, moe: pd.DataFrame, vocab: int) -> dict[str, tuple[float, str]]:
    """Training tokens/s of every model of GRIDS["sweep"] and how it was had: a dense model measured in ``mfu``
    (benchmarks/mfu.py rows, status ok) at that rate; one not measured at the MFU of the measured model nearest
    in log FLOPs per token (held constant); an MoE model at its compiled single-process rate in ``moe``."""
    mfu = mfu[mfu["status"] == "ok"].sort_values("flops_per_token")
    moe = moe[(moe["processes"] == 1) & moe["compiled"].astype(bool)].set_index("model")
    out = {}
    for model in dict.fromkeys(parse_run(r)[0] for r in GRIDS["sweep"]):
        spec = get_spec(model)
        fpt = spec.flops_per_token(1024, vocab)
        if spec.n_experts:
            out[model] = (float(moe.loc[model, "tokens_per_s"]), "measured (MoE, v3 step, batch 64)")
        elif model in set(mfu["model"]):
            out[model] = (float(mfu.loc[mfu["model"] == model, "tokens_per_s"].max()), "measured (v5, batch 64)")
        else:
            near = mfu.iloc[int(np.argmin(np.abs(np.log(mfu["flops_per_token"]) - np.log(fpt))))]
            rate = near["mfu"] * H200_BF16_FLOPS / fpt
            out[model] = (float(rate), f"MFU of {near['model']} ({near['mfu']:.1%}), batch 64")
    return out


def sweep_plan(
    rates: dict[str, tuple[float, str]],
    overhead_s: float,
    startup_s: float,
    eval_s: float,
    fig3_s: float,
    k_eval: float,
) -> pd.DataFrame:
    """GRIDS["sweep"] priced in GPU-minutes under the current recipe (``run.train_config``), in ``SWEEP_ORDER``:
    training = tokens / rate + ``overhead_s`` (compilation, validation, checkpoints, probes) + ``startup_s``;
    evaluation (every run, MoE included) = ``eval_s`` plus ``fig3_s`` where Fig. 3's sweeps run
    (``sweep_gpu.wants_fig3``), divided by ``k_eval``, the speed-up assumed from several evaluations per GPU."""
    from benchmarks.sweep_gpu import wants_fig3

    rows = []
    for run in GRIDS["sweep"]:
        model = parse_run(run)[0]
        cfg = train_config(model, "full")
        tokens = cfg.steps * cfg.tokens_per_step
        rate, basis = rates[model]
        train_s = tokens / rate + overhead_s + startup_s
        ev = (eval_s + (fig3_s if wants_fig3(run) else 0.0)) / k_eval
        rows.append(
            dict(
                run=run,
                group=sweep_group(run),
                index=GRIDS["sweep"].index(run),
                tokens=tokens,
                batch=cfg.batch_size,
                tokens_per_s=rate,
                rate_basis=basis,
                train_min=train_s / 60,
                eval_min=ev / 60,
                gpu_min=(train_s + ev) / 60,
            )
        )
    order = {g: i for i, g in enumerate(SWEEP_ORDER)}
    table = pd.DataFrame(rows)
    return table.sort_values(
        ["group", "tokens"], key=lambda c: c.map(order) if c.name == "group" else -c, kind="stable"
    )


def sessions(table: pd.DataFrame, capacity_min: float) -> pd.DataFrame:
    """``table`` cut, in its order, into sessions of at most ``capacity_min`` GPU-minutes (next fit: a run that
    does not fit opens the next session, so the order, and the pairs of activations, are kept). A run is trained
    and evaluated inside one session (its checkpoints do not outlive the machine), so none is split."""
    session, used = [], 0.0
    for minutes in table["gpu_min"]:
        if not session or used + minutes > capacity_min:
            session.append((session[-1] if session else 0) + 1)
            used = minutes
        else:
            session.append(session[-1])
            used += minutes
    return table.assign(session=session)


def summary(sweep: pd.DataFrame) -> str:
    """Minutes of H200 time by grid, and the total."""
    by = sweep.pivot_table(index="grid", columns="done", values="minutes", aggfunc="sum", fill_value=0.0, sort=False)
    by = by.rename(columns={True: "done", False: "to_do"}).assign(minutes=lambda d: d.sum(axis=1))
    done = sweep.loc[sweep["done"], "minutes"].sum()
    return (
        by.round(2).to_string() + f"\nwhole mini sweep: {sweep['minutes'].sum():.1f} min of H200 time, "
        f"{done:.1f} of them measured on the {int(sweep['done'].sum())} runs already done"
    )


def print_sweep_plan(args: argparse.Namespace) -> None:
    """Print (and with ``--out`` write throughput_plan_v2.csv) the sweep's price, its sessions and assumptions."""
    mfu = pd.concat([pd.read_csv(p) for p in args.plan], ignore_index=True)
    rates = sweep_rates(mfu, pd.read_csv(args.moe), int(mfu["vocab"].iloc[0]))
    table = sessions(
        sweep_plan(rates, args.overhead_s, args.startup_s, args.eval_s, args.fig3_s, args.k_eval),
        2 * args.session_min,
    )
    print(
        f"per run: training = tokens / rate + {args.overhead_s:.1f} s overhead + {args.startup_s:.0f} s start-up; "
        f"evaluation (every run) = ({args.eval_s:.0f} s + {args.fig3_s:.0f} s for Fig. 3's sweeps on the plain "
        f"scale runs) / {args.k_eval:g}, the speed-up assumed from several evaluations per GPU (not measured)\n"
        "rates: measured at batch 64; the recipe's batch differs at every scale (the column batch), so the "
        "rates of the small scales (batch < 64) are likely optimistic; MoE rates are from the v3 step "
        "(no causal kernel, no chunked loss)"
    )
    show = table.drop(columns=["index", "tokens_per_s"])
    print(show.to_string(index=False, float_format="{:.2f}".format))
    gpu = table["gpu_min"].sum()
    n = int(table["session"].max())
    print(
        f"total: {gpu:.1f} GPU-minutes ({table['train_min'].sum():.1f} training, {table['eval_min'].sum():.1f} "
        f"evaluation); {gpu / 2:.1f} minutes of a two-GPU machine if both GPUs stay busy; {n} sessions of "
        f"{args.session_min:g} minutes of work on both GPUs ({2 * args.session_min:g} GPU-minutes), in order"
    )
    for k, group in table.groupby("session"):
        print(f"session {k}: {group['gpu_min'].sum():.1f} GPU-min: {','.join(group['run'])}")
    if args.out:
        table.to_csv(args.out / "throughput_plan_v2.csv", index=False)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="mini-160x3,mini-192x4,mini-256x5,mini-320x6,mini-336x7,paper-0.1B")
    ap.add_argument("--concurrency", default="mini-160x3:2,mini-160x3:4,mini-192x4:2,mini-192x4:4")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=12288)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=4)
    ap.add_argument("--eager", action="store_true", help="train without torch.compile")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--barrier", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument(
        "--plan",
        nargs="+",
        type=Path,
        default=None,
        help="only price GRIDS['sweep'] from these benchmarks/mfu.py CSVs and --moe (no GPU needed)",
    )
    ap.add_argument("--moe", type=Path, default=None, help="--plan: measured MoE rates (throughput_v3_moe.csv)")
    ap.add_argument("--overhead-s", type=float, default=61.1, help="--plan: seconds per run beyond tokens / rate")
    ap.add_argument("--eval-s", type=float, default=360.0, help="--plan: one run's suite alone on one GPU")
    ap.add_argument("--fig3-s", type=float, default=55.0, help="--plan: Fig. 3's sweeps of one run alone")
    ap.add_argument("--k-eval", type=float, default=2.0, help="--plan: speed-up of several evaluations per GPU")
    ap.add_argument(
        "--session-min",
        type=float,
        default=24.0,
        help="--plan: minutes of work per session (30 held, less start-up and packing)",
    )
    ap.add_argument(
        "--plan-v1",
        nargs="+",
        type=Path,
        default=None,
        help="the first plan (throughput_plan.csv): the old sweep from these measured throughput CSVs",
    )
    ap.add_argument("--solo-runs", nargs="*", type=Path, default=[], help="finished run folders that trained alone")
    ap.add_argument(
        "--packed",
        nargs="+",
        type=Path,
        action="append",
        default=[],
        help="finished run folders that trained side by side in one call (repeat per call)",
    )
    ap.add_argument(
        "--startup-s",
        type=float,
        default=0.0,
        help="seconds per call beyond the runs' own wall times (process start, imports)",
    )
    args = ap.parse_args()
    if args.plan:
        print_sweep_plan(args)
        return
    if args.plan_v1:
        bench = pd.concat([pd.read_csv(p) for p in args.plan_v1], ignore_index=True)
        sweep = plan(
            bench,
            int(bench["vocab"].iloc[0]),
            load_runs(args.solo_runs),
            [load_runs(g) for g in args.packed],
            args.startup_s,
        )
        print(f"start-up per call: {args.startup_s:.0f} s")
        print(sweep.to_string(formatters={"minutes": "{:.2f}".format, "tokens_per_param": "{:.1f}".format}))
        print(summary(sweep))
        if args.out:
            sweep.to_csv(args.out / "throughput_plan.csv", index=False)
        return
    if args.worker:
        folder, k = args.barrier.rsplit(":", 1) if args.barrier else (None, 0)
        barrier = (Path(folder), int(k)) if folder else None
        print(
            json.dumps(
                measure(
                    args.worker,
                    args.batch,
                    args.seq_len,
                    args.vocab,
                    args.steps,
                    args.warmup,
                    barrier,
                    compiled=not args.eager,
                )
            )
        )
        return
    print(
        "MFU = tokens/s * (6*(N_active_nonemb + d*V) + 12*L*d*T) / "
        f"{H200_BF16_FLOPS / 1e12:.0f}e12  ({H200_BF16_FLOPS / 1e12:.0f} TFLOP/s: measured H200 dense bf16 rate)"
    )
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    cases = [(m, 1) for m in filter(None, args.models.split(","))]
    cases += [(c.split(":")[0], int(c.split(":")[1])) for c in filter(None, args.concurrency.split(","))]
    rows = []
    for name, k in cases:
        if k == 1:
            row = measure(name, args.batch, args.seq_len, args.vocab, args.steps, args.warmup, compiled=not args.eager)
            torch.cuda.empty_cache()
        else:
            row = concurrent(name, k, args)
        rows.append(row | dict(processes=k))
        print(f"{name:14s} x{k} {row['tokens_per_s'] / 1e6:7.2f} M tok/s  MFU {row['mfu']:.1%}", flush=True)
        if args.out:  # after every case, so a run cut short keeps what it measured
            pd.DataFrame(rows).to_csv(args.out / "throughput.csv", index=False)
    print(
        pd.DataFrame(rows)[
            ["model", "compiled", "processes", "batch", "tokens_per_s", "mfu", "warmup_s", "peak_mem_gib"]
        ].to_string()
    )


if __name__ == "__main__":
    main()
