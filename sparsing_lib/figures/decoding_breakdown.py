"""Where the decoding chapter's time goes (paper App. L): a batch-1 FFN layer split into its gate read and the
rest, the bound that the gate read sets on any exact sparse kernel, and the time a whole decode step spends
outside its FFN layers, which both engines share and which holds the whole-step speed-up down.

An exact sparse layer must read all of W_gate before it knows which rows of W_up and W_down it needs, so the
fastest read of W_gate measured on the GPU (our kernel stopped after its gate, or cuBLAS's gate product alone,
``bench.diagnose``) plus the up and down rows at the copy bandwidth is a floor under the layer's time at that
read speed. For a whole step, the dense and sparse engines run the same code outside the FFN, so with the
dense FFN layer's measured time ``d`` the non-FFN time is ``N = dense step − layers·d``, the sparse engine's
FFN layer takes ``s = d − (dense step − sparse step)/layers``, and a speed-up ``(N + layers·d) / (N +
layers·s)`` of at least ``target`` needs ``N ≤ layers·(d − target·s)/(target − 1)``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

LAYER_TARGET = 3.0  # FFN layer, batch 1, 6.5 %: three times the dense cuBLAS layer
MODEL_TARGET = 1.4  # whole 2.4B-shaped model, batch 1: 1.4 times the dense engine's tokens/s
BREAKDOWN = {  # decode_ffn.csv column -> the table's name for it
    "shape": "shape",
    "activation_ratio": "activation ratio",
    "dense_us": "dense layer (µs)",
    "sparse_us": "sparse layer (µs)",
    "gate_only_us": "its gate pass alone (µs)",
    "rest_us": "up and down rows add (µs)",
    "gate_cublas_us": "cuBLAS gate product alone (µs)",
    "gate_limit_us": "W_gate at copy bandwidth (µs)",
    "copy_sparse_us": "copy of the sparse bytes (µs)",
    "copy_limit_sparse_us": "sparse bytes at copy bandwidth (µs)",
}
MODEL_COLUMNS = {
    "model": "model",
    "pattern": "activation pattern",
    "engine": "non-FFN parts",
    "dense_us": "dense (µs/step)",
    "sparse_us": "sparse (µs/step)",
    "speedup": "speed-up",
    "limit": "bandwidth limit",
    "non_ffn_us": "outside the FFN, timed (µs/step)",
    "estimated_us": "outside the FFN, estimated (µs/step)",
    "sparse_layer_us": "sparse FFN layer in the step (µs)",
    "needed_us": f"outside the FFN for {MODEL_TARGET}× (µs/step)",
}
NEEDED = MODEL_COLUMNS["needed_us"]


def breakdown(ffn: pd.DataFrame | None) -> pd.DataFrame:
    """The ReLU batch-1 rows of ``decode_ffn.csv`` that carry the diagnosis (runs since the fourth), with what the
    up and down rows add to the gate pass, under readable names; empty where no such rows exist."""
    if ffn is None or "gate_cublas_us" not in ffn:
        return pd.DataFrame(columns=list(BREAKDOWN.values()))
    rows = ffn[(ffn["activation"] == "relu") & (ffn["batch"] == 1) & ffn["gate_cublas_us"].notna()].copy()
    rows["rest_us"] = rows["sparse_us"] - rows["gate_only_us"]
    return rows[list(BREAKDOWN)].rename(columns=BREAKDOWN).reset_index(drop=True)


def gate_bound(
    dense_us: float, gate_us: float, gate_limit_us: float, copy_limit_us: float, target: float = LAYER_TARGET
) -> dict:
    """What the gate read leaves for the rest of an exact sparse layer. ``gate_us``: the fastest measured read of
    W_gate; ``gate_limit_us`` and ``copy_limit_us``: W_gate's and the whole sparse layer's bytes at the copy
    bandwidth, so that their difference is the up and down rows at that bandwidth (``tail_us``). ``budget_us``:
    the layer's time at ``target``× the dense layer; ``left_us``: what the gate read leaves of it; ``bound``: the
    speed-up of a layer that reads W_gate at the measured speed and the rest at the copy bandwidth;
    ``needed_gate_us``: the slowest read of W_gate that would still allow ``target``× with such a rest."""
    tail = copy_limit_us - gate_limit_us
    budget = dense_us / target
    bound = dense_us / (gate_us + tail)
    return dict(budget_us=budget, gate_us=gate_us, left_us=budget - gate_us, tail_us=tail, bound=bound,
                reachable=bound >= target, needed_gate_us=budget - tail)  # fmt: skip


def layer_bound(ffn: pd.DataFrame | None, shape: str = "2.4B", ratio: float = 0.065) -> dict | None:
    """``gate_bound`` of the ReLU batch-1 case at ``shape`` and ``ratio``, with the fastest gate read of the two
    measured (our kernel's gate pass, cuBLAS's gate product), and the measured numbers behind it; ``reads``: every
    timing of a full read of W_gate in the run's batch-1 ReLU cases at ``shape`` (cuBLAS's of the same product,
    so their spread is timing noise; ours of each case's winning form); None where the run has no diagnosis for
    that case."""
    if ffn is None or "gate_cublas_us" not in ffn:
        return None
    cases = ffn[(ffn["shape"] == shape) & (ffn["activation"] == "relu") & (ffn["batch"] == 1)]
    rows = cases[np.isclose(cases["activation_ratio"], ratio) & cases["gate_cublas_us"].notna()]
    if not len(rows):
        return None
    r = rows.iloc[0]
    gate = float(np.nanmin([r["gate_only_us"], r["gate_cublas_us"]]))
    out = gate_bound(r["dense_us"], gate, r["gate_limit_us"], r["copy_limit_sparse_us"])
    out.update({k: float(r[k]) for k in ("dense_us", "sparse_us", "gate_only_us", "gate_cublas_us", "gate_limit_us",
                                          "copy_sparse_us", "copy_limit_sparse_us", "speedup")})  # fmt: skip
    out["copy_bound"] = out["dense_us"] / out["copy_sparse_us"]
    reads = cases[["gate_only_us", "gate_cublas_us"]].to_numpy().ravel()
    out["reads"] = reads[~np.isnan(reads)]
    return out


def gate_text(b: dict | None) -> tuple[str, str]:
    """(verdict, paragraph) on the layer target from ``layer_bound``'s numbers."""
    if b is None:
        return "not measured", "This run did not time the parts of the batch-1 layer, so the bound is not known."
    ours = "not timed" if math.isnan(b["gate_only_us"]) else f"{b['gate_only_us']:.2f} µs"
    reads = b["reads"]
    share = (
        ""
        if math.isnan(b["gate_only_us"])
        else f" ({100 * b['gate_only_us'] / b['dense_us']:.0f} % of the dense layer)"
    )
    left = (
        f"leaves {b['left_us']:.2f} µs for the up and down rows, whose bytes take {b['tail_us']:.2f} µs even at "
        "the copy bandwidth"
        if b["left_us"] >= 0
        else f"already takes {-b['left_us']:.2f} µs more than that, before the up and down rows ({b['tail_us']:.2f} "
        "µs at the copy bandwidth)"
    )
    verdict = (
        f"within reach ({b['bound']:.2f}× bound)"
        if b["reachable"]
        else f"out of reach for an exact kernel at the measured gate read speed (bound {b['bound']:.2f}×)"
    )
    predictor = "not reading it at all, with a predictor of the active neurons that changes the output"
    at_copy = b["gate_limit_us"] + b["tail_us"]  # the whole sparse layer at the copy bandwidth
    if b["reachable"]:
        rest = f"That leaves room for {LAYER_TARGET:.0f}× at the measured read speed."
    elif at_copy <= b["budget_us"]:
        rest = (
            f"Only a read of W_gate at the full copy bandwidth ({b['gate_limit_us']:.2f} µs), which neither kernel "
            f"reaches, or {predictor}, would leave room for {LAYER_TARGET:.0f}×."
        )
    else:
        rest = (
            f"Even at the full copy bandwidth the sparse bytes take {at_copy:.2f} µs; only {predictor} could reach "
            f"{LAYER_TARGET:.0f}×."
        )
    fast = int((reads <= b["needed_gate_us"]).sum())
    timings = f"{len(reads)} timings of that read at this shape in this run ({min(reads):.2f} to {max(reads):.2f} µs)"
    needed = f"{LAYER_TARGET:.0f}× would need W_gate read in {b['needed_gate_us']:.2f} µs or less, " + (
        f"faster than all {timings}" if not fast else f"reached by {fast} of the {timings}"
    )
    text = (
        f"{LAYER_TARGET:.0f}× the dense layer means the whole sparse layer in {b['budget_us']:.2f} µs. Our kernel's "
        f"gate pass alone takes {ours}{share} and cuBLAS's gate product alone {b['gate_cublas_us']:.2f} µs: reading "
        f"W_gate as fast as the faster of the two {left}. {needed}; an exact kernel that reads W_gate at the "
        f"measured speed is bounded at {b['bound']:.2f}× (a plain device copy of the sparse layer's bytes takes "
        f"{b['copy_sparse_us']:.2f} µs, {b['copy_bound']:.2f}×). {rest}"
    )
    return verdict, text


def non_ffn_split(
    dense_step_us: float, sparse_step_us: float, dense_layer_us: float, layers: int
) -> tuple[float, float]:
    """(N, s): the time a step spends outside its ``layers`` FFN layers, if each dense layer costs in the step
    what it costs alone, and the sparse FFN layer's time in the step that the same N implies."""
    n = dense_step_us - layers * dense_layer_us
    return n, dense_layer_us - (dense_step_us - sparse_step_us) / layers


def needed_non_ffn(dense_layer_us: float, sparse_layer_us: float, layers: int, target: float = MODEL_TARGET) -> float:
    """The largest non-FFN time N with ``(N + layers·d) / (N + layers·s) ≥ target``; zero or below: no N does."""
    return layers * (dense_layer_us - target * sparse_layer_us) / (target - 1)


def model_table(
    summaries: dict[str, pd.DataFrame | None], dense_layer: dict[str, float], layers: dict[str, int]
) -> pd.DataFrame:
    """The whole-model rows at batch 1 of each summary (``summaries``: engine -> decode summary, eager and
    compiled), with the non-FFN time, the sparse FFN layer it implies and the non-FFN time that 1.4× would need,
    for the models whose dense FFN layer was timed alone (``dense_layer``: model -> µs; ``layers``: model ->
    FFN layers)."""
    frames = []
    for engine, s in summaries.items():
        if s is not None and "level" in s:
            m = s[(s["level"] == "model") & (s["batch"] == 1)].copy()
            frames.append(m.assign(engine=engine))
    if not frames:
        return pd.DataFrame(columns=list(MODEL_COLUMNS.values()))
    m = pd.concat(frames, ignore_index=True)
    m["model"] = m["model"] if "model" in m else m["shape"].str.removesuffix(" model")
    for col in ("estimated_us", "sparse_layer_us", "needed_us") + (() if "non_ffn_us" in m else ("non_ffn_us",)):
        m[col] = np.nan  # timed: a step with its FFN calls skipped (runs after c7f51dc); estimated: below
    for i, r in m.iterrows():
        if r["model"] in dense_layer:
            n, s = non_ffn_split(r["dense_us"], r["sparse_us"], dense_layer[r["model"]], layers[r["model"]])
            m.loc[i, ["estimated_us", "sparse_layer_us"]] = n, s
            m.loc[i, "needed_us"] = needed_non_ffn(dense_layer[r["model"]], s, layers[r["model"]])
    m["pattern"] = m.get("pattern", pd.Series("", index=m.index))
    order = {p: i for i, p in enumerate(dict.fromkeys(m["pattern"]))}  # the benchmark's order of patterns
    m = m.assign(_p=m["pattern"].map(order)).sort_values(["model", "_p"], kind="stable")  # eager next to compiled
    return m[list(MODEL_COLUMNS)].rename(columns=MODEL_COLUMNS)


def model_text(
    table: pd.DataFrame, model: str, dense_layer_us: float, layers: int, spread_us: float
) -> tuple[str, str]:
    """(verdict, paragraph) on the whole-model target: the ``model`` row with CETT-ratio activity, eager and, where
    measured, with its non-FFN parts compiled. ``spread_us``: the range of the dense layer's timings in the run,
    which moves N by ``layers`` times as much."""
    rows = table[(table["model"] == model) & (table["activation pattern"] == "active = CETT ratios")]
    if not len(rows):
        return "not measured", f"The whole {model} model was not timed at batch 1."
    best = rows.loc[rows["speed-up"].idxmax()]
    parts = [
        f"{r['non-FFN parts']} {r['speed-up']:.2f}× ({r['dense (µs/step)']:.0f} against {r['sparse (µs/step)']:.0f} "
        f"µs per step)"
        for _, r in rows.iterrows()
    ]
    n, need = best["outside the FFN, estimated (µs/step)"], best[NEEDED]
    timed = best["outside the FFN, timed (µs/step)"]
    timed_text = "" if np.isnan(timed) else f"; a step with its FFN calls skipped takes {timed:.0f} µs"
    if need <= 0:
        need_text = f"no time outside the FFN would give {MODEL_TARGET}×: the FFN layers alone fall short of it"
    elif n <= need:
        need_text = f"{MODEL_TARGET}× allows up to {need:.0f} µs outside the FFN, more than the step spends there"
    else:
        need_text = (
            f"{MODEL_TARGET}× needs the part outside the FFN at {need:.0f} µs at most, {n - need:.0f} µs "
            f"({100 * (n - need) / n:.0f} %) less than now"
        )
    text = (
        f"The whole {model} model at batch 1, with the parts outside the FFN run {' and '.join(parts)}, of a "
        f"{best['bandwidth limit']:.2f}× bandwidth limit. Taking a dense FFN layer in the step to cost what it costs "
        f"alone ({dense_layer_us:.1f} µs, {layers} layers), the {best['non-FFN parts']} dense step spends {n:.0f} µs "
        f"outside its FFN layers (the run's timings of the same dense layer spread over {spread_us:.2f} µs, which "
        f"moves this by {layers * spread_us:.0f} µs{timed_text}), and the sparse step's FFN layers take about "
        f"{best['sparse FFN layer in the step (µs)']:.1f} µs each. With these FFN times, {need_text}."
    )
    # Name every engine's speed-up: where both reach the target, naming only the best would suggest the other does not.
    hits = rows.loc[rows["speed-up"] >= MODEL_TARGET, "non-FFN parts"].tolist()
    word = (
        "not reached" if not hits else "reached" if len(hits) == len(rows) else f"reached by {' and '.join(hits)} only"
    )
    speeds = ", ".join(f"{r['speed-up']:.2f}× {r['non-FFN parts']}" for _, r in rows.iterrows())
    return f"{word}: {speeds}", text
