"""The item types every downstream task is reduced to, and the task record that carries them.

Loaders (``evaluation.tasks``) turn each benchmark's files into these; the scorer (``evaluation.engine``)
only ever sees these. Keeping the two apart means a new benchmark needs a loader and nothing else, and
the scorer can be checked against lm-evaluation-harness on items built by hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Choice:
    """Multiple choice by log-likelihood: score ``context + continuation`` for each continuation.

    ``acc`` picks the largest summed log-likelihood; ``acc_norm`` divides by the continuation's length in
    UTF-8 bytes first (lm-evaluation-harness's convention). BLiMP pairs use an empty context.
    """

    id: str
    context: str
    continuations: tuple[str, ...]
    gold: int


@dataclass(frozen=True)
class Cloze:
    """Last-word prediction (LAMBADA): correct iff greedy decoding reproduces every token of ``target``."""

    id: str
    context: str
    target: str


@dataclass(frozen=True)
class Generate:
    """Greedy generation scored against references.

    ``scorer``: ``f1_em`` (SQuAD-style token F1 and exact match after normalisation), ``number`` (exact
    match of the last number in the answer), ``exact`` (exact match of the stripped answer).
    """

    id: str
    prompt: str
    references: tuple[str, ...]
    scorer: str
    stop: tuple[str, ...] = ("\n\n",)
    max_new_tokens: int = 32


@dataclass(frozen=True)
class Program:
    """Code generation scored by running ``completion + test`` in a subprocess (pass@1, greedy)."""

    id: str
    prompt: str
    test: str
    stop: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
    max_new_tokens: int = 256


Item = Choice | Cloze | Generate | Program


@dataclass
class Task:
    """One benchmark as the suite sees it.

    ``group``: commonsense | reading | complex | tiny (tasks a small model does above chance).
    ``metrics``: the metric names this task reports, the first being the one the paper averages.
    ``chance``: the score of random guessing on the first metric (0 for generation tasks).
    """

    name: str
    group: str
    metrics: tuple[str, ...]
    chance: float
    shots: int
    items: list[Item] = field(repr=False)
