"""The throughput appendix: training speed and MFU of the mini models on one H200, and the sweep plan.

Everything here reads committed measurements (``data/benchmarks/throughput_*.csv``, written by
``benchmarks/throughput.py`` on the GPU, and the runs' ``env.json``); MFU is recomputed from each row's rate
and FLOP count with the book's one FLOP-rate constant, so that a change of that constant changes every MFU.
"""

from __future__ import annotations

import json

import pandas as pd

from ..checks import check_profile
from ..models import get_spec
from ..paths import H200_BF16_FLOPS, data_file
from ..run import TOKENS_PER_PARAM
from ..runs import load_run, load_runs, parse_run
from ..style import word_list

# What each file measured. v1's step compiled the model alone (the cross-entropy ran eagerly on fp32 logits);
# v2's compiles model and loss as one graph. The MoE files differ in how the experts computed.
FILE_LABEL = {
    "throughput_v1_call1.csv": "v1 step",
    "throughput_v1_call2.csv": "v1 step",
    "throughput_v2_call3.csv": "v2 step",
    "throughput_v2_call4.csv": "v2 step",
    "throughput_v2_largest.csv": "v2 step",
    "throughput_v2_moe.csv": "v2 step, MoE experts on fp32 weights",
    "throughput_moe_top8th.csv": "v2 step, MoE experts on fp32 weights, an eighth routed",
    "throughput_v3_moe_no_balancing.csv": "v2 step, MoE experts in bf16, no balancing loss",
    "throughput_v3_moe.csv": "v2 step, MoE experts in bf16, balancing loss",
}
GRID_LABEL = {
    "scales": "scales (ReLU and SiLU)",
    "width_depth": "width-depth variants",
    "moe": "mixture of experts",
    "recipe": "recipe validation (with a decay phase)",
}
PLANNED_MINUTES = 60  # the sweep's design constraint: one hour of H200 time (data/benchmarks/throughput_README.md)
MFU_TARGET = 0.40  # the trainer's target: mini-256x5 and every larger mini at this MFU or more on one GPU
TARGET_FROM = "mini-256x5"  # the smallest model the target applies to
DDP_RUNS = {(1, 0): "1 GPU, seed 0", (1, 1): "1 GPU, seed 1", (2, 0): "2 GPUs, seed 0"}  # (world size, seed)


def mfu(tokens_per_s: float, flops_per_token: float, peak_flops: float = H200_BF16_FLOPS) -> float:
    """Model FLOP utilisation: the training FLOPs a step really needs per second, over the GPU's dense bf16
    rate. FLOPs per token are 6·(N + d·V) + 12·L·d·T (``ModelSpec.flops_per_token``), so recomputation for
    memory and padding count as waste, as in the PaLM definition."""
    return tokens_per_s * flops_per_token / peak_flops


def load_benchmarks() -> pd.DataFrame:
    """All committed benchmark rows: one per (file, model, compiled, processes), with the step version and
    the MFU recomputed from the rate (files without a ``compiled`` column were all compiled)."""
    frames = []
    for f in sorted(data_file("benchmarks").glob("throughput_v*_*.csv")):
        df = pd.read_csv(f).assign(step=f.name.split("_")[1], file=f.name)
        frames.append(df)
    frames.append(
        pd.read_csv(data_file("benchmarks", "throughput_moe_top8th.csv")).assign(
            step="v2", file="throughput_moe_top8th.csv"
        )
    )
    bench = pd.concat(frames, ignore_index=True)
    bench["compiled"] = bench["compiled"].fillna(True).astype(bool)
    bench["mfu"] = mfu(bench["tokens_per_s"], bench["flops_per_token"])
    return bench


def _large_runs() -> list[dict]:
    """The finished runs of the larger scales (kind "large"): their MFU over the whole run and their batch."""
    return [
        dict(run=name, mfu=r["env"]["mfu"], batch=r["config"]["train"]["batch_size"])
        for name, r in load_runs(data_file("runs"), variants=True, unstable=True).items()
        if get_spec(parse_run(name)[0]).kind == "large" and r["env"].get("status") == "done"
    ]


def load_trainer_v2() -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trainer-v2 measurements: every ``mfu_v*_*.csv`` row (``benchmarks/mfu.py``: compile mode, batch,
    optimizer, attention and loss per model, one process per GPU; ``round`` is the file's v4 or v5; MFU
    recomputed from the rate, NaN where a configuration timed out) and the DDP summary (``benchmarks/ddp.py``:
    one and two GPUs, two seeds). v4 predates the attention and loss options: its rows ran with the mask
    tensor and the full logits, the trainer's defaults, so they are filled in as such."""
    files = sorted(data_file("benchmarks").glob("mfu_v*_*.csv"))
    runs = pd.concat([pd.read_csv(f).assign(file=f.name, round=f.name.split("_")[1]) for f in files], ignore_index=True)
    runs["causal"] = runs["causal"].fillna(False).astype(bool)
    runs["loss_chunk"] = runs["loss_chunk"].fillna(0).astype(int)
    runs["mfu"] = mfu(runs["tokens_per_s"], runs["flops_per_token"])
    return runs, pd.read_csv(data_file("benchmarks", "ddp_v2_full_summary.csv"))


def results(profile: str = "replay") -> dict:
    """The benchmark rows, the sweep plan, the largest run's record and the trainer-v2 measurements. Every
    profile replays them: the measurements need an H200 (``benchmarks/throughput.py``, ``benchmarks/mfu.py``,
    ``benchmarks/ddp.py``; commands in data/benchmarks/throughput_README.md)."""
    check_profile(profile)
    mfu_runs, ddp = load_trainer_v2()
    return {
        "mfu_runs": mfu_runs,
        "ddp": ddp,
        "bench": load_benchmarks(),
        "plan": pd.read_csv(data_file("benchmarks", "throughput_plan.csv")),
        "largest": load_run(data_file("runs", "mini-336x7-relu"))["env"],
        "large_runs": _large_runs(),
        "search_gemm_tflops": _search_gemm_tflops(),
    }


def _search_gemm_tflops() -> float:
    """The bf16 square-product rate (4096³) that the search benchmark measured on its H200 before its runs;
    quoted beside the FLOP-rate constant because it is lower than the constant."""
    files = sorted(data_file("benchmarks").glob("search_full_*.json"))
    return float(json.loads(files[-1].read_text())["gemm_tflops"]["bfloat16"])


def benchmark_table(res: dict) -> pd.DataFrame:
    """The benchmark rows with readable columns: file, step version, model, compiled or eager, processes
    sharing the GPU, summed tokens/s, MFU, peak memory and warm-up (compilation) time."""
    b = res["bench"]
    return pd.DataFrame(
        {
            "file": b["file"].str.removeprefix("throughput_").str.removesuffix(".csv"),
            "what was measured": b["file"].map(FILE_LABEL),
            "model": b["model"],
            "compiled": b["compiled"].map({True: "yes", False: "no (eager)"}),
            "processes": b["processes"],
            "tokens/s (M)": b["tokens_per_s"] / 1e6,
            "MFU": b["mfu"],
            "peak memory (GiB)": b["peak_mem_gib"],
            "warm-up (s)": b["warmup_s"],
        }
    )


def plan_table(res: dict) -> pd.DataFrame:
    """The sweep plan by grid: runs, minutes measured on finished runs, minutes estimated for the rest."""
    p = res["plan"]
    g = p.groupby("grid", sort=False)
    out = pd.DataFrame(
        {
            "runs": g.size(),
            "finished": g["done"].sum().astype(int),
            "measured (min)": g.apply(lambda x: x.loc[x["done"], "minutes"].sum(), include_groups=False),
            "estimated (min)": g.apply(lambda x: x.loc[~x["done"], "minutes"].sum(), include_groups=False),
        }
    )
    out["total (min)"] = out["measured (min)"] + out["estimated (min)"]
    out.loc["all"] = out.sum()
    out = out.reset_index(names="grid").astype({"runs": int, "finished": int})
    out["grid"] = out["grid"].map(lambda g: GRID_LABEL.get(g, g))
    return out


def mfu_table(res: dict) -> pd.DataFrame:
    """The trainer-v2 MFU measurements with readable columns: round, model, torch.compile mode, batch in sequences
    of 1,024 tokens, AdamW implementation, attention (the mask tensor that transformers builds under compilation,
    or SDPA's causal flag without one), loss (full logits or chunks), outcome, tokens/s, MFU, compilation warm-up
    and peak memory. Rows go by model size, then round, so that each model's v5 rows follow its v4 rows."""
    m = res["mfu_runs"]
    size = m.groupby("model")["non_embedding_params"].transform("max")  # a timed-out row has no count of its own
    m = m.assign(size=size).sort_values(["size", "round"], kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "round": m["round"],
            "model": m["model"],
            "compile mode": m["mode"],
            "batch (sequences)": m["batch"],
            "AdamW": m["fused"].map({True: "fused", False: "foreach"}),
            "attention": m["causal"].map({False: "mask tensor", True: "causal, no mask"}),
            "loss": [f"chunks of {c:,} tokens" if c else "full logits" for c in m["loss_chunk"]],
            "outcome": [
                "measured" if s == "ok" else f"timed out after {w:.0f} s" if s == "timeout" else s
                for s, w in zip(m["status"], m["wall_s"])
            ],
            "tokens/s (M)": m["tokens_per_s"] / 1e6,
            "MFU": m["mfu"],
            "warm-up (s)": m["warmup_s"],
            "peak memory (GiB)": m["peak_mem_gib"],
        }
    )


def ddp_table(res: dict) -> pd.DataFrame:
    """The DDP check: for one GPU (two seeds) and two GPUs, the rate, its ratio to one GPU, and the largest
    loss differences to the one-GPU seed-0 run along the same steps."""
    d = res["ddp"]
    return pd.DataFrame(
        {
            "run": [DDP_RUNS.get((w, s), f"{w} GPUs, seed {s}") for w, s in zip(d["world_size"], d["seed"])],
            "steps": d["steps"],
            "tokens/s (M)": d["tokens_per_s"] / 1e6,
            "rate against 1 GPU": d["speedup"],
            "largest |Δ training loss|": d["max_abs_train_loss_diff"],
            "largest |Δ validation loss|": d["max_abs_val_loss_diff"],
            "final validation loss": d["final_val_loss"],
        }
    )


def _setup(r) -> str:
    """One measured configuration in words: compile mode, batch and the options that differ from the default."""
    options = ["causal attention"] * bool(r.causal) + ["chunked loss"] * bool(r.loss_chunk)
    return ", ".join([f"{r.mode} mode", f"{r.batch} sequences", *options])


def mfu_verdict(runs: pd.DataFrame, target: float = MFU_TARGET, smallest: str = TARGET_FROM) -> str:
    """Which minis from ``smallest`` up reach ``target`` MFU in their best measured configuration, and which not."""
    size = runs.groupby("model")["non_embedding_params"].max()
    covered = runs[runs["model"].map(size) >= size.get(smallest, float("inf"))].dropna(subset=["mfu"])
    if covered.empty:
        return f"no configuration of {smallest} or larger was measured"
    best = covered.loc[covered.groupby("model")["mfu"].idxmax()].sort_values("non_embedding_params")
    met, short = best[best["mfu"] >= target], best[best["mfu"] < target]
    each = {r.model: f"{r.model} ({r.mfu:.1%})" for r in best.itertuples()}
    setups = {r.model: _setup(r) for r in best.itertuples()}
    if len(set(setups.values())) == 1:
        how = f", each in its best configuration: {next(iter(setups.values()))}"
    else:
        how = "; best configurations: " + word_list(f"{m} {s}" for m, s in setups.items())
    if short.empty:
        return f"every model from {smallest} up reaches the {target:.0%} target: {word_list(each.values())}{how}"
    below = word_list(each[m] for m in short["model"])
    if met.empty:
        return f"the {target:.0%} target is not met by any of the {len(best)} models from {smallest} up: {below}{how}"
    return (
        f"the {target:.0%} target is met by {word_list(each[m] for m in met['model'])} only; "
        f"{below} stay{'s' * (len(short) == 1)} below it{how}"
    )


def round_gains(runs: pd.DataFrame, old: str = "v4", new: str = "v5") -> pd.DataFrame:
    """Per model measured in round ``new``: its best MFU there against its best in round ``old`` at the same
    batch (rows of other batches do not count: a larger batch is a recipe change, not a faster step), in points.
    Models that ``old`` did not measure at that batch are left out."""
    ok = runs.dropna(subset=["mfu"])
    rows = []
    for model, now in ok[ok["round"] == new].groupby("model", sort=False):
        b = now.loc[now["mfu"].idxmax()]
        before = ok[(ok["round"] == old) & (ok["model"] == model) & (ok["batch"] == b["batch"])]
        if not before.empty:
            a = before.loc[before["mfu"].idxmax()]
            rows.append(
                dict(model=model, old=a["mfu"], old_mode=a["mode"], new=b["mfu"], points=100 * (b["mfu"] - a["mfu"]))
            )
    return pd.DataFrame(rows, columns=["model", "old", "old_mode", "new", "points"])


def _single(bench: pd.DataFrame, step: str, compiled: bool = True) -> pd.Series:
    """Best single-process rate per model for one step version."""
    rows = bench[(bench["step"] == step) & (bench["processes"] == 1) & (bench["compiled"] == compiled)]
    return rows.groupby("model")["tokens_per_s"].max()


def _moe_rates(bench: pd.DataFrame, file: str, compiled: bool) -> pd.Series:
    rows = bench[(bench["file"] == file) & (bench["compiled"] == compiled) & (bench["processes"] == 1)]
    return rows[rows["model"].str.startswith("moe")].groupby("model")["tokens_per_s"].max()


def _m(rates: pd.Series) -> str:
    return " / ".join(f"{v / 1e6:.2f}" for v in rates) + "M"


def numbers(res: dict) -> dict[str, str]:
    """Every number the appendix quotes, formatted."""
    bench, plan, largest = res["bench"], res["plan"], res["largest"]
    v1, v2 = _single(bench, "v1"), _single(bench, "v2")
    gain = (v2 / v1).dropna()
    v2_single = bench[(bench["step"] == "v2") & (bench["processes"] == 1) & bench["compiled"]]
    minis = v2_single[v2_single["model"].str.startswith("mini")]
    pack = bench[(bench["step"] == "v2") & (bench["processes"] > 1) & bench["model"].str.startswith("mini")].iloc[0]
    moe_pack = bench[(bench["step"] == "v2") & (bench["processes"] > 1) & bench["model"].str.startswith("moe")].iloc[0]
    first = _moe_rates(bench, "throughput_v2_moe.csv", False)
    final = _moe_rates(bench, "throughput_v3_moe.csv", True)
    speedup = (final / first).dropna()
    eighth = _moe_rates(bench, "throughput_moe_top8th.csv", False)
    final_mfu = bench[(bench["file"] == "throughput_v3_moe.csv") & bench["compiled"]].groupby("model")["mfu"].max()
    rate_352, rate_336 = v2["mini-352x7"], v2["mini-336x7"]
    n_352 = bench.loc[bench["model"] == "mini-352x7", "non_embedding_params"].iloc[0]  # no longer in models.MINI
    done, todo = plan[plan["done"]], plan[~plan["done"]]
    total = plan["minutes"].sum()
    return _trainer_v2_numbers(res) | {
        "peak_tflops": f"{H200_BF16_FLOPS / 1e12:.0f}",
        "search_tflops": f"{res['search_gemm_tflops']:.0f}",
        "n_bench_rows": f"{len(bench)}",
        "fused_gain": (
            f"{100 * (gain.min() - 1):.0f}% ({gain.idxmin()}) to {100 * (gain.max() - 1):.0f}% ({gain.idxmax()})"
        ),
        "mfu_100m": f"{v2_single.loc[v2_single['model'] == 'paper-0.1B', 'mfu'].max():.0%}",
        "mfu_minis": f"{minis['mfu'].min():.0%}–{minis['mfu'].max():.0%}",
        "rate_minis": f"{minis['tokens_per_s'].min() / 1e6:.2f}–{minis['tokens_per_s'].max() / 1e6:.2f}M",
        "pack_note": (
            f"{int(pack['processes'])} concurrent {pack['model']} processes add up to "
            f"{pack['tokens_per_s'] / 1e6:.2f}M tokens/s, against {v2[pack['model']] / 1e6:.2f}M for one"
        ),
        "moe_pack_note": (
            f"{int(moe_pack['processes'])} eager {moe_pack['model']} processes add up to "
            f"{moe_pack['tokens_per_s'] / 1e6:.2f}M against {first[moe_pack['model']] / 1e6:.2f}M for one"
        ),
        "moe_fp32": f"{_m(first)} eager, {_m(_moe_rates(bench, 'throughput_v2_moe.csv', True))} compiled",
        "moe_bf16": (
            f"{_m(_moe_rates(bench, 'throughput_v3_moe_no_balancing.csv', False))} eager, "
            f"{_m(_moe_rates(bench, 'throughput_v3_moe_no_balancing.csv', True))} compiled"
        ),
        "moe_final": _m(final),
        "moe_final_mfu": " / ".join(f"{v:.1%}" for v in final_mfu),
        "moe_speedup": f"{speedup.min():.1f}–{speedup.max():.1f}",
        "moe_eighth": _m(eighth),
        "head_dims": f"{rate_352 / 1e6:.2f}M tokens/s for 352×7 against {rate_336 / 1e6:.2f}M for 336×7",
        "head_gain": f"{100 * (rate_336 / rate_352 - 1):.0f}%",
        "minutes_352": f"{TOKENS_PER_PARAM * n_352 / rate_352 / 60:.1f}",
        "minutes_336": f"{TOKENS_PER_PARAM * get_spec('mini-336x7').non_embedding_params / rate_336 / 60:.1f}",
        "tokens_per_param": f"{TOKENS_PER_PARAM}",
        "largest_wall": f"{largest['wall_seconds']:.0f}",
        "largest_mfu": f"{largest['mfu']:.1%}",
        "plan_minutes": f"{total:.1f}",
        "plan_planned": f"{PLANNED_MINUTES}",
        "plan_margin": f"{abs(PLANNED_MINUTES - total):.1f}",
        "plan_verdict": "over" if total > PLANNED_MINUTES else "under",
        "plan_done_minutes": f"{done['minutes'].sum():.1f}",
        "plan_n_done": f"{len(done)}",
        "plan_todo_minutes": f"{todo['minutes'].sum():.1f}",
        "plan_n_todo": f"{len(todo)} run{'' if len(todo) == 1 else 's'}",
        "plan_moe_minutes": f"{plan.loc[plan['grid'] == 'moe', 'minutes'].sum():.1f}",
    }


def _trainer_v2_numbers(res: dict) -> dict[str, str]:
    """The trainer-v2 numbers: what CUDA graphs, a four times larger batch and the foreach optimizer change in
    MFU (v4), what causal attention and the chunked loss change (v5, against v4 and within the call), how far the
    timed windows spread, the configurations that timed out, and the DDP agreement against the seed-to-seed
    difference."""
    m, d = res["mfu_runs"], res["ddp"].set_index(["world_size", "seed"])
    ok = m.dropna(subset=["mfu"]).set_index(["round", "config"])["mfu"]

    def pts(a: str, b: str, rnd: str = "v4") -> str:
        a, b = ok[(rnd, a)], ok[(rnd, b)]
        return f"{100 * (b - a):+.1f} points ({a:.1%} to {b:.1%})"

    graphs = [pts(f"{x}:default:64", f"{x}:reduce-overhead:64") for x in ("mini-256x5", "mini-448x8")]
    one, two, seed = d.loc[(1, 0)], d.loc[(2, 0)], d.loc[(1, 1)]
    return {
        "v2_mfu_verdict": mfu_verdict(m),
        "v2_run_mfu": word_list([f"{r['run']} {r['mfu']:.1%} at {r['batch']} sequences" for r in res["large_runs"]])
        or "no run of the larger scales is in the data yet",
        "v2_target": f"{MFU_TARGET:.0%}",
        "v2_graphs": " at mini-256x5 and ".join(graphs) + " at mini-448x8",
        "v2_batch": pts("mini-256x5:reduce-overhead:64", "mini-256x5:reduce-overhead:256"),
        "v2_foreach": pts("mini-448x8:default:64", "mini-448x8:default:64:foreach"),
        **_v5_numbers(m),
        "v5_chunked": pts("mini-256x5:default:64:causal", "mini-256x5:default:64:causal:chunked", "v5"),
        "v2_timeouts": ", ".join(
            f"{r.model} with {r.mode} at {r.batch} sequences" for r in m[m["status"] != "ok"].itertuples()
        )
        or "none",
        "ddp_steps": f"{int(two['steps'])}",
        "ddp_rates": (
            f"{one['tokens_per_s'] / 1e6:.2f}M tokens/s on one GPU and {two['tokens_per_s'] / 1e6:.2f}M on two"
        ),
        "ddp_speedup": f"{two['speedup']:.2f}",
        "ddp_train": f"{two['max_abs_train_loss_diff']:.3f}",
        "ddp_seed_train": f"{seed['max_abs_train_loss_diff']:.2f}",
        "ddp_final": (
            f"{abs(two['final_val_loss'] - one['final_val_loss']):.4f} nats apart on two GPUs, "
            f"{abs(seed['final_val_loss'] - one['final_val_loss']):.3f} between the seeds"
        ),
        "ddp_verdict": (
            f"two GPUs follow one: their largest validation-loss difference, {two['max_abs_val_loss_diff']:.3f} "
            f"nats, is {seed['max_abs_val_loss_diff'] / two['max_abs_val_loss_diff']:.0f} times smaller than "
            f"between two seeds on one GPU"
            if two["max_abs_val_loss_diff"] < seed["max_abs_val_loss_diff"]
            else "two GPUs differ from one by as much as two seeds do: the DDP path does not reproduce one GPU"
        ),
    }


def _v5_numbers(runs: pd.DataFrame) -> dict[str, str]:
    """v5 against v4 at the same batch, the spread of v5's timed windows, and how far the models that reach the
    target clear it, against the spread of their own windows (one measurement each: the windows are the noise)."""
    gains = round_gains(runs)
    v5 = runs[(runs["round"] == "v5") & (runs["status"] == "ok")]
    best = v5.loc[v5.groupby("model")["mfu"].idxmax()].sort_values("non_embedding_params")
    met = best[best["mfu"] >= MFU_TARGET]
    return {
        "v5_gains": word_list(
            f"{g.points:+.1f} points at {g.model} ({g.old:.1%} with {g.old_mode} to {g.new:.1%})"
            for g in gains.itertuples()
        ),
        "v5_spread": f"{v5['spread'].min():.1%} to {v5['spread'].max():.1%}",
        "v5_margin": word_list(
            f"{r.model} is {100 * (r.mfu - MFU_TARGET):.1f} points above it, its timed windows "
            f"{100 * r.mfu * r.spread:.1f} points apart"
            for r in met.itertuples()
        )
        or "no model reaches it",
    }
