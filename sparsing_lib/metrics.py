"""Activation-sparsity metrics of the Sparsing Law paper on any supported Hugging Face causal LM.

Readings of "inactive neuron" (paper §2.2 / §4.1), per layer and token, on the FFN's neurons:

* ``zero``        zero threshold: a_i = 0 (the only reading that is exact for ReLU, meaningless for SiLU);
* ``fat``         FAT-ε: |s_i| < ε with s = σ(gate x), one ε for all layers;
* ``topk_token``  Top-k per token: keep the k = value·d_ff largest |s_i| of every token (the paper's text);
* ``topk_layer``  Top-k per layer: keep the largest value·(tokens·d_ff) |s| entries of the whole layer
                  over the non-padding tokens of a forward batch (the official code's reading);
* ``cett``        CETT: n_i = |a_i|·‖W_down[:, i]‖ < t_layer, with per-layer thresholds from one CETT value.

Inactive neurons are zeroed at the down-projection input; a neuron counts as active iff its (edited)
down-projection input is non-zero. Padding tokens (attention_mask = 0) are excluded everywhere.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import __version__
from .capture import Hooks, ffn_layers, run
from .search import Curve, CurveBuilder, around, broad_targets, check_cett, solve_increasing

METHODS = ("cett", "topk_token", "topk_layer", "fat", "zero")
MAX_TOKENS = 16384  # default tokens per forward pass = most tokens of FFN activations held per layer


class SparseStats:
    """Per-layer activity of the FFN neurons over the tokens seen by the hooks.

    ``watch`` only queues device work (no host synchronisation: it runs on every layer of every decoding
    step); the results are read back by the properties, which first call ``check`` so that NaN activations
    seen by hooks with deferred checks (``sparsify``) surface there at the latest."""

    def __init__(self, n_layers: int, d_ff: int):
        self.n_layers, self.d_ff = n_layers, d_ff
        self.check: Callable[[], None] = lambda: None  # the hooks' deferred check, set by ``_hooks``
        self.neuron_counts: torch.Tensor | None = None  # [n_layers, d_ff] active-token counts
        self.tokens = [0] * n_layers
        self._token_active: list[torch.Tensor] = []  # per batch: Σ over layers of active fraction

    def watch(self, layer: int, a: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        active = a.ne(0)
        if self.neuron_counts is None:
            self.neuron_counts = torch.zeros(self.n_layers, a.shape[1], dtype=torch.float64, device=a.device)
        self.neuron_counts[layer] += active.sum(0, dtype=torch.float64)
        self.tokens[layer] += a.shape[0]
        frac = active.float().mean(1).double()
        if layer == 0:
            self._token_active.append(frac)
        else:
            self._token_active[-1] += frac

    @property
    def layer_ratios(self) -> list[float]:
        """Fraction of active neurons per layer, averaged over tokens."""
        self.check()
        return [(self.neuron_counts[i].sum() / (self.tokens[i] * self.d_ff)).item() for i in range(self.n_layers)]

    @property
    def activation_ratio(self) -> float:
        """Mean over layers and tokens of the fraction of active neurons."""
        return float(np.mean(self.layer_ratios))

    @property
    def neuron_frequency(self) -> np.ndarray:
        """[n_layers, d_ff]: fraction of tokens on which each neuron is active."""
        self.check()
        return (self.neuron_counts / torch.tensor(self.tokens, device=self.neuron_counts.device)[:, None]).cpu().numpy()

    @property
    def token_ratios(self) -> np.ndarray:
        """Per token: fraction of active neurons averaged over layers."""
        self.check()
        return (torch.cat(self._token_active) / self.n_layers).cpu().numpy()


def _editor(model: nn.Module, method: str, value: float | Sequence[float] | None, hooks_ref: list):
    """Edit function zeroing the neurons that ``method`` calls inactive (None for dense)."""
    ffns = ffn_layers(model)
    if method == "dense" or method == "zero":
        return None
    if method == "cett":
        if len(value) != len(ffns):
            raise ValueError(f"got {len(value)} thresholds for a model with {len(ffns)} FFN layers")
        if any(math.isnan(t) or t < 0 for t in value):
            raise ValueError(f"thresholds must be non-negative numbers, got {list(value)}")
        limits = [value[i] / f.column_norms().clamp_min(1e-30) for i, f in enumerate(ffns)]

        def edit(i, a, s):  # keep n_i = |a_i|·‖W_down[:, i]‖ >= t, written |a_i| >= t / ‖W_down[:, i]‖
            return a * (a.abs() >= limits[i]).to(a.dtype)

        return edit
    if method == "fat":
        if not value >= 0:
            raise ValueError(f"FAT epsilon must be >= 0, got {value!r}")
        return lambda i, a, s: a * (s.abs() >= value).to(a.dtype)
    if not 0 < value <= 1:
        raise ValueError(f"Top-k keeps a fraction of neurons in (0, 1], got {value!r}")
    if method == "topk_token":

        def edit(i, a, s):
            k = max(1, round(value * a.shape[-1]))
            kth = s.abs().topk(k, dim=-1).values[..., -1:]
            return a * (s.abs() >= kth).to(a.dtype)

        return edit
    if method == "topk_layer":

        def edit(i, a, s):
            flat = hooks_ref[0].tokens(s.abs()).flatten().float()
            k = max(1, round(value * flat.numel()))
            kth = flat.kthvalue(flat.numel() - k + 1).values
            return a * (s.abs() >= kth).to(a.dtype)

        return edit
    raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")


def _hooks(model: nn.Module, method: str, value, defer_checks: bool = False) -> tuple[Hooks, SparseStats]:
    ffns = ffn_layers(model)
    stats = SparseStats(len(ffns), ffns[0].weight().shape[1])
    ref: list = []
    hooks = Hooks(model, edit=_editor(model, method, value, ref), watch=stats.watch, defer_checks=defer_checks)
    ref.append(hooks)
    stats.check = hooks.check
    return hooks, stats


@contextmanager
def sparsify(model: nn.Module, method: str, value: float | Sequence[float] | None = None) -> Iterator[SparseStats]:
    """Run ``model`` under one sparsification rule (``"dense"`` or one of ``METHODS``; ``value``: per-layer
    thresholds for "cett", the fraction kept for Top-k, ε for "fat", ignored for "dense"/"zero"); yields a
    SparseStats recording the activity of every pass run inside.

    Padding is excluded from the statistics and from Top-k-per-layer's ranking: a pre-hook on the model
    reads each call's 2-D ``attention_mask`` keyword and keeps its last ``seq_len`` columns, which is the
    right mask for a full forward (and for a cached step of several tokens, where the mask covers the whole
    past). A cached one-token step (mask wider than the input, or a prepared 4-D mask) is taken to be real for
    every row, as the column that ``transformers``' ``generate`` and ``evaluation.decoding`` append is all
    ones: selecting rows by a mask would make the host wait for the device on every layer of every step.

    Generation runs inside this context, so nothing here synchronises the host during a decoding step: the
    NaN/inf check of the activations is deferred (``capture.Hooks``) and raised when the context exits, or
    earlier when the statistics are read."""
    if method != "dense" and method not in METHODS:
        raise ValueError(f"method {method!r} is not one of dense, {', '.join(METHODS)}")
    if method == "cett":
        value = [float(t) for t in value]
    hooks, stats = _hooks(model, method, value, defer_checks=True)

    def set_mask(module, args, kwargs):
        mask = kwargs.get("attention_mask")
        ids = kwargs.get("input_ids", args[0] if args else None)
        cached_step = ids is not None and ids.shape[1] == 1 and mask is not None and mask.shape[-1] > 1
        if mask is None or ids is None or mask.ndim != 2 or cached_step:
            hooks.token_mask = None
        else:
            hooks.token_mask = mask[:, -ids.shape[1] :].reshape(-1).bool()

    handle = model.register_forward_pre_hook(set_mask, with_kwargs=True)
    try:
        with hooks:
            yield stats
    finally:
        handle.remove()
        hooks.token_mask = None


@contextmanager
def sparse(model: nn.Module, thresholds: Sequence[float]) -> Iterator[SparseStats]:
    """``sparsify(model, "cett", thresholds)``: every FFN neuron whose output norm |a_i|·‖W_down[:, i]‖ is
    below its layer's threshold is zeroed."""
    with sparsify(model, "cett", thresholds) as stats:
        yield stats


@dataclass
class Evaluation:
    """Loss and activity of one model on one token set under one sparsification rule."""

    loss: float
    ppl: float
    activation_ratio: float
    layer_ratios: list[float]
    neuron_frequency: np.ndarray = field(repr=False)
    token_ratios: np.ndarray = field(repr=False)
    n_tokens: int = 0


def evaluate(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    thresholds: Sequence[float] | None = None,
    batch_size: int | None = None,
    *,
    method: str | None = None,
    value: float | None = None,
    progress: bool = False,
) -> Evaluation:
    """Mean next-token loss, PPL and neuron activity of ``model`` on ``input_ids``.

    With ``thresholds`` (one per layer) neurons are zeroed by CETT-style norm thresholds; otherwise
    ``method``/``value`` pick another reading (see module doc); with neither the model runs dense and a
    neuron is active iff its activation is non-zero. ``batch_size`` = sequences per forward pass."""
    if thresholds is not None:
        method, value = "cett", [float(t) for t in thresholds]
    method = method or "dense"
    hooks, stats = _hooks(model, method, value)
    seq = input_ids.shape[-1]
    max_tokens = MAX_TOKENS if batch_size is None else batch_size * seq
    nll, count = run(model, hooks, input_ids, attention_mask, max_tokens, progress)
    if count == 0:
        raise ValueError("no token has a non-padding successor: cannot compute a next-token loss")
    loss = nll / count
    return Evaluation(
        loss,
        math.exp(loss),
        stats.activation_ratio,
        stats.layer_ratios,
        stats.neuron_frequency,
        stats.token_ratios,
        sum(stats.tokens) // len(stats.tokens),
    )


@dataclass
class CettCurves:
    """Per-layer CETT curves of one model on one token set, with the dense loss of the same pass."""

    curves: list[Curve]
    dense_loss: float
    n_tokens: int

    def thresholds(self, cett: float) -> list[float]:
        check_cett(cett)
        return [c.threshold(cett) for c in self.curves]

    def covers(self, cett: float) -> bool:
        return all(c.covers(cett) for c in self.curves)


@torch.no_grad()
def cett_curves(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    targets: Sequence[float] | None = None,
    grid_points: int = 24,
    max_tokens: int = MAX_TOKENS,
    progress: bool = False,
) -> CettCurves:
    """One dense pass that measures every layer's exact CETT at grid thresholds placed near the CETT
    values ``targets`` (default: ``grid_points`` values spread over [0, 0.98]). At most ``max_tokens``
    tokens of activations are held per layer at a time."""
    ffns = ffn_layers(model)
    targets = broad_targets(grid_points) if targets is None else list(targets)
    builders = [CurveBuilder(targets) for _ in ffns]
    weights = [f.weight() for f in ffns]
    cols = [f.column_norms() for f in ffns]

    def watch(i, a, s, y):
        builders[i].add(a, weights[i], y, cols[i])

    nll, count = run(model, Hooks(model, watch=watch), input_ids, attention_mask, max_tokens, progress)
    if count == 0:
        raise ValueError("no token has a non-padding successor: cannot compute a next-token loss")
    return CettCurves([b.curve(i) for i, b in enumerate(builders)], nll / count, builders[0].tokens)


def cett_thresholds(
    model: nn.Module,
    input_ids: torch.Tensor,
    cett: float,
    attention_mask: torch.Tensor | None = None,
    max_tokens: int = MAX_TOKENS,
) -> list[float]:
    """Per-layer thresholds (neuron-output-norm units) at which each layer's CETT equals ``cett``."""
    check_cett(cett)
    curves = cett_curves(model, input_ids, attention_mask, targets=around(cett), max_tokens=max_tokens)
    if not curves.covers(cett):  # the pilot missed: fall back to a curve over the whole range
        curves = cett_curves(model, input_ids, attention_mask, max_tokens=max_tokens)
    return curves.thresholds(cett)


@dataclass
class CettPplResult:
    """Outcome of a CETT-PPL-p% search (one model or several checkpoints searched jointly)."""

    cett: float
    thresholds: list[list[float]]
    activation_ratio: list[float]
    ppl_ratio: list[float]
    mean_ppl_ratio: float
    p: float
    forward_passes: int
    history: list[tuple[float, float]]
    converged: bool


def cett_ppl(
    models: nn.Module | Sequence[nn.Module],
    input_ids: torch.Tensor,
    p: float = 0.01,
    attention_mask: torch.Tensor | None = None,
    tol: float = 5e-4,
    grid_points: int = 24,
    max_tokens: int = MAX_TOKENS,
    progress: bool = False,
) -> CettPplResult:
    """CETT-PPL-p%: the CETT value at which the (mean over ``models``) PPL ratio sparse/dense is 1 + p,
    to within ``tol`` in PPL-ratio units. One dense pass per model measures the CETT curves and the dense
    loss; each search step is one sparse pass per model."""
    if not (isinstance(p, (int, float)) and p > 0):
        raise ValueError(f"p must be > 0 (a PPL increase, 0.01 for 1%), got {p!r}")
    models = [models] if isinstance(models, nn.Module) else list(models)
    curves = [
        cett_curves(m, input_ids, attention_mask, grid_points=grid_points, max_tokens=max_tokens, progress=progress)
        for m in models
    ]
    evals: dict[float, list[Evaluation]] = {}

    def mean_ratio(c: float) -> float:
        evals[c] = [
            evaluate(
                m,
                input_ids,
                attention_mask,
                cv.thresholds(c),
                max_tokens // input_ids.shape[-1] or 1,
                progress=progress,
            )
            for m, cv in zip(models, curves)
        ]
        return float(np.mean([math.exp(e.loss - cv.dense_loss) for e, cv in zip(evals[c], curves)]))

    root = solve_increasing(mean_ratio, 1.0 + p, tol)
    final = evals[root.x]
    ratios = [math.exp(e.loss - cv.dense_loss) for e, cv in zip(final, curves)]
    return CettPplResult(
        root.x,
        [cv.thresholds(root.x) for cv in curves],
        [e.activation_ratio for e in final],
        ratios,
        root.value,
        p,
        len(models) * (1 + root.evaluations),
        root.history,
        root.converged,
    )


def pareto(
    model: nn.Module,
    input_ids: torch.Tensor,
    method: str,
    values: Sequence[float],
    attention_mask: torch.Tensor | None = None,
    max_tokens: int = MAX_TOKENS,
    dense: Evaluation | None = None,
) -> pd.DataFrame:
    """Activation ratio and PPL for each value of one method (columns: method, value, activation_ratio,
    ppl, ppl_ratio). ``values``: CETT values for "cett", fractions kept for Top-k, ε for "fat";
    ignored for "zero" (one row). Pass ``dense`` (the dense ``evaluate`` on the same tokens) to save a pass."""
    if method not in METHODS:
        raise ValueError(f"method {method!r} is not one of {', '.join(METHODS)}")
    batch = max(1, max_tokens // input_ids.shape[-1])
    dense = dense or evaluate(model, input_ids, attention_mask, batch_size=batch)
    curves = cett_curves(model, input_ids, attention_mask, max_tokens=max_tokens) if method == "cett" else None
    rows = []
    for v in [0.0] if method == "zero" else values:
        if method == "cett":
            e = evaluate(model, input_ids, attention_mask, curves.thresholds(v), batch)
        elif method == "zero":
            e = dense
        else:
            e = evaluate(model, input_ids, attention_mask, batch_size=batch, method=method, value=v)
        rows.append(
            dict(
                method=method,
                value=float(v),
                activation_ratio=e.activation_ratio,
                ppl=e.ppl,
                ppl_ratio=e.ppl / dense.ppl,
            )
        )
    return pd.DataFrame(rows)


def data_hash(input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> str:
    """Short SHA-256 of the token ids (and mask) a result was computed on."""
    h = hashlib.sha256(input_ids.cpu().numpy().astype(np.int64).tobytes())
    if attention_mask is not None:
        h.update(attention_mask.cpu().numpy().astype(np.int8).tobytes())
    return h.hexdigest()[:16]


@dataclass
class ThresholdSet:
    """Per-layer thresholds with their provenance; save/load as JSON and apply with ``sparse``/``evaluate``."""

    model: str
    metric: str
    target: float
    thresholds: list[float]
    n_tokens: int
    data_hash: str
    version: str = __version__

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(asdict(self), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> ThresholdSet:
        return cls(**json.loads(Path(path).read_text()))


def model_identity(model: nn.Module) -> str:
    """A readable identity: config name/path, type, layers and FFN width."""
    cfg = model.config
    ffns = ffn_layers(model)
    name = getattr(cfg, "_name_or_path", "") or "unnamed"
    return f"{name}:{cfg.model_type}:L{len(ffns)}:dff{ffns[0].weight().shape[1]}"
