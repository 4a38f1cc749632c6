"""One model trained on 1 process and on N processes (DistributedDataParallel), same seed and global batch.

    python benchmarks/ddp.py --run mini-256x5-relu --steps 300 --nproc 2 --out data/benchmarks --tag h200


Both runs go through the real trainer (``python -m sparsing_lib.run --grid G --slice RUN --no-probe``, the
second under ``torch.distributed.run``), each into its own folder, and see the same tokens at every step. A third
run, on 1 process with another seed and beside the first on the second GPU, measures the seed noise that the
N-process curve is judged against; the two 1-process runs share only the host's CPU cores. Writes
``ddp_<tag>.csv`` (both loss curves, one row per log step and world size), ``ddp_<tag>_summary.csv``
(tokens/s of each way, the median over log intervals after the first, which holds compilation; the
largest differences between the curves) and ``ddp_<tag>.log`` (commands; ``sparsing_lib.run.environment()``,
i.e. revision, packages and hardware; output tails).
The N-process curve agrees with the 1-process one when its largest difference is well under the seed noise's.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sparsing_lib.run import GRIDS, environment, recipe
from sparsing_lib.runs import Variant, parse_run, run_name


def seeded(run: str, seed: int) -> str:
    """The name of ``run`` trained with ``seed`` (the seed is part of a run's name: ``runs.GRAMMAR``)."""
    return run_name(*parse_run(run), Variant(seed=seed))


def start(nproc: int, seed: int, args: argparse.Namespace, tokens: int, gpus: str | None) -> tuple[list[str], Path]:
    """Start the run on ``nproc`` processes with ``seed`` (on GPUs ``gpus`` if given); its command and folder."""
    work = args.work / f"w{nproc}_s{seed}"
    grid = next(g for g, runs in GRIDS.items() if args.run in runs)
    # --grid/--slice rather than --run: torchrun's own parser takes "--run" for an abbreviation of its --run-path
    flags = ["--grid", grid, "--slice", seeded(args.run, seed), "--out", str(work / "runs")]
    flags += ["--ckpt", str(work / "ckpt"), "--tokens", str(tokens), "--profile", args.profile]
    flags += ["--corpus", args.corpus, "--device", args.device, "--no-probe"]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc > 1 else []
    cmd = [sys.executable, *launcher, "-m", "sparsing_lib.run", *flags]
    env = os.environ | ({"CUDA_VISIBLE_DEVICES": gpus} if gpus is not None and args.device == "cuda" else {})
    work.mkdir(parents=True, exist_ok=True)
    with open(work / "output.log", "w") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT)
    return cmd, work, proc


def finish(cmd: list[str], work: Path, proc: subprocess.Popen, t0: float) -> tuple[float, str]:
    """Wait for a run started by ``start``; its wall seconds and output tail (raises if it failed)."""
    code = proc.wait()
    tail = "\n".join((work / "output.log").read_text().strip().splitlines()[-5:])
    if code:
        raise RuntimeError(f"{' '.join(cmd)} failed ({code}):\n{tail}")
    return time.time() - t0, tail


def compare(curves: pd.DataFrame) -> pd.DataFrame:
    """Per (world size, seed): median tokens/s after the first log interval, and the largest absolute differences
    of its train and validation losses from the reference run's (the first seed on 1 process) at the same
    steps. The 1-process run with another seed gives the size of seed noise to judge the N-process run by."""
    ref_seed = curves.loc[curves["world_size"] == 1, "seed"].min()
    one = curves[(curves["world_size"] == 1) & (curves["seed"] == ref_seed)].set_index("step")
    rows = []
    for (n, seed), c in curves.groupby(["world_size", "seed"]):
        c = c.set_index("step")
        d = (c[["train_loss", "val_loss"]] - one[["train_loss", "val_loss"]]).abs()
        rows.append(
            dict(
                world_size=n,
                seed=seed,
                steps=int(c.index.max()),
                tokens_per_s=float(np.median(c["tokens_per_s"].iloc[1:])) if len(c) > 1 else float("nan"),
                max_abs_train_loss_diff=float(d["train_loss"].max()),
                max_abs_val_loss_diff=float(d["val_loss"].max()),
                final_val_loss=float(c["val_loss"].dropna().iloc[-1]),
            )
        )
    out = pd.DataFrame(rows)
    base = out.loc[(out["world_size"] == 1) & (out["seed"] == ref_seed), "tokens_per_s"].iloc[0]
    out["speedup"] = out["tokens_per_s"] / base
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="mini-256x5-relu")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps of the recipe's global batch")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--noise-seed", type=int, default=1, help="a second 1-process run (on GPU 1, beside the first): seed noise"
    )
    ap.add_argument("--profile", default="full", choices=["full", "smoke"])
    ap.add_argument("--corpus", default="full", choices=["full", "smoke", "synthetic"])
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--work", type=Path, default=Path(".scratch/ddp"), help="run folders and checkpoints")
    ap.add_argument("--out", type=Path, default=Path("data/benchmarks"))
    ap.add_argument("--tag", default="run")
    args = ap.parse_args(argv)
    cfg = recipe(args.run, args.profile)[2]
    tokens = args.steps * cfg.tokens_per_step
    args.out.mkdir(parents=True, exist_ok=True)
    env = environment() | dict(gpus=torch.cuda.device_count())  # revision (git or SPARSING_GIT_REV), hardware
    lines = [
        f"command: python benchmarks/ddp.py {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"environment: {json.dumps(env)}",
        f"run {args.run}: {args.steps} steps of {cfg.tokens_per_step} tokens, seed {args.seed}",
    ]
    # the two 1-process runs side by side, one per GPU (the second gives the seed noise); then N processes
    t0 = time.time()
    plan = [(1, args.seed), (1, args.noise_seed)]
    started = [start(n, seed, args, tokens, str(gpu)) for gpu, (n, seed) in enumerate(plan)]
    results = [finish(*s, t0) for s in started]
    t1 = time.time()
    plan.append((args.nproc, args.seed))
    started.append(start(args.nproc, args.seed, args, tokens, None))
    results.append(finish(*started[-1], t1))
    curves = []
    for (n, seed), (cmd, work, _), (wall, tail) in zip(plan, started, results):
        lines += [f"world {n}, seed {seed}: {' '.join(cmd)}", f"  wall {wall:.1f} s; output tail:", tail]
        folder = work / "runs" / seeded(args.run, seed)
        curves.append(pd.read_csv(folder / "metrics.csv").assign(world_size=n, seed=seed))
    curves = pd.concat(curves, ignore_index=True)
    summary = compare(curves)
    cols = ["world_size", "seed", "step", "tokens", "train_loss", "val_loss", "grad_norm", "tokens_per_s"]
    curves[cols].to_csv(args.out / f"ddp_{args.tag}.csv", index=False)
    summary.to_csv(args.out / f"ddp_{args.tag}_summary.csv", index=False)
    lines.append(summary.to_string(index=False))
    (args.out / f"ddp_{args.tag}.log").write_text("\n".join(lines) + "\n")
    print(summary.to_string(index=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
