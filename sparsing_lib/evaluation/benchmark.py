"""How long the whole downstream suite takes on one model: synthetic items shaped like the real tasks.

The items mimic each benchmark's item count, number of options and prompt/continuation lengths in tokens
(approximate, from the registry's formats: MMLU's 5-shot and BBH's 3-shot prompts fill most of a 1024-token
context), so the forward passes, padding, truncations and generation steps are those of the real suite. A
freshly initialised model never emits a stop string, so every generation runs to ``max_new_tokens``: the
measured time is an upper bound for a trained model, whose answers mostly stop early.

    python -m sparsing_lib.evaluation.benchmark --model mini-336x7 --device cuda --out data/benchmarks/eval_speed.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np
import torch

from .. import paths
from ..models import build_model, get_spec
from ..runs import write_json
from . import suite
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
    from ..corpus import load_tokenizer

    tokenizer = load_tokenizer()
    model = build_model(get_spec(model_name), "silu", len(tokenizer)).to(device).eval()
    model.config.max_position_embeddings = context  # the trained length; RoPE does not depend on it
    calib = torch.randint(0, len(tokenizer), (16, context), generator=torch.Generator().manual_seed(0))
    chosen = suite.settings(model, calib.to(device), ps=(), sweeps={"cett": (0.1, 0.2, 0.3)})
    tasks = synthetic_tasks(fraction)
    start = time.perf_counter()
    result = suite.run_suite(model, tokenizer, tasks, chosen, batch_size, device, progress, max_tokens)
    total = time.perf_counter() - start
    by_setting: dict[str, float] = {}
    for key, sec in result.meta["seconds"].items():
        by_setting[key.split("|")[-1]] = by_setting.get(key.split("|")[-1], 0.0) + sec
    return dict(
        model=model_name,
        device=torch.cuda.get_device_name(device) if str(device).startswith("cuda") else paths.cpu_hardware(),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Time the downstream suite on synthetic items of the real shapes.")
    parser.add_argument("--model", default="mini-336x7")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--fraction", type=float, default=1.0, help="share of each task's items (CPU checks)")
    parser.add_argument("--batch-size", type=int, default=4096)
    parser.add_argument("--max-tokens", type=int, default=1 << 20)
    parser.add_argument("--out", help="JSON file for the timings")
    args = parser.parse_args(argv)
    record = run(args.model, args.device, args.fraction, batch_size=args.batch_size, max_tokens=args.max_tokens)
    print(json.dumps({k: v for k, v in record.items() if k != "seconds"}, indent=1))
    if args.out:
        write_json(args.out, record)
    return 0


if __name__ == "__main__":
    sys.exit(main())
