"""The downstream suite: every task under every sparsity setting, written as ``eval.csv`` (``results``).

A setting is a sparsification rule (``metrics.sparsify``): dense, the CETT-PPL-p% thresholds found on
calibration tokens (Table 1), and the Fig. 3 sweeps (Top-k, FAT-ε and CETT at several values, and the zero
threshold for ReLU models). Each task runs inside its own ``sparsify`` block, so its ``activation_ratio`` is
that of the tokens the task itself ran. Generated programs from all settings are executed together at the
end, in parallel and once per distinct program (sparse settings often repeat the dense completion).
A mixture of experts (the MoE minis, GraniteMoe) is scored the same way: a token's neurons are those of all
its layer's experts, the non-routed experts' counting as inactive (``capture.ExpertNeurons``).

CLI (one model, any tasks of ``evaluation.tasks``)::

    python -m sparsing_lib.evaluation.suite --model DIR_OR_CKPT --tasks PIQA,LAMBADA --out FOLDER --device cuda

``DIR_OR_CKPT``: a Hugging Face model folder (with its tokenizer), or a run checkpoint ``.../step_XXXXXX.pt``
whose run folder (``--run``) holds the config.json that rebuilds the model; ours use the committed tokenizer.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import metrics, models, paths
from . import engine, execute, scoring, stats
from .items import Choice, Cloze, Generate, Program, Task
from .parts import FOLDER, Part, Parts
from .results import SuiteResult, item_key, write

DEFAULT_PS = (0.01, 0.05, 0.10)
# Padded tokens per log-likelihood pass for the command line and the sweep: fast for one evaluation alone on an
# H200, and a peak of about 23 GiB of bf16 logits at our vocabulary of 12,288 (several evaluations on one GPU
# each take a share of it: evaluate_runs).
GPU_MAX_TOKENS = 1 << 20
# Fig. 3 sweep points: fraction kept for Top-k, ε for FAT, CETT values; "zero" is added for ReLU models.
SWEEPS: dict[str, tuple[float, ...]] = {
    "topk_token": (0.5, 0.3, 0.2, 0.1),
    "fat": (0.01, 0.03, 0.1),
    "cett": (0.1, 0.2, 0.4),
}


class Settings(dict):
    """name -> (method, value), plus ``cett``: name -> the CETT value behind each CETT setting."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.cett: dict[str, float] = {}


def ppl_name(p: float) -> str:
    """The setting name of CETT-PPL-p%, e.g. 0.01 -> "cett-ppl-1%"."""
    return f"cett-ppl-{100 * p:g}%"


def settings(
    model: nn.Module,
    calib_ids: torch.Tensor,
    ps: Sequence[float] = DEFAULT_PS,
    sweeps: Mapping[str, Sequence[float]] | None = None,
    calib_mask: torch.Tensor | None = None,
) -> Settings:
    """Dense, CETT-PPL-p% for each p (thresholds searched on ``calib_ids``), and the ``sweeps`` points
    (``SWEEPS`` for Fig. 3; ``{}`` for none), with "zero" added to a sweep on a ReLU model."""
    out = Settings(dense=("dense", None))
    for p in ps:
        found = metrics.cett_ppl(model, calib_ids, p, calib_mask)
        out[ppl_name(p)] = ("cett", found.thresholds[0])
        out.cett[ppl_name(p)] = found.cett
    sweeps = {} if sweeps is None else sweeps
    if sweeps.get("cett"):
        curves = metrics.cett_curves(model, calib_ids, calib_mask)
        for v in sweeps["cett"]:
            out[f"cett={v:g}"] = ("cett", curves.thresholds(v))
            out.cett[f"cett={v:g}"] = float(v)
    for method, values in sweeps.items():
        for v in values if method != "cett" else ():
            out[f"{method}={v:g}"] = (method, float(v))
    if sweeps and getattr(model.config, "hidden_act", None) == "relu":
        out["zero"] = ("zero", None)
    return out


def _pick(items: Sequence, kind) -> list[int]:
    return [i for i, it in enumerate(items) if isinstance(it, kind)]


def score_task(
    model: nn.Module,
    tokenizer,
    task: Task,
    max_tokens: int = engine.MAX_TOKENS,
    cache_tokens: int = engine.CACHE_TOKENS,
    **kw,
) -> tuple[dict[str, np.ndarray], int, list[tuple[int, str]]]:
    """Per-item metrics of one task (NaN where an item does not produce a metric), its number of truncated
    prompts, and the (item index, source) of its programs, whose ``pass@1`` the caller fills in. Log-likelihood
    batches are bounded by ``max_tokens``, generation batches by ``cache_tokens`` (``engine.generate``)."""
    n = len(task.items)
    out: dict[str, np.ndarray] = {}
    truncated = 0

    def put(name: str, idx: list[int], values) -> None:
        out.setdefault(name, np.full(n, np.nan))[idx] = values

    for kind, fn in ((Choice, engine.choice_scores), (Cloze, engine.cloze_scores)):
        idx = _pick(task.items, kind)
        if idx:
            scores, ll = fn(model, tokenizer, [task.items[i] for i in idx], max_tokens=max_tokens, **kw)
            for name, values in scores.items():
                put(name, idx, values)
            truncated += _truncated_items(task, idx, ll.truncated) if kind is Choice else int(ll.truncated.sum())
    idx = _pick(task.items, (Generate, Program))
    programs = []
    if idx:
        texts, cut = engine.completions(model, tokenizer, [task.items[i] for i in idx], cache_tokens=cache_tokens, **kw)
        truncated += int(cut.sum())
        for i, text in zip(idx, texts):
            it = task.items[i]
            if isinstance(it, Program):
                programs.append((i, it.program(text)))
            else:
                for name, value in scoring.score(it.scorer, text, it.references).items():
                    put(name, [i], value)
    return out, truncated, programs


def _truncated_items(task: Task, idx: list[int], flags: np.ndarray) -> int:
    """Choice items any of whose options was cut (flags are per option, in item order)."""
    count, k = 0, 0
    for i in idx:
        m = len(task.items[i].continuations)
        count += bool(flags[k : k + m].any())
        k += m
    return count


def _interval(x: np.ndarray) -> tuple[float, float]:
    if np.isin(x, (0.0, 1.0)).all():
        return stats.wilson(float(x.sum()), len(x))
    return stats.bootstrap_mean(x)


def run_suite(
    model: nn.Module,
    tokenizer,
    tasks: Sequence[Task],
    settings: Mapping[str, tuple[str, object]],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
    max_tokens: int = engine.MAX_TOKENS,
    cache_tokens: int = engine.CACHE_TOKENS,
    store: Parts | None = None,
) -> SuiteResult:
    """Every task under every setting: one row per (task, setting, metric) in ``results.COLUMNS``, per-item
    scores under ``results.item_key``, and meta (thresholds, CETT values, seconds per task and setting).
    With a ``store`` (``parts.Parts``) each finished part is saved as it ends and a part already there is
    read back instead of scored again, so a suite stopped midway resumes."""
    from tqdm.auto import tqdm

    engine.eos_id(tokenizer)  # fail before any work on a tokenizer without end-of-text
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model = model.to(device).eval()
    kw = dict(batch_size=batch_size, device=device, progress=progress, max_tokens=max_tokens, cache_tokens=cache_tokens)
    per_item: dict[str, np.ndarray] = {}
    info: dict[tuple[str, str], dict] = {}
    pending: list[tuple[str, int, str]] = []
    seconds: dict[str, float] = {}
    resumed: list[str] = []  # parts read back from the store (their seconds are those of the earlier call)
    start = time.perf_counter()
    bar = tqdm(total=len(settings) * len(tasks), disable=not progress, desc="suite")
    for task in tasks:  # settings innermost: a task's tokens are encoded once (engine memoises them)
        for name, (method, value) in settings.items():
            bar.set_postfix_str(f"{task.name} | {name}")
            part = store.load(task.name, name) if store is not None else None
            if part is not None:
                resumed.append(f"{task.name}|{name}")
            else:
                part = _score_part(model, tokenizer, task, method, value, kw)
                if store is not None:
                    store.save(task.name, name, part)
            seconds[f"{task.name}|{name}"] = part.seconds
            info[task.name, name] = dict(truncated=part.truncated, activation_ratio=part.activation_ratio)
            for metric, values in part.scores.items():
                per_item[item_key(task.name, name, metric)] = values
            if part.programs:
                key = item_key(task.name, name, "pass@1")
                per_item[key] = np.full(len(task.items), np.nan)
                pending += [(key, i, src) for i, src in part.programs]
            bar.update()
    bar.close()
    t0 = time.perf_counter()
    for (key, i, _), outcome in zip(pending, execute.run_programs([src for *_, src in pending])):
        per_item[key][i] = float(outcome == execute.PASSED)
    seconds["execute"] = time.perf_counter() - t0
    rows = []
    for name, (method, value) in settings.items():
        for task in tasks:
            for metric in task.metrics:
                key = item_key(task.name, name, metric)
                x = per_item.get(key)
                if x is None or np.isnan(x).any():
                    raise ValueError(f"task {task.name}: its items do not all produce the metric {metric!r}")
                rows.append(
                    dict(
                        task=task.name,
                        group=task.group,
                        setting=name,
                        method=method,
                        value=_value(name, value, settings),
                        metric=metric,
                        score=float(x.mean()),
                        interval="[{:.6g}, {:.6g}]".format(*_interval(x)),
                        items=len(x),
                        **info[task.name, name],
                        chance=task.chance,
                        shots=task.shots,
                    )
                )
    wanted = {item_key(t.name, s, m) for t in tasks for s in settings for m in t.metrics}
    meta = dict(
        model=metrics.model_identity(model),
        revision=paths.git_revision(),
        device=str(device),
        thresholds={n: v for n, (m, v) in settings.items() if m == "cett"},
        cett=dict(getattr(settings, "cett", {})),
        seconds=seconds,
        total_seconds=time.perf_counter() - start,
        host=_host(),
        context=engine.max_context(model, tokenizer),  # prompts longer than this were cut from the left
        items={t.name: len(t.items) for t in tasks},
        resumed=resumed,
    )
    return SuiteResult(pd.DataFrame(rows), {k: v for k, v in per_item.items() if k in wanted}, meta)


def _score_part(model: nn.Module, tokenizer, task: Task, method: str, value, kw: dict) -> Part:
    """One task under one sparsification rule, timed to the end of its GPU work."""
    t0 = time.perf_counter()
    with metrics.sparsify(model, method, value) as sp:
        scores, truncated, programs = score_task(model, tokenizer, task, **kw)
    if kw["device"].type == "cuda":
        torch.cuda.synchronize(kw["device"])
    ratio = sp.activation_ratio if sp.neuron_counts is not None else math.nan
    return Part(scores, truncated, ratio, time.perf_counter() - t0, programs)


def _host() -> dict:
    """What bounds the host-side work (tokenisation runs on the tokenizers library's thread pool)."""
    import os

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    names = ("TOKENIZERS_PARALLELISM", "RAYON_NUM_THREADS", "OMP_NUM_THREADS")
    env = {k: os.environ[k] for k in names if k in os.environ}
    return dict(cpus=cpus, torch_threads=torch.get_num_threads(), **env)


def _value(name: str, value, settings) -> float:
    """The row's ``value``: the method's scalar parameter, or a CETT setting's CETT value, else NaN."""
    if isinstance(value, (int, float)):
        return float(value)
    return float(getattr(settings, "cett", {}).get(name, math.nan))


def smoke_tasks() -> list[Task]:
    """Synthetic items of every kind (multiple choice, cloze, F1/EM, number and exact answers, programs)."""
    words = "red green blue cat dog sun moon tree river stone".split()
    choice = [
        Choice(f"c{i}", f"Question: which word follows {w}?\nAnswer:", tuple(f" {v}" for v in words[i : i + 3]), i % 3)
        for i, w in enumerate(words[:6])
    ]
    wino = Choice("w0", "", (" went home.", " went home."), 0, contexts=("The cat", "The dog"))
    cloze = [Cloze(f"l{i}", f"The {w} and the {v} saw the", f" {w}") for i, (w, v) in enumerate(zip(words, words[1:]))]
    gen = [
        Generate("s0", "Context: the sun is hot.\nQuestion: what is hot?\nAnswer:", ("the sun",), "f1_em"),
        Generate("s1", "Q: 2 + 2?\nA:", ("#### 4",), "number", max_new_tokens=8),
        Generate("s2", "Q: pick (A) or (B).\nA:", ("(A)",), "exact", stop=("\n",), max_new_tokens=4),
    ]
    code = [
        Program(
            "p0", 'def one():\n    """Return 1."""\n', "assert one() == 1", max_new_tokens=12, prefix="def one():\n"
        ),
        Program("p1", "# write f\n", "assert f(2) == 4", max_new_tokens=12),
    ]
    # named after the benchmark whose kind each imitates, so the downstream chapter's smoke profile groups them
    return [
        Task("PIQA-synthetic", "commonsense", ("acc", "acc_norm"), 1 / 3, 0, choice),
        Task("ARC-Easy-synthetic", "tiny", ("acc", "acc_norm"), 1 / 3, 0, choice),
        Task("WinoGrande-synthetic", "commonsense", ("acc",), 0.5, 0, [wino]),
        Task("LAMBADA-synthetic", "reading", ("acc",), 0.0, 0, cloze),
        Task("TyDiQA-synthetic", "reading", ("f1", "em"), 0.0, 0, gen[:1]),
        Task("GSM8K-synthetic", "complex", ("acc",), 0.0, 0, gen[1:]),
        Task("HumanEval-synthetic", "complex", ("pass@1",), 0.0, 0, code),
    ]


# a mixture of experts for the smoke runs: two layers of 8 experts of 16 neurons (128, as tiny_llama), 2 routed
SMOKE_MOE = models.ModelSpec("tiny-moe-32x2-e8", 32, 2, kind="smoke", head_dim=16, n_experts=8, top_k=2)


def smoke_model(seed: int = 0, moe: bool = False) -> tuple[nn.Module, object, torch.Tensor]:
    """(tiny random ReLU Llama, or with ``moe`` a tiny random ReLU GraniteMoe built as the MoE minis are
    (``SMOKE_MOE``); our tokenizer; calibration ids sampled from the model itself: random text would leave its
    perplexity blind to sparsity)."""
    from ..corpus import load_tokenizer

    tokenizer = load_tokenizer()
    if moe:
        model = models.build_model(SMOKE_MOE, "relu", len(tokenizer), seed).eval()
    else:
        model = models.tiny_llama(len(tokenizer), seed, hidden_act="relu")
    start = torch.randint(0, len(tokenizer), (8, 1), generator=torch.Generator().manual_seed(seed))
    calib = model.generate(
        start,
        attention_mask=torch.ones_like(start),
        do_sample=True,
        temperature=0.5,
        top_k=0,
        max_new_tokens=63,
        min_new_tokens=63,
        pad_token_id=0,
    )
    return model, tokenizer, calib


def smoke(folder: Path | str | None = None, sweeps: Mapping[str, Sequence[float]] | None = None) -> SuiteResult:
    """The whole suite on CPU in seconds: ``smoke_model``, ``smoke_tasks``, dense and CETT-PPL-{1,5,10}%
    (plus ``sweeps``); written to ``folder`` if given."""
    model, tokenizer, calib = smoke_model()
    result = run_suite(model, tokenizer, smoke_tasks(), settings(model, calib, sweeps=sweeps), batch_size=16)
    if folder is not None:
        write(folder, result)
    return result


def load_model(source: str, run: str | None = None, device: str = "cpu") -> tuple[nn.Module, object]:
    """(model, tokenizer) from a Hugging Face folder, or from a run checkpoint ``step_XXXXXX.pt`` rebuilt with
    the config.json of the run folder ``run`` (``checkpoints.load_checkpoint``). A folder's weights are loaded
    in float32 whatever dtype they were saved in (an exported mini is float16), as a run checkpoint is: the
    suite's bfloat16 autocast then treats both alike, and no residual stream is kept in float16."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from ..checkpoints import load_checkpoint

    path = Path(source)
    if path.is_dir():
        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).to(device).eval()
        return model, AutoTokenizer.from_pretrained(path)
    if run is None:
        raise ValueError(f"{source} is not a model folder: pass --run, the run folder whose config.json built it")
    return load_checkpoint(path, run, device)


def last_model(ckpt_root: Path | str, run: str, folder: Path | str) -> tuple[str, str | None]:
    """``load_model``'s arguments for ``run``'s final weights: the model folder ``<ckpt_root>/<run>`` that
    ``sparsing_lib.checkpoints`` exported, else its last checkpoint ``<ckpt_root>/<run>/step_*.pt`` with the run
    folder ``<folder>/<run>`` that says how to rebuild it."""
    where = Path(ckpt_root) / run
    if (where / "config.json").exists():
        return str(where), None
    ckpts = sorted(where.glob("step_*.pt"))
    if not ckpts:
        raise FileNotFoundError(f"no checkpoint step_*.pt and no exported model under {where}: train the run first")
    return str(ckpts[-1]), str(Path(folder) / run)


def calibration(tokenizer, tokens: int, seq_len: int) -> torch.Tensor:
    """Validation tokens of our corpus (the probes' calibration data) as [n, seq_len] ids."""
    from ..run import load_corpus, mix

    _, _, by_domain, _ = load_corpus("full")
    ids = mix(by_domain, tokens, seq_len)
    return torch.as_tensor(np.asarray(ids, dtype=np.int64)).reshape(-1, seq_len)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Score a causal LM on downstream tasks, dense and sparse.")
    parser.add_argument("--model", help="Hugging Face model folder, or a run checkpoint step_XXXXXX.pt (with --run)")
    parser.add_argument("--run", help="run folder whose config.json rebuilds a checkpoint")
    parser.add_argument(
        "--tasks", default="", help="comma-separated task names of evaluation.tasks, group names, or 'all'"
    )
    parser.add_argument("--limit", type=int, help="first N items of each task (a quick check)")
    parser.add_argument("--out", required=True, help="folder for eval.csv, eval_items.npz, eval.json")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--settings", default="dense,cett-ppl-1%,cett-ppl-5%,cett-ppl-10%")
    parser.add_argument("--sweeps", action="store_true", help="add the Fig. 3 sweeps (SWEEPS and zero for ReLU)")
    parser.add_argument(
        "--sweep-tasks",
        default="commonsense,BoolQ,LAMBADA,TyDiQA,tiny",
        help="tasks or groups the Fig. 3 sweeps run on (the dense and CETT-PPL settings run on every task)",
    )
    parser.add_argument("--batch-size", type=int, default=4096, help="most rows per forward pass")
    parser.add_argument("--max-tokens", type=int, default=GPU_MAX_TOKENS, help="padded tokens per log-likelihood pass")
    parser.add_argument("--calib-tokens", type=int, default=1 << 16)
    parser.add_argument("--smoke", action="store_true", help="tiny random model and synthetic items on CPU")
    args = parser.parse_args(argv)
    try:
        if args.smoke:
            result = smoke(args.out, SWEEPS if args.sweeps else None)
        else:
            result = _cli_run(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(result.scores.pivot_table(index=["task", "metric"], columns="setting", values="score").round(4))
    return 0


def _cli_run(args) -> SuiteResult:
    if not args.model:
        raise ValueError("--model is required (or --smoke)")
    start = time.perf_counter()
    names = [n for n in args.settings.split(",") if n]
    ps = []
    for n in names:
        if n.startswith("cett-ppl-") and n.endswith("%"):
            ps.append(float(n[len("cett-ppl-") : -1]) / 100)
        elif n != "dense":
            raise ValueError(f"unknown setting {n!r}: use dense and cett-ppl-<p>% (add --sweeps for Fig. 3)")
    from . import tasks as registry  # the loaders' registry

    task_names = expand_tasks(args.tasks)
    if not task_names:
        raise ValueError("no task given: pass --tasks NAME[,NAME...], a group name or 'all'")
    task_list = [registry.load(n, args.limit) for n in task_names]
    model, tokenizer = load_model(args.model, args.run, args.device)
    engine.eos_id(tokenizer)
    # what an earlier, stopped call on this model finished, with the same settings and items asked for
    salt = f"{args.settings}|sweeps={args.sweeps}|limit={args.limit}|calib={args.calib_tokens}"
    store = Parts(Path(args.out) / FOLDER, model, salt)
    t0 = time.perf_counter()
    saved = store.saved_settings()
    if saved is None:
        calib = calibration(tokenizer, args.calib_tokens, engine.max_context(model, tokenizer))
        chosen = settings(model, calib.to(args.device), ps, SWEEPS if args.sweeps else {})
        store.save_settings(chosen, chosen.cett)
    else:
        chosen = Settings(saved[0])
        chosen.cett.update(saved[1])
    search_seconds = time.perf_counter() - t0
    main_settings = {k: chosen[k] for k in ["dense", *(ppl_name(p) for p in ps)]}
    run = dict(batch_size=args.batch_size, device=args.device, progress=True, max_tokens=args.max_tokens, store=store)
    result = run_suite(model, tokenizer, task_list, main_settings, **run)
    sweep_settings = {k: v for k, v in chosen.items() if k not in main_settings}
    if sweep_settings:  # Fig. 3's sweep points, on the tasks its panels average
        sweep_names = set(expand_tasks(args.sweep_tasks))
        extra = run_suite(model, tokenizer, [t for t in task_list if t.name in sweep_names], sweep_settings, **run)
        result = SuiteResult(
            pd.concat([result.scores, extra.scores], ignore_index=True),
            {**result.items, **extra.items},
            {**result.meta, "sweep": extra.meta, "cett": dict(chosen.cett)},
        )
    # the whole command's time, loading data and model and searching thresholds included (the speed target's)
    result.meta.update(search_seconds=search_seconds, wall_seconds=time.perf_counter() - start)
    write(args.out, result)
    store.clear()
    return result


FIG3_TASKS = "commonsense,BoolQ,LAMBADA,TyDiQA,ARC-Easy,OpenBookQA"  # Fig. 3's panels: C.R., R.C. and tiny
FIG3_LIMIT = 1000  # items per task for the sweeps: eleven more settings on every item would take far longer


def evaluate_runs(
    folder: Path | str,
    runs: Sequence[str],
    ckpt_root: Path | str = ".scratch/ckpt",
    device: str | None = None,
    fig3: bool = True,
    max_tokens: int = GPU_MAX_TOKENS,
) -> None:
    """The full profile of the downstream chapter: each run's last checkpoint (``<ckpt_root>/<run>/step_*.pt``,
    or the model folder ``<ckpt_root>/<run>`` that ``sparsing_lib.checkpoints`` exported from it) scored on every
    task, dense and at CETT-PPL-1/5/10 %, into the run folder; and Fig. 3's sweeps on the first ``FIG3_LIMIT``
    items of its tasks into ``<run>/eval_fig3/`` (with their own dense and CETT-PPL rows, so that every
    comparison in the figure is paired on the same items); ``fig3=False`` leaves the sweeps out. A part whose
    eval.json (written last) exists is skipped, so a call cut short resumes where it stopped. ``max_tokens``
    bounds the padded tokens of one log-likelihood pass: give evaluations that share a GPU a share of
    ``GPU_MAX_TOKENS`` each, or their logits' peaks together overflow its memory."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    for run in runs:
        source, run_folder = last_model(ckpt_root, run, folder)
        model = ["--model", source] + (["--run", run_folder] if run_folder else [])
        base = [*model, "--device", device, "--max-tokens", str(max_tokens)]
        out = Path(folder) / run
        parts = [["--tasks", "all", "--out", str(out)]]
        if fig3:
            parts.append(
                ["--tasks", FIG3_TASKS, "--limit", str(FIG3_LIMIT), "--sweeps", "--out", str(out / "eval_fig3")]
            )
        for extra in parts:
            if (Path(extra[-1]) / "eval.json").exists():
                continue
            if main(base + extra) != 0:
                raise RuntimeError(f"the evaluation of {run} failed ({' '.join(extra)}); see the message above")


def expand_tasks(spec: str) -> list[str]:
    """Task names from a comma-separated list of task names, group names (evaluation.tasks.GROUPS) or 'all'."""
    from . import tasks as registry

    out: list[str] = []
    for n in (n.strip() for n in spec.split(",")):
        if not n:
            continue
        picked = registry.names() if n == "all" else registry.names(n) if n in registry.GROUPS else [n]
        out += [p for p in picked if p not in out]
    return out


if __name__ == "__main__":
    sys.exit(main())
