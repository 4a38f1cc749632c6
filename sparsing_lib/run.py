"""Resumable runner for the mini training grids: ``python -m sparsing_lib.run --grid proof --out data/runs``.

Each run ``<model>-<activation>[-s<seed>][-f<k>]`` (``runs.GRAMMAR``: its seed and share of the training split
come from the name, so two seeds of one run never share a folder) gets ``<out>/<run>/`` with config.json,
metrics.csv, sparsity.csv, pareto.csv, neuron_frequency.npz, vocab_ratios.npz, cett.json and env.json (``runs``
documents the format); an MoE run gets config.json, metrics.csv, sparsity.csv, pareto.csv and env.json
(``probes.probe_moe_checkpoints``). ``--grid sweep`` is the final sweep: the scales, the larger scales, the extra
seeds, the repetition runs, the width-depth and the MoE variants, and the recipe-validation run (Fig. 11).
Checkpoints and resume state stay in ``--ckpt`` (a scratch folder on the training machine). A run whose
env.json says ``done`` or ``diverged`` is skipped; a ``paused`` one resumes from its last state.
Several runs go concurrently as separate processes with ``--jobs`` (or ``--gpus G --per-gpu K``: K runs on
each of G GPUs, ``launch``), each logging to ``<ckpt>/logs/<run>.log``. Under ``torchrun --nproc_per_node N -m
sparsing_lib.run ...`` the selected runs train one after another, each on all N GPUs (``distributed``).
config.json carries ``format`` (``FORMAT``); a run folder without it is from the old format and is refused
rather than resumed into.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from .checks import check_choice
from .distributed import World, barrier, start, stop, world_from_env
from .launch import launch
from .models import ACTIVATIONS, MINI, TINY, ModelSpec, build_model, get_spec, spec_dict
from .paths import H200_BF16_FLOPS, git_state
from .pilots import PILOT_BASE, PILOTS, apply
from .probes import ProbeConfig, probe_checkpoints, probe_moe_checkpoints
from .recipe import apply_rules
from .runs import FINISHED, FORMAT, Variant, parse_run, plain_name, run_name, run_variant, write_json
from .train import TrainConfig, train

TOKENS_PER_PARAM = 100  # training tokens per non-embedding parameter of the scales (the paper used >= 190)
MIN_TOKENS = 2**27  # floor for the scales, so the smallest still see a long stable phase (134M tokens)
# Width-depth variants get half the data (MoE keeps the scales' recipe: Fig. 12 compares it with the vanilla
# model at equal data). On the committed mini-160x3-relu run the CETT activation ratio is lowest near 17
# tokens per parameter and then rises towards its limit, so 50 still gives the rising part that a limit fit
# needs (a judgement, not a proof); the reference mini-192x4-relu has a checkpoint at 48.8 tokens per
# parameter, the nearest to 50.
WIDTH_DEPTH_TOKENS_PER_PARAM = 50
# The larger scales (kind "large") get 30, the least the sweep plan allows them: at 100 tokens per parameter
# mini-512x10 alone would need 3.0B tokens, over three times the GPU time of the 909M-token mini-336x7 run; at
# 30 it needs 0.90B, about as many as mini-336x7. Their points therefore sit at fewer tokens per parameter than
# the current scales' (a confound of any comparison across the two kinds).
LARGE_TOKENS_PER_PARAM = 30
# The recipe-validation run (kind "recipe", paper §6 and Fig. 11) gets more data than its twin mini-512x10 (30) and
# ends with a decay phase, as the paper's 2.4B model: 40 tokens per parameter (1.20B tokens: 14.9 minutes at the
# 1.34M tokens/s mini-512x10 trained at on one H200; 45 would take 16.8 there, too close to the two training calls
# it is allowed for a deeper shape that has not been timed), the last 10 % of the steps a linear decay (MiniCPM's
# share; the authors' schedule decays exponentially, ours linearly). Its stable phase ends at 36 tokens per
# parameter, beyond the twin's end, so the law fitted before the decay (as Fig. 11 is) sees more data too.
RECIPE_TOKENS_PER_PARAM = 40
RECIPE_DECAY_FRAC = 0.1
LOSS_CHUNK = 8192  # tokens per chunk of the training loss: the same loss without the batch's whole logits

GRIDS: dict[str, list[str]] = {
    "proof": [f"{m}-{a}" for m in ("mini-160x3", "mini-192x4") for a in ACTIVATIONS],
    "scales": [f"{s.name}-{a}" for s in MINI.values() if s.kind == "scale" for a in ACTIVATIONS],
    "width_depth": [f"{s.name}-relu" for s in MINI.values() if s.kind == "width_depth"] + ["mini-192x4-relu"],
    "moe": [f"{s.name}-relu" for s in MINI.values() if s.kind == "moe"],
    "smoke": [f"{TINY.name}-{a}" for a in ACTIVATIONS],
    "large": [f"{s.name}-{a}" for s in MINI.values() if s.kind == "large" for a in ACTIVATIONS],
    "recipe": [f"{s.name}-relu" for s in MINI.values() if s.kind == "recipe"],  # the paper's 2.4B is ReLU only
    "pilots": list(PILOTS),
}
# The final sweep's variants: more seeds of one small and one mid-sized scale (seed 0 is the scale run itself),
# and the smallest scale on 1/8 and 1/32 of the training split for its full-split run's tokens (repetition).
SEED_MODELS, EXTRA_SEEDS = ("mini-192x4", "mini-320x6"), (1, 2)
REPETITION_MODEL, REPETITION_SPLITS = "mini-160x3", (8, 32)
GRIDS["sweep"] = list(
    dict.fromkeys(  # in groups; the width-depth reference mini-192x4-relu is already among the scales
        GRIDS["scales"]
        + GRIDS["large"]
        + [run_name(m, a, Variant(seed=s)) for m in SEED_MODELS for s in EXTRA_SEEDS for a in ACTIVATIONS]
        + [run_name(REPETITION_MODEL, a, Variant(split=k)) for k in REPETITION_SPLITS for a in ACTIVATIONS]
        + GRIDS["width_depth"]
        + GRIDS["moe"]
        + GRIDS["recipe"]
    )
)


def train_config(model: str, profile: str) -> TrainConfig:
    """The recipe for ``model``: full = 100 tokens per non-embedding parameter (>= 134M), 30 for the larger
    scales, 50 for the width-depth variants, 40 and a final decay over 10 % of the steps for the recipe-validation
    run, with the paper's batch and warm-up rules at every scale
    (``recipe.apply_rules``: the pilots showed the first recipe's fixed small batch and short warm-up degrading
    mini-448x8), SDPA's causal kernel without a mask tensor and the chunked loss (the same model, faster:
    data/benchmarks/throughput_README.md); smoke = toy size. The tokens depend on the model alone, so a run on
    a share of the training split trains as long as its whole-split twin (more passes over less data)."""
    if profile == "smoke":
        return TrainConfig(
            tokens=150 * 8 * 64,
            batch_size=8,
            seq_len=64,
            n_checkpoints=8,  # enough for a four-coefficient law with room to spare (figures.mini_laws)
            eval_tokens=2048,
            log_every=10,
            compile=False,
        )
    spec = get_spec(model)
    n = spec.non_embedding_params
    decay = RECIPE_DECAY_FRAC if spec.kind == "recipe" else 0.0
    if spec.kind == "width_depth":
        tokens = WIDTH_DEPTH_TOKENS_PER_PARAM * n
    elif spec.kind == "recipe":
        tokens = RECIPE_TOKENS_PER_PARAM * n
    else:
        tokens = max((LARGE_TOKENS_PER_PARAM if spec.kind == "large" else TOKENS_PER_PARAM) * n, MIN_TOKENS)
    cfg = TrainConfig(tokens=tokens, decay_frac=decay, causal_attention=True, loss_chunk=LOSS_CHUNK)
    return apply_rules(cfg, n)


def recipe(run: str, profile: str) -> tuple[ModelSpec, str, TrainConfig, Variant]:
    """Model spec, activation, training recipe (with the name's seed) and variant of ``run``: a grid run named
    by ``runs.GRAMMAR`` or a pilot (``pilots.PILOTS``, ReLU, seed 0, the whole split; on the smoke profile the
    toy model with the pilot's changes)."""
    if run in PILOTS:
        smoke = profile == "smoke"
        spec = TINY if smoke else get_spec(PILOTS[run].model)
        spec, cfg = apply(PILOTS[run], spec, train_config(spec.name, profile) if smoke else PILOT_BASE)
        return spec, "relu", cfg, Variant()
    (model, act), variant = parse_run(run), run_variant(run)
    return get_spec(model), act, replace(train_config(model, profile), seed=variant.seed), variant


def probe_config(profile: str) -> ProbeConfig:
    if profile == "smoke":
        return ProbeConfig(
            joint_last=3,
            tokens=1024,
            domain_tokens=256,
            vocab_tokens=4096,
            batch_size=16,
            topk_values=[0.1, 0.3],
            fat_values=[0.0, 0.1, 1.0],
            cett_values=[0.1, 0.3],
        )
    return ProbeConfig()


def select(grid: str, slice_: str | None) -> list[str]:
    """Runs of ``grid`` picked by ``slice_``: None/'all', 'a:b' (Python slice) or comma-separated names; a name
    may be another seed or split of a grid run (``runs.GRAMMAR``; the DDP benchmark trains ``<run>-s1``)."""
    runs = GRIDS[check_choice("grid", grid, GRIDS)]
    if not slice_ or slice_ == "all":
        return runs
    if ":" in slice_:
        a, b = (int(x) if x else None for x in slice_.split(":"))
        return runs[a:b]
    picked = slice_.split(",")
    unknown = [r for r in picked if r not in runs and plain_name(r) not in runs]
    if unknown:
        raise ValueError(f"runs {unknown} are not in grid {grid!r}: {', '.join(runs)}")
    return picked


def load_corpus(corpus: str) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray], int]:
    """(train ids, val ids, val ids by domain, vocab size) for corpus full | smoke | synthetic."""
    if corpus == "synthetic":  # development only: Zipf-distributed ids, no structure
        rng = np.random.default_rng(0)
        ids = np.minimum(rng.zipf(1.2, 2**20), 12287).astype(np.uint16)
        return ids, ids[-(2**16) :], {"a": ids[: 2**14], "b": ids[2**14 : 2**15]}, 12288
    from . import corpus as corpus_lib

    root = "smoke" if corpus == "smoke" else None
    return (
        corpus_lib.load_tokens("train", root=root),
        corpus_lib.load_tokens("val", root=root),
        corpus_lib.load_val_by_domain(root=root),
        len(corpus_lib.load_tokenizer()),
    )


def mix(val_by_domain: dict[str, np.ndarray], tokens: int, window: int) -> np.ndarray:
    """About ``tokens`` validation ids, an equal whole number of ``window``-token windows from each domain."""
    per = max(1, tokens // (window * len(val_by_domain))) * window
    short = [d for d, v in val_by_domain.items() if len(v) < per]
    if short:
        raise ValueError(f"validation domains {short} hold fewer than {per} tokens")
    return np.concatenate([v[:per] for v in val_by_domain.values()])


def corpus_identity(corpus: str) -> dict:
    """sha256 of the training file and tokenizer of the corpus build a run used."""
    if corpus == "synthetic":
        return {}
    from . import corpus as corpus_lib

    idx = json.loads((corpus_lib.corpus_root("smoke" if corpus == "smoke" else None) / "index.json").read_text())
    return dict(
        train_sha256=idx["files"]["train"]["sha256"],
        tokenizer_sha256=idx.get("tokenizer_sha256"),
        train_tokens=idx["files"]["train"]["tokens"],
    )


def environment() -> dict:
    """Code revision (from git, with a dirty-tree flag and where it came from), package versions and hardware."""
    import transformers

    cuda = torch.cuda.is_available()
    git = git_state()
    return dict(
        git_rev=git["revision"],
        git_dirty=git["dirty"],
        git_rev_source=git["source"],
        python=platform.python_version(),
        torch=torch.__version__,
        transformers=transformers.__version__,
        numpy=np.__version__,
        host=platform.node(),
        gpu=torch.cuda.get_device_name() if cuda else None,
        cpu_count=os.cpu_count(),
    )


def run_one(
    run: str,
    out: Path,
    ckpt: Path,
    corpus: str,
    profile: str,
    time_limit: float | None,
    device: str,
    tokens: int | None = None,
    progress: bool = True,
    decay_frac: float = 0.0,
    world: World = World(),
    probe: bool = True,
) -> dict:
    """Train (or resume) one run, then probe its checkpoints; returns its env.json record. Its wall_seconds
    count everything from loading the corpus to the last probe. ``decay_frac`` > 0 ends the run with a decay
    phase of that share of its steps in place of its recipe's (the recipe-validation run has its own, from
    ``train_config``); a run with a decay phase also saves and probes its last step, with the CETT threshold of
    its stable phase (``TrainConfig.checkpoint_steps``, ``probes.probe_checkpoints``).
    The seed and the share of the training split (its first 1/k: deterministic) come from the run's name
    (``runs.GRAMMAR``) and are recorded in config.json. Under several ranks (``world``) every rank trains and
    rank 0 alone writes the folder and probes. A folder whose config.json lacks ``format`` is from the old
    format and is refused with one message."""
    t0 = time.time()
    spec, act, cfg, variant = recipe(run, profile)
    run_dir, ckpt_dir = out / run, ckpt / run
    env_path = run_dir / "env.json"
    prev = json.loads(env_path.read_text()) if env_path.exists() else {}
    if prev.get("status") in FINISHED:
        return prev
    if (run_dir / "config.json").exists() and "format" not in json.loads((run_dir / "config.json").read_text()):
        raise ValueError(
            f"{run_dir} is a run folder of the old format (its config.json has no 'format'); "
            "train into another --out, or move the folder away to retrain it"
        )
    if world.main:
        run_dir.mkdir(parents=True, exist_ok=True)
    pcfg = probe_config(profile)
    if tokens:
        cfg = replace(cfg, tokens=tokens)
    if decay_frac:
        cfg = replace(cfg, decay_frac=decay_frac)
    train_ids, _, val_by_domain, vocab = load_corpus(corpus)
    train_ids = train_ids[: max(cfg.seq_len + 1, len(train_ids) // variant.split)]
    val_ids = mix(val_by_domain, cfg.eval_tokens, cfg.seq_len + 1)
    config = dict(
        format=FORMAT,
        run=run,
        activation=act,
        model=spec_dict(spec),
        train=asdict(cfg),
        probe=asdict(pcfg),
        corpus=corpus,
        profile=profile,
        vocab_size=vocab,
        corpus_identity=corpus_identity(corpus),
        tokens_per_param=cfg.steps * cfg.tokens_per_step / spec.non_embedding_params,
        seed=cfg.seed,
        train_fraction=variant.fraction,
        train_tokens_used=int(len(train_ids)),
        world_size=world.size,
    )
    if world.main:
        write_json(run_dir / "config.json", config)
    model = build_model(spec, act, vocab, seed=cfg.seed).to(device)
    fpt = spec.flops_per_token(cfg.seq_len, vocab)
    record = environment() | dict(
        run=run,
        corpus_tokens=int(len(train_ids)),
        flops_per_token=fpt,
        peak_flops=H200_BF16_FLOPS,
        wall_seconds=prev.get("wall_seconds", 0.0),
    )
    try:
        summary = train(
            model,
            train_ids,
            val_ids,
            cfg,
            out_dir=run_dir,
            ckpt_dir=ckpt_dir,
            time_limit=time_limit,
            flops_per_token=fpt,
            progress=progress,
            world=world,
        )
        record |= summary
        if summary["status"] == "done" and world.main and probe:
            del model
            build = lambda: build_model(spec, act, vocab)  # noqa: E731
            probe_ids = mix(val_by_domain, pcfg.tokens, cfg.seq_len)
            if spec.n_experts:
                probe_moe_checkpoints(
                    build,
                    ckpt_dir,
                    run_dir,
                    probe_ids,
                    cfg.seq_len,
                    cfg.tokens_per_step,
                    pcfg.batch_size,
                    device=device,
                    progress=progress,
                )
            else:
                probe_checkpoints(
                    build,
                    ckpt_dir,
                    run_dir,
                    probe_ids,
                    val_by_domain,
                    cfg.seq_len,
                    cfg.tokens_per_step,
                    pcfg,
                    device=device,
                    progress=progress,
                    train_ids=train_ids,
                    stable_end=cfg.stable_end,
                )
    except Exception as exc:  # keep a record of what broke; the run stays resumable
        record |= dict(status="failed", error=f"{type(exc).__name__}: {exc}", traceback=traceback.format_exc())
    record["wall_seconds"] += time.time() - t0
    if world.main:
        write_json(env_path, record)
    return record


@functools.cache
def smoke_runs() -> Path:
    """The smoke grid (one tiny model per activation on the committed corpus slice, a few CPU minutes), trained
    once per process into a temporary folder; returns the folder of its runs, with the checkpoints beside it
    in ``../ckpt``. Every chapter's smoke profile reads it, so a chapter that needs it twice trains it once."""
    tmp = Path(tempfile.mkdtemp(prefix="sparsing-smoke-"))
    out = tmp / "runs"
    argv = [
        "--grid",
        "smoke",
        "--profile",
        "smoke",
        "--corpus",
        "smoke",
        "--out",
        str(out),
        "--ckpt",
        str(tmp / "ckpt"),
    ]
    if main(argv):
        raise RuntimeError(f"the grid runner reported failed runs in {out}; see each run's env.json")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--grid", default="proof", help=f"one of: {', '.join(GRIDS)}")
    ap.add_argument("--slice", default=None, help="'all', 'a:b' or comma-separated run names")
    ap.add_argument("--run", default=None, help="run exactly this one (used by --jobs workers)")
    ap.add_argument("--out", type=Path, default=Path("data/runs"))
    ap.add_argument("--ckpt", type=Path, default=Path(".scratch/ckpt"), help="checkpoints and resume state")
    ap.add_argument("--corpus", default="full", choices=["full", "smoke", "synthetic"])
    ap.add_argument("--profile", default="full", choices=["full", "smoke"])
    ap.add_argument("--jobs", type=int, default=1, help="runs trained concurrently (separate processes)")
    ap.add_argument("--gpus", type=int, default=0, help="place runs on this many GPUs, --per-gpu at a time on each")
    ap.add_argument("--per-gpu", type=int, default=1, help="concurrent runs per GPU with --gpus")
    ap.add_argument("--tokens", type=int, default=None, help="override the recipe's training tokens (tests)")
    ap.add_argument("--time-limit", type=float, default=None, help="seconds of training before pausing a run")
    ap.add_argument(
        "--decay-frac",
        type=float,
        default=0.0,
        help="end with a decay phase of this share of the steps, in place of the recipe's (the recipe-validation "
        "run has its own; the smoke profile of the Fig. 11 chapter trains a toy run with one)",
    )
    ap.add_argument("--no-probe", action="store_true", help="train only (benchmarks): no end-of-run probes")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    options = dict(
        time_limit=args.time_limit,
        tokens=args.tokens,
        decay_frac=args.decay_frac,
        probe=not args.no_probe,
    )

    if args.run or world_from_env().size > 1:
        if args.profile == "smoke" and args.device == "cpu":
            torch.set_num_threads(1)  # a toy model gains nothing from threads and loses much on a busy machine
        world, device = start(args.device)
        codes = []
        try:
            for run in [args.run] if args.run else select(args.grid, args.slice):
                rec = run_one(
                    run,
                    args.out,
                    args.ckpt,
                    args.corpus,
                    args.profile,
                    device=device,
                    progress=args.jobs == 1,
                    world=world,
                    **options,
                )
                barrier(world)  # the other ranks wait while rank 0 probes
                codes.append(rec["status"] in FINISHED + ("paused",))
                if not world.main:
                    continue
                print(
                    f"{run}: {rec['status']} step {rec.get('step')} tokens/s {rec.get('tokens_per_s', 0):.0f}"
                    + (f" error {rec['error']}" if rec.get("error") else ""),
                    flush=True,
                )
        finally:
            stop(world)
        return 0 if all(codes) else 1
    runs = select(args.grid, args.slice)
    base = [sys.executable, "-m", "sparsing_lib.run", "--out", str(args.out), "--ckpt", str(args.ckpt)]
    base += ["--corpus", args.corpus, "--profile", args.profile, "--jobs", str(max(args.jobs, args.per_gpu))]
    base += ["--device", args.device]
    if args.time_limit:
        base += ["--time-limit", str(args.time_limit)]
    if args.tokens:
        base += ["--tokens", str(args.tokens)]
    if args.decay_frac:
        base += ["--decay-frac", str(args.decay_frac)]
    if args.no_probe:
        base += ["--no-probe"]
    t0 = time.time()
    jobs = args.per_gpu if args.gpus else args.jobs
    codes = launch(runs, base, args.ckpt / "logs", jobs=jobs, gpus=args.gpus)
    failures = sum(c != 0 for c in codes.values())
    print(f"{len(runs)} runs, {failures} failed, {time.time() - t0:.0f} s wall", flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
