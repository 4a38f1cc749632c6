"""What the decode benchmarks share: synthetic FFN layers with a chosen activation pattern, kernel
configurations tried in turn (a config that fails to compile or to match the reference is skipped), timing
by CUDA-graph replay, the bandwidth ceiling, our runs' measured activation ratios and the summary file.

Both ``benchmarks/decode_ffn.py`` and ``benchmarks/decode_model.py`` run on a GPU, or on the CPU with
``--smoke`` (the float64 reference path at toy size, timed with the host clock, to exercise the logic).
"""

from __future__ import annotations

import math
import platform
import statistics
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from ..models import SCALE_FAMILY
from ..paths import data_file, git_revision
from ..runs import load_run, load_runs
from .reference import ACTS, cuts, dense_ffn, ffn_bytes, gather_ffn

SHAPES = {"2.4B": (2304, 5760), "0.1B": (768, 1920), "smoke": (64, 160)}  # shape -> (d, d_ff)
SUMMARY_COLUMNS = ["shape", "activation_ratio", "batch", "dense_us", "sparse_us", "speedup", "limit"]
L2_BYTES = 50 * 2**20  # the H200's L2 cache; the rotating layers together are three times larger
TOLERANCE = 2e-2  # relative L2 error of a bf16 layer against float64: bf16 operands land near 1e-3 to 1e-2
CHECK_CALLS = 3  # calls of each configuration checked before it is timed (``checked_error``)


def largest_run(activation: str, folder: Path | None = None) -> str:
    """The name of our largest probed run of ``activation``: of the scale family's runs (``models.SCALE_FAMILY``
    kinds in config.json's ``model``; ``runs.load_runs`` leaves variants and unstable runs out) that have a
    sparsity.csv, the one with the most non-embedding parameters. The decode benchmarks replicate its measured
    ratios, and the model benchmark decodes it at its true size, so the choice follows the committed runs as
    larger ones are trained. ``folder``: the runs folder (default ``data/runs``)."""
    runs = load_runs(Path(folder) if folder is not None else data_file("runs"))
    probed = {
        name: run["config"]["model"]["non_embedding_params"]
        for name, run in runs.items()
        if "sparsity" in run
        and run["config"]["activation"] == activation
        and run["config"]["model"]["kind"] in SCALE_FAMILY
    }
    if not probed:
        raise ValueError(f"no probed {activation} run of the scale family {SCALE_FAMILY} under {folder or 'data/runs'}")
    return max(probed, key=probed.get)


def run_model(run: str, folder: Path | None = None) -> tuple[int, int, int, int, int]:
    """(d, layers, d_ff, heads, vocabulary) of a run, read from its config.json: the shape the model benchmark
    builds to decode that run at its true size."""
    config = load_run(Path(folder or data_file("runs")) / run)["config"]
    m = config["model"]
    return m["d_model"], m["n_layers"], m["d_ff"], m["n_heads"], config["vocab_size"]


def run_ratios(run: str, folder: Path | None = None) -> dict:
    """A run's last-checkpoint CETT-PPL-1% ratios: ``mean``, per-layer ``layers`` (kept at the threshold)
    and per-layer ``nonzero`` (neurons with a non-zero activation, the candidates a gate can find)."""
    sp = load_run(Path(folder or data_file("runs")) / run)["sparsity"].iloc[-1]
    n = sum(c.startswith("layer_") for c in sp.index)
    return {
        "mean": float(sp["activation_ratio"]),
        "layers": [float(sp[f"layer_{i}"]) for i in range(n)],
        "nonzero": [float(sp[f"zero_layer_{i}"]) for i in range(n)],
    }


def stretch(values: list[float], n: int) -> list[float]:
    """``values`` (one per layer of a shallow model) spread over ``n`` layers by relative depth."""
    return [values[i * len(values) // n] for i in range(n)]


def controlled_layer(x: torch.Tensor, d_ff: int, ratio: float, act: str, dtype: torch.dtype, seed: int) -> dict:
    """Random FFN weights for the float64 inputs ``x`` [B, d] whose activations follow a chosen pattern.

    ReLU: every batch row gets its own random set of ``ratio·d_ff`` neurons with a positive gate, exactly:
    the gate matrix is corrected so that ``W_gate X^T`` equals targets of the chosen signs (|target| ≥ 0.1,
    far above bf16 rounding), so the union over the batch grows as independent sets do. SiLU: plain random
    weights, and one CETT threshold set at the quantile that keeps ``ratio`` of the neurons. Weights are made
    in float64 on ``x``'s device and returned in ``dtype``, with the float64 outputs of the sparse algorithm
    (``ref``) and of the dense layer (``dense_ref``)."""
    batch, d = x.shape
    g = torch.Generator(device=x.device).manual_seed(seed)
    rnd = lambda *s: torch.randn(*s, generator=g, dtype=torch.float64, device=x.device)  # noqa: E731
    wg, wu, wd = rnd(d_ff, d) / d**0.5, rnd(d_ff, d) / d**0.5, rnd(d, d_ff) / d_ff**0.5
    threshold = 0.0
    if act == "relu":
        k = max(1, round(ratio * d_ff))
        order = torch.rand(batch, d_ff, generator=g, device=x.device).argsort(1)
        signs = torch.where(order < k, 1.0, -1.0).double()
        targets = signs * (rnd(batch, d_ff).abs() + 0.1)
        wg = wg + (targets.T - wg @ x.T) @ torch.linalg.solve(x @ x.T, x)
    else:
        a = torch.nn.functional.silu(x @ wg.T) * (x @ wu.T)
        threshold = float(torch.quantile((a.abs() * wd.norm(dim=0)).flatten().float(), 1 - ratio))
    wg, wu, wd = (w.to(dtype).double() for w in (wg, wu, wd))  # the reference sees the rounded weights
    cut = cuts(threshold, wd)
    wdt = wd.T.contiguous()
    xr = x.to(dtype).double()
    ref, keep = gather_ffn(xr, wg, wu, wdt, cut.double(), act)
    cand = torch.nn.functional.relu(xr @ wg.T) != 0 if act == "relu" else torch.ones_like(keep)
    return {
        **{k: v.to(dtype).contiguous() for k, v in dict(x=x, wg=wg, wu=wu, wd=wd, wdt=wdt).items()},
        "cut": cut,
        "act": act,
        "ref": ref.cpu(),
        "dense_ref": dense_ffn(xr, wg, wu, wd, act).cpu(),
        "kept": keep.double().mean().item(),
        "kept_union": keep.any(0).double().mean().item(),
        "candidate_union": cand.any(0).double().mean().item(),
    }


def configs(batch: int) -> list:
    """Kernel configurations tried for ``batch`` (block sizes, split of d, warps). Batch 1 keeps the fastest
    configuration of each two-launch variant in the first H200 run (the others lost by 1.4× or more) and the
    one-launch variant with 4, 8 or 16 neurons per program (at the 2.4B shape 72, 128 and 128 registers, no
    spills: seven, four and two programs per SM, each with its whole block of gate rows in flight); since the
    second run it adds five one-launch forms aimed at its gap to the copy bandwidth (``one_launch`` module doc;
    registers at the 2.4B shape, no spills): the 8-neuron form with evict-first weight loads (the same kernel
    otherwise, so its time against that form's measures the hint); eager down rows with 4 and with 2 neurons per
    block (104 and 64 registers: four and eight programs per SM); and the persistent grid of 2-neuron blocks,
    four programs per SM with two blocks' gate rows in flight each, without and with eager down rows (about 120
    registers: four fit). Larger batches add the one-launch variant to the first run's five: for 2 to 4 tokens,
    two configurations of its element-wise path (128 registers, no spills), above 4 one of its padded ``tl.dot``
    path."""
    from .kernels import Config  # needs Triton: imported on a GPU only

    small = dict(block_k=256, block_k2=256, block_d=256)  # batch 1: 256 divides both model widths
    padded = dict(block_k=128, block_a=16, block_k2=128, block_d=128)  # tl.dot path, rows in blocks of 16
    one = dict(block_k=256, variant="one")
    if batch == 1:
        return [
            Config(block_n=16, block_a=2, split=2, programs=528, **small),
            Config(block_n=16, variant="split", groups=32, pad_batch=True, **padded),
            Config(block_n=8, block_d=4096, **one),
            Config(block_n=4, block_d=4096, **one),
            Config(block_n=16, block_d=2048, warps_gate=8, **one),
            Config(block_n=8, block_d=4096, stream=True, **one),
            Config(block_n=4, block_d=4096, eager=True, **one),
            Config(block_n=2, block_d=4096, eager=True, **one),
            Config(block_n=2, block_d=4096, per_sm=4, **one),
            Config(block_n=2, block_d=4096, per_sm=4, eager=True, **one),
        ]
    return [
        Config(block_n=16, split=2, programs=264, **padded),
        Config(block_n=32, block_k=128, block_a=16, block_k2=128, block_d=256, split=4, programs=132),
        Config(block_n=64, block_k=64, block_a=16, block_k2=64, block_d=128, split=2, programs=528),
        Config(block_n=16, variant="split", groups=32, **padded),
        Config(
            block_n=32,
            block_k=256,
            block_a=16,
            block_k2=128,
            block_d=256,
            variant="split",
            groups=64,
            block_a2=32,
            programs=528,
        ),  # fmt: skip
        *(
            [Config(block_n=8, block_d=1024, **one), Config(block_n=4, block_d=2048, **one)]
            if batch <= 4
            else [Config(block_n=16, block_k=128, block_d=256, variant="one")]
        ),
    ]


def rel_error(y: torch.Tensor, ref: torch.Tensor) -> float:
    """‖y − ref‖ / ‖ref‖ in float64 (NaN where y is not finite, so that it never passes)."""
    y = y.detach().double().cpu()
    return float("nan") if not torch.isfinite(y).all() else float((y - ref).norm() / ref.norm())


def checked_error(call: Callable[[], torch.Tensor], ref: torch.Tensor, calls: int = CHECK_CALLS) -> float:
    """The worst relative error of ``calls`` calls (NaN if any output is not finite). A kernel with a race
    between its warps or programs can return the right output on one call and a wrong one on the next (the
    one-launch kernel's clearing of its accumulator did, on an H200), so one call is too few to trust it."""
    errors = [rel_error(call(), ref) for _ in range(calls)]
    return float("nan") if any(math.isnan(e) for e in errors) else max(errors)


def time_us(fn: Callable[[], object], reps: int, cuda: bool) -> dict:
    """Median, 10th and 90th percentile of one call in µs. On a GPU the call is captured in a CUDA graph
    after a warm-up and each replay is timed with events; on the CPU the host clock times eager calls."""
    if not cuda:
        fn()
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e6)
    else:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            fn()
        for _ in range(10):
            graph.replay()
        events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(reps)]
        for start, end in events:
            start.record()
            graph.replay()
            end.record()
        torch.cuda.synchronize()
        times = [s.elapsed_time(e) * 1e3 for s, e in events]
    q = np.percentile(times, [10, 90])
    return {"median_us": statistics.median(times), "p10_us": float(q[0]), "p90_us": float(q[1])}


def dense_call(layer: dict):
    act = ACTS[layer["act"]]
    return lambda x: F.linear(act(F.linear(x, layer["wg"])) * F.linear(x, layer["wu"]), layer["wd"])


def sparse_calls(layers: list[dict], cuda: bool, gate_only: bool = False) -> list[tuple[str, object]]:
    """(name, per-layer function) for each configuration; the CPU runs the reference gather path. With
    ``gate_only``, the one-launch configurations (same names) stopped after their gate, each function returning
    the gate activations it leaves in the workspace (the diagnostic of ``diagnose``; none on the CPU)."""
    if not cuda:
        if gate_only:
            return []
        return [
            ("reference", lambda x, L: gather_ffn(x, L["wg"], L["wu"], L["wdt"], L["cut"].to(x.dtype), L["act"])[0])
        ]
    from . import kernels as K

    ws = K.Workspace(layers[0]["wg"].shape[1], layers[0]["wg"].shape[0], layers[0]["wg"].device)
    b = layers[0]["x"].shape[0]

    def call(c):
        def f(x: torch.Tensor, L: dict) -> torch.Tensor:
            y = K.sparse_ffn(x, L["wg"], L["wu"], L["wdt"], L["cut"], L["act"], ws, c, gate_only=gate_only)
            return ws.s[:b] if gate_only else y

        return f

    return [(str(c), call(c)) for c in configs(b) if c.variant == "one" or not gate_only]


def ffn_case(
    shape: str, act: str, ratio: float, batch: int, cuda: bool, reps: int, copy_bw: float, log: Callable[[str], None]
) -> dict:
    """One FFN-layer case: dense and sparse times per layer (rotating over layers that exceed L2), the
    fastest sparse configuration that matches the float64 reference, and the bandwidth limit."""
    d, d_ff = SHAPES[shape]
    dev = "cuda" if cuda else "cpu"
    dtype = torch.bfloat16 if cuda else torch.float32
    n_layers = 2 if not cuda else max(2, math.ceil(3 * L2_BYTES / ffn_bytes(d, d_ff, 1, 1)))
    x64 = torch.randn(batch, d, dtype=torch.float64, device=dev, generator=torch.Generator(dev).manual_seed(batch))
    layers = [controlled_layer(x64, d_ff, ratio, act, dtype, seed=1000 * batch + i) for i in range(n_layers)]
    x = layers[0]["x"]
    first = layers[0]
    dense = [dense_call(L) for L in layers]
    row = dict(level="ffn layer", shape=shape, activation=act, activation_ratio=ratio, batch=batch, layers=n_layers)
    row.update({k: first[k] for k in ("kept", "kept_union", "candidate_union")})
    row["dense_rel_err"] = rel_error(dense[0](x), first["dense_ref"])
    t = time_us(lambda: [f(x) for f in dense], reps, cuda)
    row["dense_us"] = t["median_us"] / n_layers
    row["dense_p10_us"], row["dense_p90_us"] = t["p10_us"] / n_layers, t["p90_us"] / n_layers
    best = None
    for name, fn in sparse_calls(layers, cuda):
        try:
            err = checked_error(lambda fn=fn: fn(x, first), first["ref"])
            ok = err < TOLERANCE
            log(f"  CHECK {'ok  ' if ok else 'FAIL'} rel. error {err:.2e} (dense {row['dense_rel_err']:.2e})  {name}")
            if not ok:
                continue
            ts = time_us(lambda fn=fn: [fn(x, L) for L in layers], reps, cuda)
            log(f"        {ts['median_us'] / n_layers:8.2f} us/layer")
            if best is None or ts["median_us"] < best[1]["median_us"]:
                best = (name, ts, err)
        except Exception:  # a config that does not compile or crashes is skipped, not fatal
            log(f"  CRASH {name}\n" + "".join("        " + s for s in traceback.format_exc().splitlines(True)[-4:]))
    if best is None:
        row.update(sparse_us=float("nan"), config="none passed", sparse_rel_err=float("nan"))
    else:
        row.update(config=best[0], sparse_rel_err=best[2], sparse_us=best[1]["median_us"] / n_layers)
        row["sparse_p10_us"], row["sparse_p90_us"] = best[1]["p10_us"] / n_layers, best[1]["p90_us"] / n_layers
    row["speedup"] = row["dense_us"] / row["sparse_us"]
    dense_b = ffn_bytes(d, d_ff, 1, 1)
    sparse_b = ffn_bytes(d, d_ff, row["candidate_union"], row["kept_union"])
    row["limit"] = dense_b / sparse_b
    row["dense_tbps"] = dense_b / row["dense_us"] / 1e6
    row["sparse_tbps"] = sparse_b / row["sparse_us"] / 1e6
    row["copy_limit_sparse_us"] = sparse_b / copy_bw * 1e6
    row["copy_limit_dense_us"] = dense_b / copy_bw * 1e6
    if batch == 1 and act == "relu":  # after the choice: the diagnosis cannot change which configuration wins
        row.update(diagnose(layers, row.get("config"), sparse_b, copy_bw, reps, cuda, log))
        log(diagnosis_line(row))
    return row


def diagnose(
    layers: list[dict], config: str | None, sparse_b: float, copy_bw: float, reps: int, cuda: bool, log
) -> dict:
    """Where a batch-1 sparse layer's time goes, timed in the same harness as the layer (graph replays over the
    same rotating layers, per layer): ``gate_cublas_us``, cuBLAS's product ``x W_gateᵀ`` alone (the dense
    layer's first GEMV, a third of its bytes); ``gate_only_us``, the winning configuration stopped after its
    gate (one-launch configurations only, checked against the float64 activations first; NaN otherwise and on
    the CPU); ``copy_sparse_us``, a plain device copy that moves the sparse layer's bytes (half read, half
    written, as the copy bandwidth counts them: the measured counterpart of ``copy_limit_sparse_us``), over
    buffers three times the L2 cache; ``gate_limit_us``, W_gate's bytes at the copy bandwidth."""
    x, first, n = layers[0]["x"], layers[0], len(layers)
    d_ff, d = first["wg"].shape
    out = {"gate_limit_us": d * d_ff * x.element_size() / copy_bw * 1e6}
    out["gate_cublas_us"] = time_us(lambda: [F.linear(x, L["wg"]) for L in layers], reps, cuda)["median_us"] / n
    out["gate_only_us"] = out["gate_only_rel_err"] = float("nan")
    gate = dict(sparse_calls(layers, cuda, gate_only=True)).get(config)
    if gate is not None:
        want = ACTS[first["act"]](x.double() @ first["wg"].double().T).cpu()
        err = checked_error(lambda: gate(x, first), want)
        log(f"  CHECK {'ok  ' if err < TOLERANCE else 'FAIL'} rel. error {err:.2e}  gate part alone of {config}")
        if err < TOLERANCE:
            t = time_us(lambda: [gate(x, L) for L in layers], reps, cuda)
            out.update(gate_only_us=t["median_us"] / n, gate_only_rel_err=err)
    elems = max(1, round(sparse_b / 2 / x.element_size()))  # read plus written = the sparse bytes
    copies = max(2, math.ceil(3 * L2_BYTES / (elems * x.element_size()))) if cuda else 2
    src = torch.randn(copies, elems, device=x.device).to(x.dtype)
    dst = torch.empty_like(src)
    out["copy_sparse_us"] = time_us(lambda: [dst[i].copy_(src[i]) for i in range(copies)], reps, cuda)["median_us"]
    out["copy_sparse_us"] /= copies
    return out


def diagnosis_line(row: dict) -> str:
    """The log line of ``diagnose``: each part against the layer's time, and what is left for the up and down
    work (the layer minus its gate pass)."""
    s = row["sparse_us"]
    return (
        f"  where the time goes: sparse layer {s:.2f} us; its gate pass alone {row['gate_only_us']:.2f} us "
        f"({100 * row['gate_only_us'] / s:.0f} %), so up and down add {s - row['gate_only_us']:.2f} us; cuBLAS "
        f"gate GEMV {row['gate_cublas_us']:.2f} us (W_gate at copy bandwidth {row['gate_limit_us']:.2f}); copy of "
        f"the sparse bytes {row['copy_sparse_us']:.2f} us (at the 2 GiB copy's bandwidth "
        f"{row['copy_limit_sparse_us']:.2f})"
    )


def copy_bandwidth(cuda: bool) -> float:
    """Device-to-device copy bandwidth in bytes/s (bytes read plus written) of a 2 GiB buffer: the ceiling
    every limit is computed against (NaN on the CPU)."""
    if not cuda:
        return float("nan")
    src = torch.empty(2**30, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    t = time_us(lambda: dst.copy_(src), 20, True)["median_us"]
    return 2 * src.numel() * 2 / (t * 1e-6)


def hardware(cuda: bool) -> str:
    """The GPU (or CPU) and the versions that matter to the kernels, for the raw logs."""
    import importlib.metadata as md

    try:
        triton = md.version("triton")
    except md.PackageNotFoundError:
        triton = "absent"
    where = torch.cuda.get_device_name() if cuda else f"CPU {platform.machine()}"
    return f"{where}; torch {torch.__version__}; triton {triton}; Python {platform.python_version()}"


def log_to(path: Path):
    """A ``log(msg)`` that prints each line and appends it to ``path`` at once (the file is written line by line,
    so a benchmark stopped at its time limit keeps what it measured)."""
    path = Path(path)
    path.write_text("")

    def log(msg: str) -> None:
        print(msg, flush=True)
        with path.open("a") as f:
            f.write(msg + "\n")

    return log


def header(command: str, cuda: bool) -> str:
    """The first lines of every raw log: command, revision (``SPARSING_GIT_REV`` on the GPU machine) and
    hardware."""
    return f"# command: {command}\n# revision: {git_revision()}\n# hardware: {hardware(cuda)}\n"


def write_summary(out: Path) -> pd.DataFrame:
    """``decode_summary.csv`` from whichever raw tables are in ``out`` (the FFN layer and the whole model; ``run``:
    the run whose ratios the model rows replicate, in summaries since it was added; ``non_ffn_us``: a model step
    with its FFN calls skipped, since code after c7f51dc)."""
    frames = [pd.read_csv(out / f) for f in ("decode_ffn.csv", "decode_model.csv") if (out / f).exists()]
    rows = pd.concat(frames, ignore_index=True)
    extra = [c for c in ("level", "activation", "model", "pattern", "run", "non_ffn_us") if c in rows]
    summary = rows[SUMMARY_COLUMNS + extra]
    summary.to_csv(out / "decode_summary.csv", index=False)
    return summary
