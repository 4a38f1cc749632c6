"""The two parts of ``benchmarks/sweep_gpu.sh``: train a slice of the sweep, then evaluate its finished runs.

    python benchmarks/sweep_gpu.py train --deadline T --margin 90 --gpus 2 --per-gpu 2 -- --grid sweep --slice 0:10 \
        --out RUNS --ckpt CKPT --profile full --corpus full --device cuda
    python benchmarks/sweep_gpu.py eval --out RUNS --ckpt CKPT --grid sweep --slice 0:10 --gpus 2 --per-gpu 3

Both place one process per run through ``sparsing_lib.launch`` (K per GPU, each pinned to one GPU, a log per run
under ``<ckpt>/logs``) and stop at one common ``--deadline`` (seconds since the epoch), so that a call ends on
time however many runs its slice holds:

* ``train``: each run, when it starts, trains until ``deadline - margin`` (``sparsing_lib.run --time-limit``)
  and then pauses, or finishes and is probed inside the margin; a run that would get under ``--min-train``
  seconds does not start (compilation alone takes about 40 s) and is left for the next call.
* ``eval``: the runs of the slice that finished training and lack a part of their evaluation (``pending``),
  each with ``suite.evaluate_runs`` and a 1/K share of its padded tokens per pass (``suite.GPU_MAX_TOKENS``):
  at the full share, four evaluations of mini-256x5 and two MoE variants on one H200 ran out of memory. A worker
  with under ``--min-seconds`` left does not start; one still running at the deadline is stopped (SIGALRM); the
  suite keeps each finished task and setting (``evaluation.parts``), so the next call goes on from the first
  unfinished one.
  The checkpoints it reads never leave the training machine, so this must run there while it is warm.
  MoE runs are evaluated like dense ones (the hooks reach their experts' neurons through
  ``capture.ExpertNeurons``). Fig. 3's sweeps run only on the plain runs of the dense scales (``wants_fig3``):
  the figure compares methods per scale and activation, and extra seeds, shares of the split, width-depth shapes,
  MoE variants and the recipe-validation run add nothing to it. The evaluation reads a run's last checkpoint: for
  the recipe-validation run, its weights after the decay phase, as the paper scores its models.
  ``--smoke``: the same steps on CPU with the suite's synthetic tasks (``suite.smoke_tasks``) and thresholds
  calibrated on the corpus that ``SPARSING_CORPUS`` names (the smoke script points it at the committed slice).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from sparsing_lib.evaluation import engine, results, suite
from sparsing_lib.launch import launch
from sparsing_lib.models import get_spec
from sparsing_lib.run import select
from sparsing_lib.runs import FINISHED, parse_run, run_variant

SMOKE_CALIB_TOKENS = 4096  # calibration tokens of the smoke profile (the full suite takes 2**16)


def status(folder: Path, run: str) -> str | None:
    """The status in ``run``'s env.json (done, diverged, paused, failed), None before its first pause."""
    env = Path(folder) / run / "env.json"
    return json.loads(env.read_text()).get("status") if env.exists() else None


def wants_fig3(run: str) -> bool:
    """Whether ``run`` gets Fig. 3's sweeps: a plain (seed 0, whole split) run of a dense scale (not a width-depth
    shape, an MoE variant, nor the recipe-validation run, whose evaluation after its decay is for §6)."""
    spec = get_spec(parse_run(run)[0])
    return not run_variant(run).is_variant and spec.kind not in ("width_depth", "moe", "recipe")


def parts(folder: Path, run: str) -> list[Path]:
    """The folders the evaluation of ``run`` writes (each done once it holds eval.json, written last)."""
    out = Path(folder) / run
    return [out, out / "eval_fig3"] if wants_fig3(run) else [out]


def pending(folder: Path, runs: list[str]) -> list[str]:
    """The runs that finished training (``done``: a diverged run is not scored) and lack a part of their
    evaluation, in slice order."""
    return [
        r for r in runs if status(folder, r) == "done" and not all((p / "eval.json").exists() for p in parts(folder, r))
    ]


def state(folder: Path, run: str) -> str:
    """Where ``run`` stands: its training status until it is done, then evaluated / to evaluate."""
    st = status(folder, run)
    if st != "done":
        return f"training: {st or 'not started'}"
    return "trained, to evaluate" if pending(folder, [run]) else "trained and evaluated"


def seconds_left(deadline: float, margin: float = 0.0) -> float:
    """Seconds from now until ``margin`` seconds before ``deadline`` (seconds since the epoch)."""
    return deadline - margin - time.time()


def smoke_evaluate(folder: Path, run: str, ckpt_root: Path) -> None:
    """``suite.evaluate_runs``'s parts at toy size: the synthetic tasks, dense and at CETT-PPL-1/5/10 %, into the
    run folder, and with the sweeps added into ``eval_fig3`` (for the runs that get them)."""
    ckpt = sorted((Path(ckpt_root) / run).glob("step_*.pt"))[-1]
    model, tokenizer = suite.load_model(str(ckpt), str(Path(folder) / run))
    calib = suite.calibration(tokenizer, SMOKE_CALIB_TOKENS, engine.max_context(model, tokenizer))
    for target in parts(folder, run):
        if (target / "eval.json").exists():
            continue
        chosen = suite.settings(model, calib, sweeps=suite.SWEEPS if target.name == "eval_fig3" else None)
        results.write(target, suite.run_suite(model, tokenizer, suite.smoke_tasks(), chosen, batch_size=16))


def train_worker(args: argparse.Namespace, run_args: list[str]) -> int:
    """Train one run until ``deadline - margin`` (``sparsing_lib.run`` in place of this process)."""
    limit = seconds_left(args.deadline, args.margin)
    if limit < args.min_train:
        print(f"{args.run}: {limit:.0f} s of training left, under --min-train {args.min_train:.0f}: next call")
        return 0
    cmd = [sys.executable, "-m", "sparsing_lib.run", *run_args, "--jobs", "2", "--time-limit", f"{limit:.0f}"]
    os.execv(sys.executable, [*cmd, "--run", args.run])  # --jobs > 1: no progress bars in the log


def eval_worker(args: argparse.Namespace) -> int:
    """Evaluate one run, stopped by SIGALRM at the deadline (its unfinished part is not written)."""
    left = seconds_left(args.deadline)
    if left < args.min_seconds:
        print(f"{args.run}: {left:.0f} s left, under --min-seconds {args.min_seconds:.0f}: next call")
        return 0
    signal.alarm(int(left))
    t0 = time.time()
    try:
        if args.smoke:
            import torch

            torch.set_num_threads(1)  # toy models on a busy CPU
            smoke_evaluate(args.out, args.run, args.ckpt)
        else:
            share = suite.GPU_MAX_TOKENS // max(1, args.per_gpu)  # the evaluations on one GPU share its memory
            suite.evaluate_runs(args.out, [args.run], args.ckpt, args.device, wants_fig3(args.run), share)
    finally:
        signal.alarm(0)  # a caller that goes on (a test) is not stopped later
    print(f"{args.run}: evaluated in {time.time() - t0:.0f} s")
    return 0


def report(folder: Path, runs: list[str], codes: dict[str, int]) -> int:
    """Print each run's state (and an exit code where its process failed); 1 if one failed."""
    for run in runs:
        code = codes.get(run)
        note = " (stopped at the deadline)" if code == -signal.SIGALRM else f" (exit {code})" if code else ""
        print(f"  {run}: {state(folder, run)}{note}", flush=True)
    return 1 if any(c not in (0, -signal.SIGALRM) for c in codes.values()) else 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run_args = argv[argv.index("--") + 1 :] if "--" in argv else []  # train: passed on to sparsing_lib.run
    argv = argv[: argv.index("--")] if "--" in argv else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("part", choices=["train", "eval"])
    ap.add_argument("--deadline", type=float, required=True, help="seconds since the epoch to stop at")
    ap.add_argument("--gpus", type=int, default=0, help="GPUs to spread the runs over (0: the one visible device)")
    ap.add_argument("--per-gpu", type=int, default=2, help="runs at once on each GPU")
    ap.add_argument("--margin", type=float, default=90.0, help="train: seconds kept for the pause or the probes")
    ap.add_argument("--min-train", type=float, default=60.0, help="train: start no run with less training left")
    ap.add_argument("--min-seconds", type=float, default=0.0, help="eval: start no evaluation with less time left")
    ap.add_argument("--out", type=Path, help="eval: the run folders (run.py's --out)")
    ap.add_argument("--ckpt", type=Path, help="eval: the checkpoints (run.py's --ckpt)")
    ap.add_argument("--grid", default="sweep", help="eval: the grid")
    ap.add_argument("--slice", default=None, help="eval: as run.py's --slice")
    ap.add_argument("--device", default="cuda", help="eval: the device")
    ap.add_argument("--smoke", action="store_true", help="eval: synthetic tasks on CPU (the smoke profile)")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # a worker (launch appends it)
    args = ap.parse_args(argv)
    if args.part == "train":
        run = argparse.ArgumentParser(add_help=False)
        for name in ("--grid", "--slice", "--out", "--ckpt", "--run"):  # launch appends --run after the "--"
            run.add_argument(name, required=name in ("--out", "--ckpt"))
        known, rest = run.parse_known_args(run_args)
        out, ckpt = Path(known.out), Path(known.ckpt)
        if known.run:
            args.run = known.run
            return train_worker(args, ["--out", known.out, "--ckpt", known.ckpt, *rest])
        runs = select(known.grid, known.slice)
        todo = [r for r in runs if status(out, r) not in FINISHED]
        print(f"train: {len(todo)} of {len(runs)} runs to train ({args.per_gpu} per GPU): {', '.join(todo) or '-'}")
        command = [sys.executable, __file__, "train", "--deadline", str(args.deadline), "--margin", str(args.margin)]
        command += ["--min-train", str(args.min_train), "--", *run_args]
        codes = launch(todo, command, ckpt / "logs", jobs=args.per_gpu, gpus=args.gpus) if todo else {}
        return report(out, runs, codes)
    if args.out is None or args.ckpt is None:
        ap.error("eval needs --out and --ckpt")
    if args.run:
        return eval_worker(args)
    runs = select(args.grid, args.slice)
    todo = pending(args.out, runs)
    print(f"eval: {len(todo)} of {len(runs)} runs to evaluate ({args.per_gpu} per GPU): {', '.join(todo) or '-'}")
    command = [sys.executable, __file__, "eval", "--out", str(args.out), "--ckpt", str(args.ckpt)]
    command += ["--device", args.device, "--deadline", str(args.deadline), "--min-seconds", str(args.min_seconds)]
    command += ["--per-gpu", str(args.per_gpu)]
    command += ["--smoke"] if args.smoke else []
    codes = launch(todo, command, args.ckpt / "logs" / "eval", jobs=args.per_gpu, gpus=args.gpus) if todo else {}
    return report(args.out, runs, codes)


if __name__ == "__main__":
    sys.exit(main())
