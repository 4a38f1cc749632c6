"""How long the whole downstream suite takes on one model: synthetic items shaped like the real tasks.

The items mimic each benchmark's item count, number of options and prompt/continuation lengths in tokens
(approximate, from the registry's formats: MMLU's 5-shot and BBH's 3-shot prompts fill most of a 1024-token
context), so the forward passes, padding, truncations and generation steps are those of the real suite. A
freshly initialised model never emits a stop string, so every generation runs to ``max_new_tokens``: the
measured time is an upper bound for a trained model, whose answers mostly stop early.

    python -m sparsing_lib.evaluation.benchmark --model mini-336x7 --device cuda --out data/benchmarks/eval_speed.json

``--generation TASKS`` times greedy generation alone (``engine.generate``) on the real prompts of the named
tasks (files from ``SPARSING_EVAL_DATA``), dense and at three CETT values, and counts the operations of a
decoding step that make the host wait for the device (``count_syncs``)::

    SPARSING_EVAL_DATA=/path/to/evaldata python -m sparsing_lib.evaluation.benchmark --generation SQuAD,GSM8K \
        --model mini-336x7 --device cuda --out data/benchmarks/generation_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

from .. import metrics, paths
from ..models import build_model, get_spec
from ..runs import write_json
from . import engine, suite
from .items import Choice, Cloze, Generate, Program, Task

# name, items, options, context tokens, continuation tokens
LOGLIKELIHOOD = (
    ("PIQA", 1838, 2, 35, 20),
    ("SIQA", 1954, 3, 40, 5),
    ("HellaSwag", 10042, 4, 60, 25),
    ("WinoGrande", 1267, 2, 25, 8),
    ("COPA", 100, 2, 10, 8),
    ("BoolQ", 3270, 2, 150, 1),
    ("ARC-Easy", 2376, 4, 30, 4),
    ("OpenBookQA", 500, 4, 20, 5),
    ("AGIEval", 2546, 5, 400, 10),
    ("MMLU", 14042, 4, 650, 1),  # " A".." D" after one prompt: the four requests share a forward pass
    ("BLiMP", 67000, 2, 0, 12),
)
CLOZE = (("LAMBADA", 5153, 80, 1),)
# name, items, prompt tokens, max new tokens, program?
GENERATION = (
    ("SQuAD", 10570, 250, 32, False),
    ("TyDiQA", 440, 250, 32, False),
    ("BBH", 6511, 900, 32, False),
    ("GSM8K", 1319, 800, 256, False),
    ("AGIEval-math", 1000, 100, 32, False),
    ("HumanEval", 164, 150, 256, True),
    ("MBPP", 500, 500, 512, True),
)


def synthetic_tasks(fraction: float = 1.0, seed: int = 0) -> list[Task]:
    """Tasks of random words with the shapes above (``fraction`` of each item count, at least 2 items)."""
    rng = np.random.default_rng(seed)
    words = "time year people way day man thing woman life child world school state family student".split()

    def text(n: int) -> str:
        return " ".join(rng.choice(words, n)) if n else ""

    def count(n: int) -> int:
        return max(2, round(n * fraction))

    tasks = []
    for name, n, options, ctx, cont in LOGLIKELIHOOD:
        items = [
            Choice(f"{name}/{i}", text(ctx), tuple(" " + text(cont) for _ in range(options)), 0)
            for i in range(count(n))
        ]
        tasks.append(Task(name, "tiny", ("acc",), 1 / options, 0, items))
    for name, n, ctx, cont in CLOZE:
        tasks.append(
            Task(
                name,
                "reading",
                ("acc",),
                0.0,
                0,
                [Cloze(f"{name}/{i}", text(ctx), " " + text(cont)) for i in range(count(n))],
            )
        )
    for name, n, prompt, new, program in GENERATION:
        if program:
            items = [Program(f"{name}/{i}", text(prompt), "assert False", max_new_tokens=new) for i in range(count(n))]
            tasks.append(Task(name, "complex", ("pass@1",), 0.0, 0, items))
        else:
            items = [Generate(f"{name}/{i}", text(prompt), ("x",), "exact", ("\n\n",), new) for i in range(count(n))]
            tasks.append(Task(name, "complex", ("acc",), 0.0, 0, items))
    return tasks


CETT = (0.1, 0.2, 0.3)  # CETT values timed in place of the CETT-PPL-{1,5,10}% settings


def random_model(name: str, context: int = 1024) -> tuple[nn.Module, object]:
    """(a freshly initialised SiLU mini ``name`` at the trained context length, our tokenizer): the timing
    model, whose answers never stop early, so that a measured time is an upper bound."""
    from ..corpus import load_tokenizer

    tokenizer = load_tokenizer()
    model = build_model(get_spec(name), "silu", len(tokenizer))
    model.config.max_position_embeddings = context  # the trained length; RoPE does not depend on it
    return model, tokenizer


def cett_settings(model: nn.Module, tokenizer, cett: Sequence[float], device: str) -> suite.Settings:
    """Dense and the ``cett`` values, thresholds from random calibration tokens: a CETT setting costs the same
    whichever thresholds it has, so this times the CETT-PPL settings without their search."""
    context = engine.max_context(model, tokenizer)
    calib = torch.randint(0, len(tokenizer), (16, context), generator=torch.Generator().manual_seed(0))
    return suite.settings(model, calib.to(device), ps=(), sweeps={"cett": tuple(cett)})


def run(
    model_name: str = "mini-336x7",
    device: str = "cuda",
    fraction: float = 1.0,
    context: int = 1024,
    batch_size: int = 4096,
    max_tokens: int = 1 << 20,
    progress: bool = True,
) -> dict:
    """Time dense + three CETT settings (the cost of the CETT-PPL-{1,5,10}% settings, whose thresholds come
    from a separate search) on ``synthetic_tasks``; returns seconds per task and setting, and the total."""
    model, tokenizer = random_model(model_name, context)
    model = model.to(device).eval()
    chosen = cett_settings(model, tokenizer, CETT, device)
    tasks = synthetic_tasks(fraction)
    start = time.perf_counter()
    result = suite.run_suite(model, tokenizer, tasks, chosen, batch_size, device, progress, max_tokens)
    total = time.perf_counter() - start
    by_setting: dict[str, float] = {}
    for key, sec in result.meta["seconds"].items():
        by_setting[key.split("|")[-1]] = by_setting.get(key.split("|")[-1], 0.0) + sec
    return dict(
        model=model_name,
        device=paths.device_hardware(device),
        fraction=fraction,
        context=context,
        batch_size=batch_size,
        max_tokens=max_tokens,
        settings=list(chosen),
        loglikelihood_requests=sum(
            len(it.continuations) if isinstance(it, Choice) else 1
            for t in tasks
            for it in t.items
            if isinstance(it, (Choice, Cloze))
        ),
        generations=sum(1 for t in tasks for it in t.items if isinstance(it, (Generate, Program))),
        total_seconds=total,
        seconds_by_setting=by_setting,
        seconds=result.meta["seconds"],
        revision=paths.git_revision(),
    )


# aten ops after which the host must wait for a CUDA device: reading a value (item, bool, int), results whose
# shape depends on the data, and copies into host memory; ``torch.cuda.set_sync_debug_mode`` reports the same
# events, but only on CUDA.
SYNCING = {"_local_scalar_dense", "is_nonzero", "nonzero", "masked_select", "unique", "_unique2", "equal"}


class _SyncCounter(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        self.count += _syncs(func.overloadpacket.__name__, args, kwargs)
        return func(*args, **kwargs)


def _syncs(name: str, args, kwargs) -> bool:
    if name in SYNCING:
        return True
    if name in ("index", "index_put", "index_put_"):  # a boolean index is a nonzero()
        return any(isinstance(t, torch.Tensor) and t.dtype in (torch.bool, torch.uint8) for t in args[1])
    if name == "repeat_interleave":
        return kwargs.get("output_size") is None
    if name == "_to_copy":
        return args[0].device.type == "cuda" and torch.device(kwargs.get("device") or "cuda").type == "cpu"
    if name == "copy_":
        return args[1].device.type == "cuda" and args[0].device.type == "cpu"
    return False


@contextmanager
def count_syncs(model: nn.Module) -> Iterator[list[tuple[int, int]]]:
    """Within the block, per forward of ``model``: (input width, ops that make the host wait for the device from
    the start of that forward to the start of the next one), so a decoding step's own bookkeeping counts too.

    Counted on any device (on CPU nothing waits, but the same ops run), so a CPU test can show that cached
    decoding steps (width 1) are free of synchronisations under every sparsity setting. Copies to the host are
    only seen on CUDA: there the steps at which ``decoding.greedy`` looks at the new tokens count one."""
    counter, out, start = _SyncCounter(), [], []

    def pre(module, args, kwargs):
        if out:
            out[-1] = (out[-1][0], counter.count - start[0])
        ids = kwargs.get("input_ids", args[0] if args else None)
        start[:] = [counter.count]
        out.append((ids.shape[1], 0))

    handle = model.register_forward_pre_hook(pre, with_kwargs=True, prepend=True)  # before sparsify's own
    try:
        with counter:
            yield out
    finally:
        handle.remove()
        if out:
            out[-1] = (out[-1][0], counter.count - start[0])


def time_generation(
    model: nn.Module,
    tokenizer,
    tasks: Sequence[Task],
    device: str = "cuda",
    cett: Sequence[float] = CETT,
    batch_size: int = 4096,
    cache_tokens: int = engine.CACHE_TOKENS,
    progress: bool = True,
) -> dict:
    """Seconds, new tokens and tokens per second of ``engine.generate`` on each task's prompts, dense and at the
    ``cett`` values (thresholds from random calibration tokens: their cost is that of the CETT-PPL settings),
    and how many decoding steps of the first 64 prompts had how many synchronising operations (``count_syncs``)."""
    jobs = []  # (task, prompts, stop strings, max new tokens)
    for task in tasks:
        items = [it for it in task.items if isinstance(it, (Generate, Program))]
        rules = {(it.stop, it.max_new_tokens) for it in items}
        if len(rules) != 1:
            raise ValueError(f"task {task.name}: {len(rules)} stopping rules; time tasks with one rule each")
        jobs.append((task.name, [it.prompt for it in items], *rules.pop()))
    model = model.to(device).eval()
    chosen = cett_settings(model, tokenizer, cett, device)
    kw = dict(batch_size=batch_size, device=device, cache_tokens=cache_tokens)
    rows = []
    for task_name, prompts, stop, new in jobs:
        for name, (method, value) in chosen.items():
            with metrics.sparsify(model, method, value), count_syncs(model) as syncs:
                engine.generate(model, tokenizer, prompts[:64], stop, new, **kw)
            t0 = time.perf_counter()
            with metrics.sparsify(model, method, value):
                gen = engine.generate(model, tokenizer, prompts, stop, new, progress=progress, **kw)
            if str(device).startswith("cuda"):
                torch.cuda.synchronize(device)
            sec = time.perf_counter() - t0
            tokens = int(gen.n_tokens.sum())
            rows.append(
                dict(
                    task=task_name,
                    setting=name,
                    prompts=len(prompts),
                    max_new_tokens=new,
                    truncated=int(gen.truncated.sum()),
                    new_tokens=tokens,
                    seconds=sec,
                    tokens_per_second=tokens / sec,
                    step_syncs=_histogram([k for w, k in syncs if w == 1]),
                )
            )
    by_setting: dict[str, float] = {}
    for r in rows:
        by_setting[r["setting"]] = by_setting.get(r["setting"], 0.0) + r["seconds"]
    return dict(
        device=paths.device_hardware(device),
        batch_size=batch_size,
        cache_tokens=cache_tokens,
        seconds_by_setting=by_setting,
        rows=rows,
        revision=paths.git_revision(),
    )


def _histogram(counts: list[int]) -> dict[str, int]:
    """{"number of synchronising ops": number of steps with that many}."""
    values, freq = np.unique(counts, return_counts=True)
    return {str(v): int(f) for v, f in zip(values, freq)}


def _generation_cli(args) -> dict:
    from . import tasks as registry

    names = [n for n in args.generation.split(",") if n]
    if Path(args.model).exists():
        model, tokenizer = suite.load_model(args.model, args.run, args.device)
    else:  # a model name: random weights, so no answer stops early (an upper bound)
        model, tokenizer = random_model(args.model)
    task_list = [registry.load(n, args.limit) for n in names]
    record = time_generation(
        model, tokenizer, task_list, args.device, batch_size=args.batch_size, cache_tokens=args.cache_tokens
    )
    return dict(model=args.model, limit=args.limit, **record)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the downstream suite on synthetic items of the real shapes.")
    parser.add_argument("--model", default="mini-336x7", help="model name (random weights), folder or checkpoint")
    parser.add_argument("--run", help="run folder whose config.json rebuilds a checkpoint (--generation)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of each task's items (CPU checks)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=1 << 20)
    parser.add_argument("--cache-tokens", type=int, default=engine.CACHE_TOKENS, help="generation batch budget")
    parser.add_argument("--generation", help="time generation alone on these tasks' real prompts, e.g. SQuAD,GSM8K")
    parser.add_argument("--limit", type=int, help="first N items of each task (--generation)")
    parser.add_argument("--out", help="JSON file for the timings")
    args = parser.parse_args(argv)
    if args.generation:
        record = _generation_cli(args)
        print(json.dumps(record, indent=1))
        if args.out:
            write_json(args.out, record)
        return 0
    record = run(args.model, args.device, args.fraction, batch_size=args.batch_size, max_tokens=args.max_tokens)
    print(json.dumps({k: v for k, v in record.items() if k != "seconds"}, indent=1))
    if args.out:
        write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
