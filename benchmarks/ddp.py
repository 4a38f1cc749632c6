"""One model trained on 1 process and on N processes (DistributedDataParallel), same seed and global batch.

    python benchmarks/ddp.py --run mini-256x5-relu --steps 300 --nproc 2 --out data/benchmarks --tag h200

Both runs go through the real trainer (``python -m sparsing_lib.run --run ... --no-probe``, the second under
``torch.distributed.run``), each into its own folder, and see the same tokens at every step. Writes
``ddp_<tag>.csv`` (both loss curves, one row per log step and world size), ``ddp_<tag>_summary.csv``
(tokens/s of each way, the median over log intervals after the first, which holds compilation; the
largest differences between the curves) and ``ddp_<tag>.log`` (commands, revision, hardware, output tails).
The curves agree to rounding, which grows over the steps as in any two runs that sum in different orders;
the README beside the committed files says what difference counts as agreement.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sparsing_lib.paths import cpu_hardware, git_state
from sparsing_lib.run import GRIDS, recipe


def train_once(nproc: int, args: argparse.Namespace, tokens: int) -> tuple[list[str], float, str]:
    """Train the run on ``nproc`` processes into ``<work>/w<nproc>``; the command, wall seconds, output tail."""
    work = args.work / f"w{nproc}"
    grid = next(g for g, runs in GRIDS.items() if args.run in runs)
    # --grid/--slice rather than --run: torchrun's own parser takes "--run" for an abbreviation of its --run-path
    flags = [
        "--grid",
        grid,
        "--slice",
        args.run,
        "--out",
        str(work / "runs"),
        "--ckpt",
        str(work / "ckpt"),
        "--no-probe",
    ]
    flags += ["--tokens", str(tokens), "--profile", args.profile, "--corpus", args.corpus, "--device", args.device]
    flags += ["--seed", str(args.seed)]
    launcher = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)] if nproc > 1 else []
    cmd = [sys.executable, *launcher, "-m", "sparsing_lib.run", *flags]
    t0 = time.time()
    p = subprocess.run(cmd, capture_output=True, text=True)
    tail = "\n".join((p.stdout + p.stderr).strip().splitlines()[-5:])
    if p.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{tail}")
    return cmd, time.time() - t0, tail


def compare(curves: pd.DataFrame) -> pd.DataFrame:
    """Per world size: median tokens/s after the first log interval, and the largest absolute differences of
    its train and validation losses from the 1-process run's at the same steps."""
    one = curves[curves["world_size"] == 1].set_index("step")
    rows = []
    for n, c in curves.groupby("world_size"):
        c = c.set_index("step")
        d = (c[["train_loss", "val_loss"]] - one[["train_loss", "val_loss"]]).abs()
        rows.append(
            dict(
                world_size=n,
                steps=int(c.index.max()),
                tokens_per_s=float(np.median(c["tokens_per_s"].iloc[1:])) if len(c) > 1 else float("nan"),
                max_abs_train_loss_diff=float(d["train_loss"].max()),
                max_abs_val_loss_diff=float(d["val_loss"].max()),
                final_val_loss=float(c["val_loss"].dropna().iloc[-1]),
            )
        )
    out = pd.DataFrame(rows)
    out["speedup"] = out["tokens_per_s"] / out.loc[out["world_size"] == 1, "tokens_per_s"].iloc[0]
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", default="mini-256x5-relu")
    ap.add_argument("--steps", type=int, default=300, help="optimizer steps of the recipe's global batch")
    ap.add_argument("--nproc", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
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
    git = git_state()
    gpus = f"{torch.cuda.device_count()} x {torch.cuda.get_device_name()}" if args.device == "cuda" else "no GPU"
    lines = [
        f"command: python benchmarks/ddp.py {' '.join(argv if argv is not None else sys.argv[1:])}",
        f"revision: {git['revision']} (dirty: {git['dirty']}; source: {git['source']})",
        f"hardware: {gpus}; CPU {cpu_hardware()}; torch {torch.__version__}",
        f"run {args.run}: {args.steps} steps of {cfg.tokens_per_step} tokens, seed {args.seed}",
    ]
    curves = []
    for n in (1, args.nproc):
        cmd, wall, tail = train_once(n, args, tokens)
        lines += [f"world {n}: {' '.join(cmd)}", f"  wall {wall:.1f} s; output tail:", tail]
        m = pd.read_csv(args.work / f"w{n}" / "runs" / args.run / "metrics.csv")
        curves.append(m.assign(world_size=n))
    curves = pd.concat(curves, ignore_index=True)
    summary = compare(curves)
    cols = ["world_size", "step", "tokens", "train_loss", "val_loss", "grad_norm", "tokens_per_s"]
    curves[cols].to_csv(args.out / f"ddp_{args.tag}.csv", index=False)
    summary.to_csv(args.out / f"ddp_{args.tag}_summary.csv", index=False)
    lines.append(summary.to_string(index=False))
    (args.out / f"ddp_{args.tag}.log").write_text("\n".join(lines) + "\n")
    print(summary.to_string(index=False), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
