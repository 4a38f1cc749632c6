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
  ``--models``: a run whose checkpoints are gone (a fresh machine) is evaluated from its exported model folder.
* ``export``: each trained run still to evaluate gets its last checkpoint exported once (``sparsing_lib.checkpoints``,
  float16) and packed into parts of at most 15 MB under ``--dest`` (the call's $OUT: 8 files of 16 MB come back),
  so that a machine given back between calls loses no trained run: the next machine evaluates it instead of
  training it again.
* ``unpack``: the other end: every complete set of parts under ``--carry`` (a carried folder) becomes a model folder
  under ``--models``, and the run folder carried beside it (``<carry>/runs/<run>``, from an earlier call's
  runs.tar.gz) is copied under ``--out`` unless one is there, so that the run counts as trained.
  ``--smoke``: the same steps on CPU with the suite's synthetic tasks (``suite.smoke_tasks``) and thresholds
  calibrated on the corpus that ``SPARSING_CORPUS`` names (the smoke script points it at the committed slice).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import signal
import sys
import tarfile
import time
from pathlib import Path

from sparsing_lib import checkpoints
from sparsing_lib.evaluation import engine, results, suite
from sparsing_lib.launch import launch
from sparsing_lib.models import get_spec
from sparsing_lib.run import select
from sparsing_lib.runs import FINISHED, parse_run, run_variant

SMOKE_CALIB_TOKENS = 4096  # calibration tokens of the smoke profile (the full suite takes 2**16)
PART_BYTES = 15 * 2**20  # a call returns at most 8 files of 16 MB each
PART_GLOB = "{run}.model.tar.part-*"  # ``cat <run>.model.tar.part-* | tar -x`` unpacks them, as eval_gpu.sh's


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
    run folder, and with the sweeps added into ``eval_fig3`` (for the runs that get them); ``ckpt_root`` holds the
    run's checkpoints or its exported model folder, as for the suite."""
    model, tokenizer = suite.load_model(*suite.last_model(ckpt_root, run, folder))
    calib = suite.calibration(tokenizer, SMOKE_CALIB_TOKENS, engine.max_context(model, tokenizer))
    for target in parts(folder, run):
        if (target / "eval.json").exists():
            continue
        chosen = suite.settings(model, calib, sweeps=suite.SWEEPS if target.name == "eval_fig3" else None)
        results.write(target, suite.run_suite(model, tokenizer, suite.smoke_tasks(), chosen, batch_size=16))


def checkpoint_root(run: str, ckpt: Path, models: Path | None) -> Path:
    """Where ``run``'s evaluation reads its weights: its last checkpoint while this machine has one, else the
    model folder exported from it (a fresh machine); the suite raises if neither is there."""
    if models is not None and not any((Path(ckpt) / run).glob("step_*.pt")) and (models / run / "config.json").exists():
        return models
    return Path(ckpt)


def pack(folder: Path, dest: Path, part_bytes: int = PART_BYTES) -> list[Path]:
    """``folder`` as one tar archive split into parts of at most ``part_bytes`` under ``dest``
    (``<name>.model.tar.part-00of03``, ...): their concatenation in name order is the archive, and each name says
    how many there are (a tar archive cut at a part boundary can still read as whole: its tail is padding)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname=folder.name)
    data, written = buf.getvalue(), []
    dest.mkdir(parents=True, exist_ok=True)
    starts = range(0, len(data), part_bytes)
    for i, start in enumerate(starts):
        written.append(dest / f"{folder.name}.model.tar.part-{i:02d}of{len(starts):02d}")
        written[-1].write_bytes(data[start : start + part_bytes])
    return written


def export_pending(
    folder: Path, runs: list[str], ckpt: Path, models: Path, dest: Path, limit: int, part_bytes: int = PART_BYTES
) -> list[str]:
    """Export and pack (``pack``) the last checkpoint of at most ``limit`` runs that are trained but not yet
    evaluated and were not exported before on this machine; returns their names."""
    exported = []
    for run in pending(folder, runs):
        ckpts = sorted((Path(ckpt) / run).glob("step_*.pt"))
        if len(exported) >= limit or not ckpts or (models / f"{run}.exported").exists():
            continue
        checkpoints.export(ckpts[-1], Path(folder) / run, models / run)
        pack(models / run, dest, part_bytes)
        (models / f"{run}.exported").touch()
        exported.append(run)
    return exported


def unpack(carry: Path, models: Path, folder: Path) -> list[str]:
    """Turn each complete set of packed parts under ``carry`` into a model folder under ``models`` (an incomplete
    set is left for a later call) and copy its carried run folder under ``folder`` when none is there; returns the
    runs unpacked."""
    names = sorted({p.name.split(".model.tar.part-")[0] for p in Path(carry).glob(PART_GLOB.format(run="*"))})
    done = []
    for run in names:
        if (models / run / "config.json").exists():
            continue
        parts = sorted(Path(carry).glob(PART_GLOB.format(run=run)))
        if [p.name.rsplit("-", 1)[1] for p in parts] != [f"{i:02d}of{len(parts):02d}" for i in range(len(parts))]:
            print(f"{run}: {len(parts)} of its parts are here so far")
            continue
        with tarfile.open(fileobj=io.BytesIO(b"".join(p.read_bytes() for p in parts))) as tar:
            tar.extractall(models, filter="data")
        if not (Path(folder) / run).exists() and (Path(carry) / "runs" / run).is_dir():
            shutil.copytree(Path(carry) / "runs" / run, Path(folder) / run)
        done.append(run)
    return done


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
    root = checkpoint_root(args.run, args.ckpt, args.models)
    try:
        if args.smoke:
            import torch

            torch.set_num_threads(1)  # toy models on a busy CPU
            smoke_evaluate(args.out, args.run, root)
        else:
            share = suite.GPU_MAX_TOKENS // max(1, args.per_gpu)  # the evaluations on one GPU share its memory
            suite.evaluate_runs(args.out, [args.run], root, args.device, wants_fig3(args.run), share)
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
    ap.add_argument("part", choices=["train", "eval", "export", "unpack"])
    ap.add_argument("--deadline", type=float, default=None, help="train, eval: seconds since the epoch to stop at")
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
    ap.add_argument("--models", type=Path, default=None, help="eval, export, unpack: the exported model folders")
    ap.add_argument("--dest", type=Path, default=None, help="export: where the packed parts go ($OUT)")
    ap.add_argument("--limit", type=int, default=3, help="export: at most this many runs (two parts each)")
    ap.add_argument("--carry", type=Path, default=None, help="unpack: the carried parts and run folders")
    ap.add_argument("--run", default=None, help=argparse.SUPPRESS)  # a worker (launch appends it)
    args = ap.parse_args(argv)
    if args.part in ("train", "eval") and args.deadline is None:
        ap.error(f"{args.part} needs --deadline")
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
    if args.part == "unpack":
        if None in (args.carry, args.models, args.out):
            ap.error("unpack needs --carry, --models and --out")
        for run in unpack(args.carry, args.models, args.out):
            print(f"unpack: {run} from its carried parts")
        return 0
    if args.out is None or args.ckpt is None:
        ap.error(f"{args.part} needs --out and --ckpt")
    if args.part == "export":
        if args.models is None or args.dest is None:
            ap.error("export needs --models and --dest")
        for run in export_pending(args.out, select(args.grid, args.slice), args.ckpt, args.models, args.dest,
                                  args.limit):  # fmt: skip
            print(f"export: {run} packed into {args.dest}")
        return 0
    if args.run:
        return eval_worker(args)
    runs = select(args.grid, args.slice)
    todo = pending(args.out, runs)
    print(f"eval: {len(todo)} of {len(runs)} runs to evaluate ({args.per_gpu} per GPU): {', '.join(todo) or '-'}")
    command = [sys.executable, __file__, "eval", "--out", str(args.out), "--ckpt", str(args.ckpt)]
    command += ["--device", args.device, "--deadline", str(args.deadline), "--min-seconds", str(args.min_seconds)]
    command += ["--per-gpu", str(args.per_gpu)]
    command += ["--smoke"] if args.smoke else []
    command += ["--models", str(args.models)] if args.models else []
    codes = launch(todo, command, args.ckpt / "logs" / "eval", jobs=args.per_gpu, gpus=args.gpus) if todo else {}
    return report(args.out, runs, codes)


if __name__ == "__main__":
    sys.exit(main())
