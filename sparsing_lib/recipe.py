"""The mini family's training recipe: the paper's own scale rules for batch size and warm-up, carried down.

muP lets one learning rate serve every width, but the paper does not keep everything else fixed: its batch
grows with the model (Table 3, 0.33M tokens at 0.1B to 2.1M at 2.4B) and its warm-ups (the released
training configurations) last about four tokens per non-embedding parameter. Our first recipe kept a fixed
64-sequence batch and a warm-up of 1 % of the steps at every scale, which at 30 tokens per parameter gave
mini-448x8 0.3 warm-up tokens per parameter, and that run degraded; the pilots (``sparsing_lib.pilots``)
showed that a longer warm-up or a larger batch each remove the rise. This module applies both of the
paper's rules at every scale, so that no scale is trained differently from the others:

* batch tokens ``B(N) = B0 · (N / 1e8)^beta``, fitted by least squares in log-log to Table 3's six scales
  and rounded to whole sequences (at least one);
* warm-up tokens ``W · N``, with ``W`` the median over the paper's scales of warm-up iterations × batch
  tokens / non-embedding parameters.

Both are computed from the committed paper files (``paper.table3``, ``paper.warmup``) when first asked for.
Below the paper's smallest scale the batch rule is an extrapolation (our scales are 4 to 120 times smaller),
and carried all the way down it gives mini-160x3 18 sequences a step. Trained so, at the same tokens and
learning rate, that model ended 0.25 (ReLU) and 0.34 (SiLU) nats of validation loss behind its twin of the
first recipe's 64 sequences (``figures.recipe_change``, ``data/replaced``), far beyond the 0.01 nats a rerun
moves. So the batch never falls below ``MIN_BATCH`` sequences, the first recipe's batch: one rule for every
scale, under which the batch grows with the model wherever the paper's rule asks for more than 64.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, replace

import numpy as np

from . import paper
from .train import TrainConfig


@dataclass(frozen=True)
class Rules:
    """The paper's scale rules: batch tokens ``b0 · (N / 1e8)^beta`` and ``warmup_per_param`` tokens of warm-up
    per non-embedding parameter."""

    b0: float
    beta: float
    warmup_per_param: float

    def batch_tokens(self, n_params: float) -> float:
        return self.b0 * (n_params / 1e8) ** self.beta

    def warmup_tokens(self, n_params: float) -> int:
        return round(self.warmup_per_param * n_params)


@functools.cache
def paper_rules() -> Rules:
    """The rules fitted to the paper's Table 3 batch sizes and its released warm-up lengths."""
    t3 = paper.table3()
    beta, log_b0 = np.polyfit(np.log(t3["non_embedding_params"] / 1e8), np.log(t3["batch_size"]), 1)
    w = t3.merge(paper.warmup(), on="scale")
    per_param = float(np.median(w["warmup_iters"] * w["batch_size"] / w["non_embedding_params"]))
    return Rules(float(np.exp(log_b0)), float(beta), per_param)


MIN_BATCH = 64  # sequences: the first recipe's batch, below which the rule's extrapolation is not followed


def apply_rules(cfg: TrainConfig, n_params: int, rules: Rules | None = None, min_batch: int = MIN_BATCH) -> TrainConfig:
    """``cfg`` with the batch (whole sequences of ``cfg.seq_len``, at least ``min_batch``) and the warm-up the
    rules give a model of ``n_params`` non-embedding parameters; everything else, the learning rate included,
    unchanged."""
    if n_params <= 0:
        raise ValueError(f"n_params must be a positive parameter count, not {n_params}")
    rules = rules or paper_rules()
    batch = max(min_batch, 1, round(rules.batch_tokens(n_params) / cfg.seq_len))
    return replace(cfg, batch_size=batch, warmup_tokens=rules.warmup_tokens(n_params))
