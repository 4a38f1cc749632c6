"""Training-step throughput and MFU of the minis under different compile modes, optimizers, batch sizes and loss or
attention options.

    python benchmarks/mfu.py --configs mini-256x5:default:64,mini-256x5:default:64:causal:chunked --out $OUT --tag v5

The first candidates were fewer launches per token: CUDA graphs (``reduce-overhead``), autotuned kernels without
graphs (``max-autotune-no-cudagraphs``), the fused AdamW kernel against the multi-tensor ``foreach`` one, and more
sequences per step (a recipe change: the pilots test what a larger batch does to training). CUDA graphs gained
0.2 points of MFU (v4), so the minis are not launch-bound. v5 measured the attention kernel (under torch.compile
transformers hands SDPA a mask tensor, which rules out its flash kernel) and the logits' memory traffic: SDPA's
causal flag without the mask and the chunked loss took mini-448x8 past 40% MFU, not mini-256x5 or mini-336x7
(``data/benchmarks/throughput_README.md``; ``benchmarks/step_profile.py`` shows where a step's time goes). A config is
``model:mode:batch[:micro][:flag...]``: mode is eager or a torch.compile mode, ``micro`` splits the batch
into micro-batches of that many sequences (gradient accumulation), and each flag switches on one trainer option:
``foreach`` (the foreach AdamW instead of the fused one), ``causal`` (``TrainConfig.causal_attention``: SDPA with
``is_causal`` and no mask tensor), ``chunked`` or ``chunk<N>`` (``TrainConfig.loss_chunk``: the cross-entropy in
chunks of ``CHUNK`` or N tokens). Each config runs in its own process
(compile caches and CUDA graphs do not leak between configs) under ``--timeout``; it trains ``--warmup``
untimed steps, then ``--repeats`` timed windows of ``--steps`` / ``--repeats`` steps on random token ids,
and reports the median window. Writes a CSV and a log (command, and ``sparsing_lib.run.environment()``: revision
from git or ``SPARSING_GIT_REV``, packages, hardware): ``--out FILE.csv`` names the CSV (the log is ``FILE.log``),
any other ``--out`` is a folder for ``mfu_<tag>.csv`` and ``mfu_<tag>.log``.
MFU as in ``benchmarks/throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from sparsing_lib.checks import check_choice
from sparsing_lib.models import ModelSpec, build_model, get_spec
from sparsing_lib.paths import H200_BF16_FLOPS, device_hardware
from sparsing_lib.run import environment
from sparsing_lib.train import TrainConfig, loss_function, make_optimizer, prepare_model, train_step

MODES = ("eager", "default", "max-autotune-no-cudagraphs", "reduce-overhead")
CHUNK = 8192  # tokens per loss chunk of the ``chunked`` flag: 8 sequences, 8 chunks of a 64-sequence batch


@dataclass
class Step:
    """One config's training step, built as the trainer builds it: ``train_step(model, loss_fn, opt, x, y,
    cfg.grad_clip, chunks)`` on the rows of ``sets`` (random token ids, rotated so no step reuses the last's)."""

    spec: ModelSpec
    model: torch.nn.Module
    cfg: TrainConfig
    opt: torch.optim.Optimizer
    loss_fn: Callable
    chunks: int
    sets: list[torch.Tensor]

    def run(self, n: int, first: int) -> None:
        """Steps ``first`` to ``first + n - 1``."""
        for i in range(first, first + n):
            x = self.sets[i % len(self.sets)]
            train_step(self.model, self.loss_fn, self.opt, x[:, :-1], x[:, 1:], self.cfg.grad_clip, self.chunks)


def parse_config(text: str) -> dict:
    """``model:mode:batch[:micro][:flag...]`` as a dict; one clear error for a malformed config."""
    parts = text.split(":")
    if len(parts) < 3:
        raise ValueError(f"config {text!r} is not model:mode:batch[:micro][:flag...]")
    get_spec(parts[0])
    check_choice("mode", parts[1], MODES)
    rest = parts[3:]
    micro = int(rest.pop(0)) if rest and rest[0].isdigit() else 0
    c = dict(config=text, model=parts[0], mode=parts[1], batch=int(parts[2]), micro=micro, fused=True)
    c |= dict(causal=False, loss_chunk=0)
    for flag in rest:
        if flag == "foreach":
            c["fused"] = False
        elif flag == "causal":
            c["causal"] = True
        elif flag == "chunked" or (flag.startswith("chunk") and flag[5:].isdigit() and int(flag[5:]) > 0):
            c["loss_chunk"] = CHUNK if flag == "chunked" else int(flag[5:])
        else:
            raise ValueError(f"config {text!r}: unknown flag {flag!r} (foreach, causal, chunked, chunk<N>)")
    if micro and c["batch"] % micro:
        raise ValueError(f"config {text!r}: micro-batch {micro} does not divide batch {c['batch']}")
    return c


def output_files(out: Path, tag: str | None) -> tuple[Path, Path]:
    """The CSV and log that ``--out`` and ``--tag`` name. A ``.csv`` name is the file itself (a folder named
    ``x.csv`` holding ``mfu_run.csv`` would be a trap); any other suffix is refused, since it reads as a file
    name too; a name without one is a folder for ``mfu_<tag>.csv`` and ``.log`` (tag ``run`` unless given)."""
    if out.suffix == ".csv":
        if tag is not None:
            raise ValueError(f"--out {out} names the CSV file itself; drop --tag, or give --out a folder")
        return out, out.with_suffix(".log")
    if out.suffix or out.is_file():
        raise ValueError(f"--out {out} is neither a .csv file name nor a folder")
    return out / f"mfu_{tag or 'run'}.csv", out / f"mfu_{tag or 'run'}.log"


def build_step(config: str, seq_len: int, vocab: int, device: str) -> Step:
    """The model, optimizer and loss of ``config`` on ``device`` with the trainer's own builders."""
    c = parse_config(config)
    spec = get_spec(c["model"])
    model = build_model(spec, "relu", vocab).to(device)
    cfg = TrainConfig(
        tokens=1,
        batch_size=c["batch"],
        seq_len=seq_len,
        compile=c["mode"] != "eager",
        compile_mode="default" if c["mode"] == "eager" else c["mode"],
        fused=c["fused"],
        micro_batch=c["micro"],
        loss_chunk=c["loss_chunk"],
        causal_attention=c["causal"],
    )
    prepare_model(model, cfg)
    opt = make_optimizer(model, cfg, fused=device == "cuda" and cfg.fused)
    chunks = c["batch"] // c["micro"] if c["micro"] else 1
    sets = [torch.randint(0, vocab, (c["batch"], seq_len + 1), device=device) for _ in range(4)]
    return Step(spec, model, cfg, opt, loss_function(cfg, compiled=cfg.compile), chunks, sets)


def measure(config: str, seq_len: int, vocab: int, steps: int, warmup: int, repeats: int, device: str) -> dict:
    """Time one config (see the module docstring) on ``device``: tokens/s of the median timed window and MFU."""
    c = parse_config(config)
    step, cuda = build_step(config, seq_len, vocab, device), device == "cuda"
    t0 = time.perf_counter()
    step.run(warmup, 0)
    if cuda:
        torch.cuda.synchronize()
    warmup_s, per, seconds = time.perf_counter() - t0, max(1, steps // repeats), []
    for r in range(repeats):
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            step.run(per, warmup + r * per)
            end.record()
            torch.cuda.synchronize()
            seconds.append(start.elapsed_time(end) / 1e3)
        else:
            t = time.perf_counter()
            step.run(per, warmup + r * per)
            seconds.append(time.perf_counter() - t)
    tok_s = per * c["batch"] * seq_len / float(np.median(seconds))
    fpt = step.spec.flops_per_token(seq_len, vocab)
    return c | dict(
        status="ok",
        seq_len=seq_len,
        vocab=vocab,
        non_embedding_params=step.spec.non_embedding_params,
        flops_per_token=fpt,
        tokens_per_s=tok_s,
        spread=float(np.ptp(seconds) / np.median(seconds)),  # between timed windows: what counts as noise
        mfu=tok_s * fpt / H200_BF16_FLOPS if cuda else float("nan"),
        warmup_s=warmup_s,
        peak_mem_gib=torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan"),
        device=device_hardware(device),
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="", help="comma-separated model:mode:batch[:micro][:flag...]")
    ap.add_argument("--worker", default=None, help="measure this one config and print it as JSON (internal)")
    ap.add_argument("--seq-len", type=int, default=1024)
    ap.add_argument("--vocab", type=int, default=12288)
    ap.add_argument("--steps", type=int, default=60, help="timed steps, split into --repeats windows")
    ap.add_argument("--warmup", type=int, default=8, help="untimed steps first (compilation, graph capture)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--timeout", type=float, default=240, help="seconds one config may take, compilation included")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--out", type=Path, default=Path("data/benchmarks"), help="a folder, or the CSV file (.csv)")
    ap.add_argument("--tag", default=None, help="names mfu_<tag>.csv/.log in an --out folder (default: run)")
    args = ap.parse_args(argv)
    try:
        table, log = output_files(args.out, args.tag)
    except ValueError as e:
        ap.error(str(e))
    sizes = [args.seq_len, args.vocab, args.steps, args.warmup, args.repeats, args.device]
    if args.worker:
        print(json.dumps(measure(args.worker, *sizes)), flush=True)
        return 0
    configs = [parse_config(c)["config"] for c in args.configs.split(",") if c]
    table.parent.mkdir(parents=True, exist_ok=True)
    env = environment() | dict(gpus=torch.cuda.device_count())  # revision (git or SPARSING_GIT_REV), hardware
    head = [f"command: python benchmarks/mfu.py {' '.join(argv if argv is not None else sys.argv[1:])}"]
    head.append(f"environment: {json.dumps(env)}")
    log.write_text("\n".join(head) + "\n")
    rows = []
    flags = ["--seq-len", str(args.seq_len), "--vocab", str(args.vocab), "--steps", str(args.steps)]
    flags += ["--warmup", str(args.warmup), "--repeats", str(args.repeats), "--device", args.device]
    for config in configs:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", config, *flags]
        t0 = time.time()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
            out = p.stdout.strip().splitlines()
            row = json.loads(out[-1]) if p.returncode == 0 and out else parse_config(config) | dict(status="failed")
            err = "" if p.returncode == 0 else p.stderr.strip().splitlines()[-1:]
        except subprocess.TimeoutExpired:
            row, err = parse_config(config) | dict(status="timeout"), f"over {args.timeout:.0f} s"
        row["wall_s"] = time.time() - t0
        rows.append(row)
        line = f"{config}: {row['status']} " + (
            f"{row['tokens_per_s'] / 1e6:.3f}M tokens/s MFU {row['mfu']:.3f}" if row["status"] == "ok" else str(err)
        )
        with open(log, "a") as f:
            f.write(line + "\n")
        print(line, flush=True)
        pd.DataFrame(rows).to_csv(table, index=False)  # after each: a cut call keeps rows
    return 0 if all(r["status"] == "ok" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
