"""The decoding chapter (paper App. L): what activation sparsity buys in decoding speed on one GPU.

The paper measures a CPU-GPU hybrid system (PowerInfer against llama.cpp). Ours is a single H200, where a
decode step is bound by the bytes it reads from HBM, so the ceiling is a byte count: the dense FFN reads its
three matrices, the sparse one all of W_gate, the candidate rows of W_up and the kept rows of W_down
(``decode.reference.ffn_bytes``). ``replay`` reads ``data/benchmarks/decode_summary.csv`` (written on the GPU
by ``benchmarks/decode_all.sh``) when it is committed, with ``decode_ffn.csv`` (where a batch-1 layer's time
goes) and ``decode_summary_compiled.csv`` (the whole model with its non-FFN parts compiled) where they exist;
``smoke`` runs the FFN-layer benchmark's logic on the CPU at toy size through the float64 reference path (its
times mean nothing). The bandwidth model is computed in every profile; ``decoding_breakdown`` splits the
measured times into their parts and the bounds those parts set.
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .. import style
from ..checks import check_profile
from ..decode import bench
from ..decode.reference import ffn_bytes, union_ratio
from ..paths import DATA
from ..profiles import by_profile
from ..runs import load_run, load_runs
from . import decoding_breakdown as B

# App. L: the 2.4B ReLU model on an A800 with 104 CPU cores, 100 C4 prompts of 5 tokens
PAPER = {"powerinfer": 41.79, "llamacpp": 10.23}
D, D_FF, LAYERS, VOCAB = 2304, 5760, 40, 32000  # the paper's 2.4B shape; our engine's vocabulary
BATCHES = (1, 4, 16)
SUMMARY = "decode_summary.csv"
COMPILED = "decode_summary_compiled.csv"  # DECODE_COMPILE=1: batch 1 with the non-FFN parts compiled


def attention_bytes(d: int = D, layers: int = LAYERS, vocab: int = VOCAB) -> float:
    """Bytes a decode step reads outside the FFNs (bf16): four d×d attention matrices per layer and the tied
    embedding matrix as output head (the KV cache of short prompts is negligible)."""
    return (4 * d * d * layers + vocab * d) * 2


def model_bytes() -> float:
    """Bytes of a dense decode step at the 2.4B shape (every weight once)."""
    return LAYERS * ffn_bytes(D, D_FF, 1, 1) + attention_bytes()


def model_limit(candidate: float, kept: float) -> float:
    """Whole-step speed-up limit at the 2.4B shape: all weight bytes dense over sparse."""
    return model_bytes() / (LAYERS * ffn_bytes(D, D_FF, candidate, kept) + attention_bytes())


def ffn_limit(candidate: float, kept: float) -> float:
    """FFN-layer speed-up limit (the ratio of bytes; independent of the shape)."""
    return ffn_bytes(D, D_FF, 1, 1) / ffn_bytes(D, D_FF, candidate, kept)


def runs_table() -> pd.DataFrame:
    """Our mini runs' last-checkpoint ratios and what they would buy at the 2.4B shape, batch 1: a ReLU model
    reads the up rows of its non-zero neurons and the down rows of the kept ones (at the zero threshold the
    two are equal: lossless), a SiLU model reads all of W_up at its CETT cut."""
    rows = []
    for name, run in load_runs(DATA / "runs").items():
        if not name.startswith("mini-") or "sparsity" not in run:
            continue
        sp = run["sparsity"].iloc[-1]
        act = run["config"]["activation"]
        nonzero = float(sp["zero_ratio"]) if act == "relu" else 1.0
        ratio = float(sp["activation_ratio"])
        rows.append(
            {
                "run": name,
                "activation": act,
                "non-zero ratio": nonzero,
                "CETT-PPL-1% ratio": ratio,
                "FFN limit, zero threshold": ffn_limit(nonzero, nonzero) if act == "relu" else np.nan,
                "FFN limit, CETT-PPL-1%": ffn_limit(nonzero, ratio),
                "model limit, CETT-PPL-1%": model_limit(nonzero, ratio),
            }
        )
    return pd.DataFrame(rows)


def _read(name: str) -> pd.DataFrame | None:
    path = DATA / "benchmarks" / name
    return pd.read_csv(path) if path.exists() else None


def _replay() -> dict:
    summary = _read(SUMMARY)
    return {"summary": summary, "ffn": _read("decode_ffn.csv"), "compiled": _read(COMPILED), "runs": runs_table(),
            "measured": summary is not None, "source": "H200"}  # fmt: skip


def _recompute(profile: str) -> dict:
    if profile == "full":
        raise ValueError(
            "the full measurement needs an H200: run `bash benchmarks/decode_all.sh <folder>` there and commit "
            f"its {SUMMARY} and raw logs under data/benchmarks/; replay then draws them"
        )
    rows = [
        bench.ffn_case("smoke", "relu", r, b, False, 2, float("nan"), lambda msg: None)
        for r in (0.065, 0.2)
        for b in (1, 4)
    ]
    summary = pd.DataFrame(rows)[bench.SUMMARY_COLUMNS + ["level", "activation"]]
    return {"summary": summary, "ffn": pd.DataFrame(rows), "compiled": None, "runs": runs_table(), "measured": True,
            "source": "CPU reference path (toy)"}  # fmt: skip


def results(profile: str = "replay") -> dict:
    """The benchmark summary (None until measured), the FFN benchmark's full rows and the compiled-engine summary
    (None where absent), our runs' ratios with their bandwidth limits, and where the measurement comes from."""
    check_profile(profile)
    return by_profile(profile, _replay, _recompute, lambda res: None)


def planned() -> pd.DataFrame:
    """The FFN-layer cases the GPU benchmark measures, with their bandwidth limits and no times (ReLU with
    independent active sets per batch row; SiLU at the CETT-PPL-1% ratio of our largest SiLU run)."""
    silu = bench.run_ratios(bench.largest_run("silu"))["mean"]
    rows = []
    for shape in ("2.4B", "0.1B"):
        for act, ratio in [("relu", 0.065), ("relu", 0.10), ("relu", 0.20), ("silu", silu)]:
            for b in BATCHES:
                kept = union_ratio(ratio, b)
                rows.append(dict(level="ffn layer", shape=shape, activation=act, activation_ratio=ratio, batch=b,
                                 limit=ffn_limit(kept if act == "relu" else 1.0, kept)))  # fmt: skip
    return pd.DataFrame(rows).reindex(columns=[*bench.SUMMARY_COLUMNS, "level", "activation"])


def _ffn_rows(res: dict) -> pd.DataFrame:
    s = res["summary"]
    if s is None:
        return pd.DataFrame(columns=[*bench.SUMMARY_COLUMNS, "level", "activation"])
    return s[s["level"] == "ffn layer"]


def _model_rows(res: dict) -> pd.DataFrame:
    s = res["summary"]
    if s is None:
        return pd.DataFrame(columns=[*bench.SUMMARY_COLUMNS, "level", "activation"])
    return s[s["level"] == "model"]


def figure(res: dict) -> plt.Figure:
    """FFN-layer speed-up against the activation ratio: the bandwidth limit per batch for ReLU (lines,
    independent active sets whose union grows with the batch), for SiLU at a CETT cut (dashed: all of W_up
    is read) and, where measured, the measured speed-ups (filled markers ReLU, hollow SiLU)."""
    styles = style.series_style([f"batch {b}" for b in BATCHES])
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    r = np.linspace(0.01, 0.5, 200)
    for b in BATCHES:
        st = styles[f"batch {b}"]
        u = union_ratio(r, b)
        ax.plot(r, [ffn_limit(x, x) for x in u], color=st["color"], lw=1.2, label=f"limit, batch {b}")
    ffn = _ffn_rows(res)
    main = ffn[ffn["shape"] == ffn["shape"].iloc[0]] if len(ffn) else ffn
    ax.plot(r, [ffn_limit(1.0, x) for x in r], color="0.3", lw=1, ls="--", label="limit, SiLU at a CETT cut, batch 1")
    for b in BATCHES:
        st = styles[f"batch {b}"]
        for act, face in (("relu", st["color"]), ("silu", "none")):
            pts = main[(main["batch"] == b) & (main["activation"] == act)]
            if len(pts):
                ax.plot(pts["activation_ratio"], pts["speedup"], ls="none", marker=st["marker"], color=st["color"],
                        mfc=face, ms=7, label=f"measured {'ReLU' if act == 'relu' else 'SiLU'}, batch {b}")  # fmt: skip
    ax.axhline(1, color="0.6", lw=0.8)
    ax.axvline(0.065, color="0.6", lw=0.8, ls=":")
    top = max(3.2, float(main["speedup"].max()) + 0.3) if len(main) else 3.2  # measured may beat a cuBLAS baseline
    ax.set(xlabel="activation ratio (per token)", ylabel="FFN speed-up over dense", ylim=(0, top))
    title = f"FFN layer, {main['shape'].iloc[0]} shape ({res['source']})" if len(main) else "FFN layer: bandwidth limit"
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    return fig


def table(res: dict) -> pd.DataFrame:
    """The measured summary with readable column names (until measured: the planned FFN cases with their
    limits and empty times)."""
    s = res["summary"] if res["summary"] is not None else planned()
    out = s.rename(
        columns={
            "shape": "shape",
            "activation_ratio": "activation ratio",
            "batch": "batch",
            "dense_us": "dense (µs)",
            "sparse_us": "sparse (µs)",
            "speedup": "speed-up",
            "limit": "bandwidth limit",
            "activation": "activation",
            "level": "what is timed",
        }
    )
    return out[[c for c in ["what is timed", "shape", "activation"] if c in out] + [
        "activation ratio", "batch", "dense (µs)", "sparse (µs)", "speed-up", "bandwidth limit"]]  # fmt: skip


def breakdown(res: dict) -> pd.DataFrame:
    """Where a batch-1 ReLU layer's time goes, per measured case (``decoding_breakdown.breakdown``)."""
    return B.breakdown(res.get("ffn"))


def _dense_layer(res: dict) -> tuple[float, float] | None:
    """The dense 2.4B FFN layer at batch 1 (µs, the 6.5 % case's timing) and the spread of the run's timings of
    that same layer (its batch-1 cases differ only in the sparse side); None where not measured."""
    ffn = _ffn_rows(res)
    dense = ffn[(ffn["shape"] == "2.4B") & (ffn["batch"] == 1)]
    row = _pick(dense, activation_ratio=0.065, activation="relu")
    return None if row is None else (float(row["dense_us"]), float(dense["dense_us"].max() - dense["dense_us"].min()))


def model_table(res: dict) -> pd.DataFrame:
    """The whole-model rows at batch 1, with the non-FFN parts eager and (where measured) compiled, and for the
    2.4B shape the time outside the FFN layers and what 1.4× would need of it (``decoding_breakdown``)."""
    dense = _dense_layer(res)
    layer = {} if dense is None else {"2.4B": dense[0]}
    return B.model_table(_engines(res), layer, {"2.4B": LAYERS})


def _engines(res: dict) -> dict[str, pd.DataFrame | None]:
    """Engine label -> its whole-model rows: the summary's (non-FFN parts eager) and, where measured, the compiled
    run's; both come from one call of the benchmark, so their rows compare like with like."""
    return {"eager": res["summary"], "compiled": res.get("compiled")}


def _pick(df: pd.DataFrame, **eq) -> pd.Series | None:
    for k, v in eq.items():
        df = df[np.isclose(df[k], v)] if isinstance(v, float) else df[df[k] == v]
    return df.iloc[0] if len(df) else None


def numbers(res: dict) -> dict[str, str]:
    """Every number the prose quotes, and the paragraph on our measurement (or its absence)."""
    runs = res["runs"].set_index("run", drop=False)
    relu, silu = runs.loc[bench.largest_run("relu")], runs.loc[bench.largest_run("silu")]
    params = max(run_params(r) for r in (relu["run"], silu["run"]))
    out = {
        "paper_powerinfer": f"{PAPER['powerinfer']:.2f}",
        "paper_llamacpp": f"{PAPER['llamacpp']:.2f}",
        "paper_speedup": f"{PAPER['powerinfer'] / PAPER['llamacpp']:.1f}",
        "limit_065": f"{ffn_limit(0.065, 0.065):.2f}",
        "model_limit_065": f"{model_limit(0.065, 0.065):.2f}",
        "limit_065_b16": f"{ffn_limit(union_ratio(0.065, 16), union_ratio(0.065, 16)):.2f}",
        "union_065_b16": f"{100 * union_ratio(0.065, 16):.0f}",
        "ffn_share": f"{100 * (1 - attention_bytes() / model_bytes()):.0f}",
        "relu_run": relu["run"],
        "relu_ratio": f"{100 * relu['CETT-PPL-1% ratio']:.1f}",
        "relu_nonzero": f"{100 * relu['non-zero ratio']:.1f}",
        "relu_ffn_limit": f"{relu['FFN limit, CETT-PPL-1%']:.2f}",
        "relu_zero_limit": f"{relu['FFN limit, zero threshold']:.2f}",
        "relu_model_limit": f"{relu['model limit, CETT-PPL-1%']:.2f}",
        "silu_run": silu["run"],
        "silu_ratio": f"{100 * silu['CETT-PPL-1% ratio']:.1f}",
        "silu_ffn_limit": f"{silu['FFN limit, CETT-PPL-1%']:.2f}",
        "silu_model_limit": f"{silu['model limit, CETT-PPL-1%']:.2f}",
        "largest_params": f"{params / 1e6:.0f}",
        "model_run": model_run(res),
    }
    out["measured_text"] = _measured_text(res)
    out["figure_verdict"] = _verdict(res)[1]
    out["layer_target"], out["model_target"] = f"{B.LAYER_TARGET:.0f}", f"{B.MODEL_TARGET}"
    out["gate_verdict"], out["gate_text"] = B.gate_text(B.layer_bound(res.get("ffn")))
    dense = _dense_layer(res)
    if dense is None:
        out["model_verdict"], out["model_text"] = "not measured", "The whole 2.4B model has no measured FFN layer."
    else:
        out["model_verdict"], out["model_text"] = B.model_text(model_table(res), "2.4B", dense[0], LAYERS, dense[1])
    return out


def run_params(run: str) -> int:
    """A committed run's non-embedding parameters (its config.json)."""
    return load_run(DATA / "runs" / run)["config"]["model"]["non_embedding_params"]


def model_run(res: dict) -> str:
    """The run whose per-layer ratios the whole-model rows replicate (and whose model they decode at its true
    size): the summary's ``run`` column; in summaries written before that column, the ReLU run of the model the
    rows decode besides the 2.4B shape; without model rows, the run the benchmark would use now."""
    model = _model_rows(res)
    if "run" in model and model["run"].notna().any():
        return str(model["run"].dropna().iloc[0])
    own = [m for m in model.get("model", pd.Series(dtype=str)).dropna().unique() if m != "2.4B"]
    return f"{own[0]}-relu" if own else bench.largest_run("relu")


def _measured_text(res: dict) -> str:
    if not res["measured"]:
        return (
            "Not measured yet: the kernels, the benchmarks and their CPU checks are in place, and this section "
            "will show the H200 measurements once they are committed. Until then the figure shows the bandwidth "
            "limits only, and the table the planned cases with their limits."
        )
    ffn = _ffn_rows(res)
    row = _pick(ffn, shape=ffn["shape"].iloc[0], activation_ratio=0.065, batch=1) if len(ffn) else None
    parts = [f"Measured on the {res['source']}."]
    if row is not None:
        parts.append(
            f"At the {row['shape']} shape, batch 1 and 6.5 % activation, the sparse FFN layer takes "
            f"{row['sparse_us']:.1f} µs against {row['dense_us']:.1f} µs dense: {row['speedup']:.2f}× "
            f"(bandwidth limit {row['limit']:.2f}×)."
        )
    model = _model_rows(res)
    for _, m in model[model["batch"] == 1].iterrows():
        parts.append(
            f"Whole {m['shape']} ({m.get('pattern', '')}), batch 1: {1e6 / m['dense_us']:.0f} against "
            f"{1e6 / m['sparse_us']:.0f} tokens/s, {m['speedup']:.2f}× (limit {m['limit']:.2f}×, activation "
            f"ratio {100 * m['activation_ratio']:.1f} %)."
        )
    return " ".join(parts)


def _verdict(res: dict) -> tuple[str, str]:
    """(claim verdict, sentence) for App. L. We cannot re-run PowerInfer against llama.cpp on a hybrid
    system, so the claim stays untested; the sentence says what our single-GPU measurement shows."""
    if not res["measured"] or res["source"] != "H200":
        limit = ffn_limit(0.065, 0.065)
        return "untested", f"not measured on a GPU yet; on one GPU the bandwidth limit of a 6.5 % FFN is {limit:.2f}×"
    model = _model_rows(res)
    ffn = _ffn_rows(res)
    row = _pick(ffn, shape=ffn["shape"].iloc[0], activation_ratio=0.065, batch=1) if len(ffn) else None
    bits = []
    if row is not None:
        bits.append(f"FFN layer {row['speedup']:.2f}× of a {row['limit']:.2f}× limit at 6.5 %")
    m1 = model[(model["batch"] == 1) & model["shape"].str.startswith(ffn["shape"].iloc[0] if len(ffn) else "")]
    if len(m1):  # whole-model rows at the FFN rows' shape (the 2.4B model App. L decodes)
        best = m1.loc[m1["speedup"].idxmax()]
        bits.append(f"whole {best['shape']} {best['speedup']:.2f}× of {best['limit']:.2f}× at batch 1")
        other = [
            f"{e['speedup'].max():.2f}× {label}"
            for label, df in list(_engines(res).items())[1:]
            if df is not None and len(e := df[(df["batch"] == 1) & (df["shape"] == best["shape"])])
        ]
        if other:
            bits[-1] += f" ({'; '.join(other)})"
    sentence = "a different setting (one H200, no CPU offload): " + "; ".join(bits) if bits else "no usable rows"
    return "untested", sentence


def claims(res: dict) -> list[dict]:
    """Claim 19 (PowerInfer decodes the 2.4B ReLU model 4.1× faster than llama.cpp): not re-measured; the note
    gives our single-GPU speed-up beside it."""
    verdict, sentence = _verdict(res)
    basis = "our runs" if res["measured"] and res["source"] == "H200" else "—"
    return [dict(id=19, verdict=verdict, basis=basis, note=sentence)]
