"""Measure a pretrained model's activation sparsity from text: the work behind ``python -m sparsing_lib``.

``calibrate`` finds the CETT-PPL-p% thresholds on one or several token sets and reports the activation
ratio per set and layer; ``sweep`` draws the Fig. 2 trade-off (CETT, Top-k per token and per layer, FAT-ε)
around that point; ``measure`` and ``sparse_eval`` are the two commands, which print tables and write (or
read) a ``ThresholdSet``. Every bad input is refused with one message before any file is written.
"""

from __future__ import annotations

import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from .capture import Hooks, ffn_layers, run
from .metrics import MAX_TOKENS, CettPplResult, Evaluation, ThresholdSet, cett_ppl, data_hash, evaluate, model_identity
from .metrics import pareto as pareto_points
from .train import windows

SEQ_LEN = 256  # tokens per window: long enough for context, short enough for a CPU batch
GRID_POINTS = 12  # CETT curve points per layer: half the library default, which is plenty around 1% PPL
SPREAD = (0.6, 1.0, 1.6)  # CETT sweep values as multiples of the CETT-PPL-p% value, to bracket its PPL ratio


def python_docs_text() -> str:
    """CPython's documentation of its language topics (``pydoc_data.topics``, PSF licence), ~465k characters."""
    from pydoc_data.topics import topics

    return "\n\n".join(topics[k] for k in sorted(topics))


def text_windows(tokenizer, text: str, tokens: int, seq_len: int = SEQ_LEN) -> torch.Tensor:
    """The first ``tokens`` token ids of ``text`` as [n, seq_len] windows (seq_len shrinks to ``tokens`` when
    fewer are asked for); one clear ValueError when the text is too short."""
    if not (isinstance(tokens, int) and tokens >= 2):
        raise ValueError(f"tokens must be an integer >= 2, got {tokens!r}")
    seq_len = min(seq_len, tokens)
    ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"]
    if len(ids) < tokens:
        raise ValueError(
            f"the text gives {len(ids):,} tokens with this model's tokenizer, fewer than the {tokens:,} requested: "
            "give a longer text or ask for fewer tokens"
        )
    return windows(np.asarray(ids, dtype=np.int64), seq_len, tokens)


@dataclass
class Calibration:
    """CETT-PPL-p% on the union of token sets, with the sparse evaluation of each set at its thresholds."""

    search: CettPplResult
    per_set: dict[str, Evaluation]

    @property
    def thresholds(self) -> list[float]:
        return self.search.thresholds[0]

    @property
    def n_tokens(self) -> int:
        return sum(e.n_tokens for e in self.per_set.values())

    def layer_ratios(self) -> list[float]:
        """Per-layer activation ratio over all sets (token-weighted)."""
        w = np.array([e.n_tokens for e in self.per_set.values()], dtype=float)
        return list(np.average([e.layer_ratios for e in self.per_set.values()], axis=0, weights=w))

    @property
    def activation_ratio(self) -> float:
        return float(np.mean(self.layer_ratios()))

    @property
    def sparse_ppl(self) -> float:
        """PPL over all sets at the thresholds (from the token-weighted mean loss)."""
        w = np.array([e.n_tokens for e in self.per_set.values()], dtype=float)
        return math.exp(np.average([e.loss for e in self.per_set.values()], weights=w))

    @property
    def dense_ppl(self) -> float:
        return self.sparse_ppl / self.search.ppl_ratio[0]


def calibrate(
    model: nn.Module,
    sets: dict[str, torch.Tensor],
    p: float = 0.01,
    grid_points: int = GRID_POINTS,
    max_tokens: int = MAX_TOKENS,
    progress: bool = False,
) -> Calibration:
    """CETT-PPL-p% searched on all ``sets`` (windows of equal length) together, then one sparse pass per set
    for its per-layer activation ratios."""
    ids = torch.cat(list(sets.values()))
    search = cett_ppl(model, ids, p, grid_points=grid_points, max_tokens=max_tokens, progress=progress)
    batch = max(1, max_tokens // ids.shape[1])
    per_set = {n: evaluate(model, x, thresholds=search.thresholds[0], batch_size=batch) for n, x in sets.items()}
    return Calibration(search, per_set)


@torch.no_grad()
def fat_epsilons(model: nn.Module, ids: torch.Tensor, keep: list[float]) -> list[float]:
    """FAT-ε values at which about ``keep`` of the gate activations |s| (pooled over layers) pass: the
    (1 − keep) quantiles of |s| on ``ids``, so that the FAT sweep lands near the other methods' ratios."""
    seen: list[torch.Tensor] = []
    run(model, Hooks(model, watch=lambda i, a, s, y: seen.append(s.abs().flatten().float())), ids)
    values = torch.cat(seen)
    values = values[:: max(1, values.numel() // 2**22)]  # quantile() takes at most 2^24 entries
    return [float(torch.quantile(values, 1.0 - k)) for k in keep]


def keep_fractions(ratio: float) -> list[float]:
    """Fractions of neurons kept by the Top-k and FAT-ε sweeps around an activation ratio ``ratio``: one well
    below it and three from it towards all neurons, so that a dense model (ratio near 1) is bracketed too."""
    return [0.6 * ratio, ratio, ratio + (1 - ratio) / 3, ratio + 2 * (1 - ratio) / 3]


def sweep(
    model: nn.Module, ids: torch.Tensor, cett: float, activation_ratio: float, max_tokens: int = MAX_TOKENS
) -> pd.DataFrame:
    """Fig. 2's points on ``ids``: CETT, Top-k per token and per layer and FAT-ε, each at values placed around
    a CETT-PPL-p% point (``cett`` and its ``activation_ratio``) so that each curve brackets its PPL ratio, and
    the zero threshold."""
    batch = max(1, max_tokens // ids.shape[1])
    dense = evaluate(model, ids, batch_size=batch)
    keep = keep_fractions(activation_ratio)
    values = {
        "cett": [min(1.0, cett * f) for f in SPREAD],
        "topk_token": keep,
        "topk_layer": keep,
        "fat": fat_epsilons(model, ids[:1], keep),
        "zero": [0.0],
    }
    frames = [pareto_points(model, ids, m, v, max_tokens=max_tokens, dense=dense) for m, v in values.items()]
    return pd.concat(frames, ignore_index=True)


def layer_table(thresholds: list[float], ratios: list[float]) -> pd.DataFrame:
    """Per-layer threshold and activation ratio, as printed by the command line."""
    return pd.DataFrame({"layer": range(len(ratios)), "threshold": thresholds, "active (%)": np.multiply(ratios, 100)})


def check_thresholds(ts: ThresholdSet, model: nn.Module, source: str = "the thresholds") -> None:
    """Refuse thresholds made for another shape of model: layer count or FFN width differ."""
    ffns = ffn_layers(model)
    width = ffns[0].weight().shape[1]
    if len(ts.thresholds) != len(ffns):
        raise ValueError(
            f"{source} hold {len(ts.thresholds)} layer thresholds (from {ts.model}), but this model has "
            f"{len(ffns)} FFN layers"
        )
    found = re.search(r":dff(\d+)$", ts.model)
    if found and int(found.group(1)) != width:
        raise ValueError(
            f"{source} were measured on FFNs {found.group(1)} wide (from {ts.model}), this model's are {width}"
        )


def load_thresholds(path: Path | str) -> ThresholdSet:
    """A ThresholdSet from JSON, with one clear message when the file is not one."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no thresholds file at {path}")
    try:
        return ThresholdSet.load(path)
    except (ValueError, TypeError) as err:
        raise ValueError(f"{path} is not a ThresholdSet JSON file ({err})") from None


def measure(
    model: nn.Module, ids: torch.Tensor, p: float, out: Path | None, progress: bool, echo=print
) -> tuple[Calibration, ThresholdSet]:
    """The ``measure`` command's work: calibrate, print the per-layer table and the PPL ratio, write ``out``."""
    t0 = time.perf_counter()
    cal = calibrate(model, {"text": ids}, p, progress=progress)
    ts = ThresholdSet(
        model_identity(model), f"CETT-PPL-{100 * p:g}%", cal.search.cett, cal.thresholds, ids.numel(), data_hash(ids)
    )
    echo(layer_table(cal.thresholds, cal.layer_ratios()).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    echo(
        f"CETT {cal.search.cett:.4f}: activation ratio {100 * cal.activation_ratio:.2f}%, PPL {cal.dense_ppl:.3f} "
        f"dense -> {cal.sparse_ppl:.3f} sparse (ratio {cal.search.ppl_ratio[0]:.4f}, target {1 + p:.4f}"
        f"{'' if cal.search.converged else ', not met within tolerance'}) on {ids.numel():,} tokens "
        f"in {time.perf_counter() - t0:.0f} s"
    )
    if out is not None:
        ts.save(out)
        echo(f"thresholds written to {out}")
    return cal, ts


def sparse_eval(model: nn.Module, ids: torch.Tensor, ts: ThresholdSet, progress: bool, echo=print) -> dict:
    """The ``sparse-eval`` command's work: dense and thresholded PPL and the activation ratio on ``ids``."""
    check_thresholds(ts, model)
    dense = evaluate(model, ids, progress=progress)
    sparse = evaluate(model, ids, thresholds=ts.thresholds, progress=progress)
    echo(layer_table(ts.thresholds, sparse.layer_ratios).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    echo(
        f"activation ratio {100 * sparse.activation_ratio:.2f}%, PPL {dense.ppl:.3f} dense -> {sparse.ppl:.3f} "
        f"sparse (ratio {sparse.ppl / dense.ppl:.4f}) on {ids.numel():,} tokens"
    )
    return dict(dense_ppl=dense.ppl, ppl=sparse.ppl, activation_ratio=sparse.activation_ratio)
