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
    ``contexts``, when given, is one context per continuation instead of ``context``: WinoGrande's partial
    scoring puts each option into the prefix and scores the shared rest of the sentence after it.
    """

    id: str
    context: str
    continuations: tuple[str, ...]
    gold: int
    contexts: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.contexts and len(self.contexts) != len(self.continuations):
            raise ValueError(f"{self.id}: {len(self.contexts)} contexts for {len(self.continuations)} continuations")

    def pairs(self) -> list[tuple[str, str]]:
        """The (context, continuation) pairs to score, one per option."""
        return list(zip(self.contexts or [self.context] * len(self.continuations), self.continuations))


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
    """Code generation scored by running ``program(completion)`` in a subprocess (pass@1, greedy).

    ``prefix`` is the code the completion continues: HumanEval's prompt (the signature and docstring), empty
    for MBPP, whose prompt is exemplars and whose completion is a whole function.
    """

    id: str
    prompt: str
    test: str
    stop: tuple[str, ...] = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
    max_new_tokens: int = 256
    prefix: str = ""

    def program(self, completion: str) -> str:
        """The source to run: the prefix, the generated completion, then the tests."""
        return f"{self.prefix}{completion}\n{self.test}"


Item = Choice | Cloze | Generate | Program


@dataclass
class Task:
    """One benchmark as the suite sees it.

    ``group``: commonsense | reading | complex | tiny (tasks a small model does above chance).
    ``metrics``: the metric names this task reports, the first being the one the paper averages.
    ``chance``: the score of random guessing on the first metric (``tasks.chance`` says how it is counted).
    """

    name: str
    group: str
    metrics: tuple[str, ...]
    chance: float
    shots: int
    items: list[Item] = field(repr=False)
