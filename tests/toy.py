"""Toy corpus, MoE shape and training recipe shared by the trainer and probe tests (CPU, seconds)."""

import numpy as np

from sparsing_lib.models import ModelSpec
from sparsing_lib.train import TrainConfig

VOCAB = 64


TINY_MOE = ModelSpec("tiny-moe", 32, 2, kind="moe", head_dim=16, n_experts=8, top_k=2)


def corpus(n=40_000, seed=0):
    """Token ids with learnable structure: a noisy repeating ramp."""
    rng = np.random.default_rng(seed)
    ids = (np.arange(n) * 7 + rng.integers(0, 3, n)) % VOCAB
    return ids.astype(np.uint16)


def small_cfg(**kw):
    base = dict(
        tokens=60 * 8 * 32,
        batch_size=8,
        seq_len=32,
        n_checkpoints=25,
        eval_tokens=1024,
        log_every=5,
        compile=False,
        lr=0.01,
    )
    return TrainConfig(**(base | kw))
