"""One training run's recipe (``TrainConfig``) and the recipe a run recorded (``recorded_config``).

Kept apart from the trainer so that reading a run's recipe needs neither torch nor the trainer: the run-folder
format (``runs``) judges every run's stability after its own warm-up, and the trainer writes run folders through
``runs``, so the recipe must sit below both.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass
class TrainConfig:
    """One training run's recipe; steps, warm-up and checkpoints are derived from ``tokens``."""

    tokens: int  # training tokens (rounded up to whole steps)
    batch_size: int = 64  # sequences per step
    seq_len: int = 1024
    lr: float = 0.01  # peak lr (embeddings/norms); hidden matrices get lr / width_mult
    warmup_frac: float = 0.01
    warmup_tokens: int = 0  # if > 0, the warm-up length in tokens instead of warmup_frac (pilots compare lengths)
    decay_frac: float = 0.0  # optional linear decay phase at the end (0 = stable to the end)
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.95)
    grad_clip: float = 1.0
    n_checkpoints: int = 30  # evenly spaced over the stable phase
    eval_tokens: int = 2**18  # validation tokens for the loss at each checkpoint
    log_every: int = 25
    seed: int = 0
    compile: bool = True  # only on CUDA
    compile_mode: str = "default"  # torch.compile mode: default | max-autotune-no-cudagraphs | reduce-overhead
    fused: bool = True  # fused AdamW kernel (CUDA only); False = the foreach implementation
    micro_batch: int = 0  # sequences per forward/backward on one rank; 0 = its whole share (no accumulation)
    loss_chunk: int = 0  # tokens per chunk of chunked_cross_entropy; 0 = the whole batch's logits at once
    causal_attention: bool = False  # SDPA with is_causal and no mask tensor (use_causal_attention)

    @property
    def tokens_per_step(self) -> int:
        return self.batch_size * self.seq_len

    @property
    def steps(self) -> int:
        return math.ceil(self.tokens / self.tokens_per_step)

    @property
    def warmup_steps(self) -> int:
        if self.warmup_tokens:
            return min(self.steps, math.ceil(self.warmup_tokens / self.tokens_per_step))
        return max(1, round(self.warmup_frac * self.steps))

    @property
    def decay_steps(self) -> int:
        return round(self.decay_frac * self.steps)

    @property
    def stable_end(self) -> int:
        """The last step of the stable phase (``steps`` when there is no decay phase)."""
        return self.steps - self.decay_steps

    @property
    def checkpoint_steps(self) -> list[int]:
        """Steps after which weights are saved: evenly over the stable phase, the last at its end, and after a
        decay phase also the run's last step. The paper measures sparsity on stable-phase checkpoints and scores
        benchmarks after the decay: the stable ones carry the laws, the last one is what the evaluation reads."""
        first, last = self.warmup_steps, self.stable_end
        n = min(self.n_checkpoints, last - first + 1)
        stable = {int(round(s)) for s in np.linspace(first, last, n)} - {0}
        return sorted(stable | ({self.steps} if self.decay_steps else set()))


def recorded_config(train: dict) -> TrainConfig:
    """The ``TrainConfig`` a run trained with, from the ``train`` dict its config.json recorded. Older runs
    have no ``warmup_tokens`` and none of the later options: TrainConfig's defaults stand in for what they did
    not record, which is what those runs did. Keys this TrainConfig does not know are ignored; JSON stores
    ``betas`` as a list."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    return TrainConfig(**{k: tuple(v) if k == "betas" else v for k, v in train.items() if k in fields})
