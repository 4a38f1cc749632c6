"""The task registry: every benchmark the suite can score, by name, with its group, metrics and shots.

``load(name)`` reads the pinned files (``data``) through the task's loader (``loaders`` for the zero-shot
sets, ``reasoning`` for the paper's complex group) and returns a ``Task``. Groups follow the paper:
commonsense (C.R.), reading (R.C.), complex, and tiny: tasks a small model does above chance (BLiMP's 67
paradigms, ARC-Easy, OpenBookQA). SQuAD v1.1 is a reading task outside the paper's tables, and AGIEval's
MATH cloze set is kept apart from the multiple-choice AGIEval score; ``AVERAGES`` says which scores the
paper's averages take.

BLiMP is one task per paradigm (``blimp_<paradigm>``, family ``BLiMP``), so that ``eval.csv`` carries the
per-paradigm table directly; the BLiMP score is the mean of the 67 paradigm accuracies (1,000 pairs each).
MMLU, BBH and AGIEval are one task each, scored over all their items (subject ids prefix the item ids).

Metric names the scorer must produce: Choice ``acc`` (and ``acc_norm``), Cloze ``acc``, Generate ``f1`` and
``em`` (scorer ``f1_em``) or ``acc`` (``number``, ``exact``), Program ``pass@1``. ``Task.chance`` is the
first metric's random-guess score averaged over the loaded items (``chance``): 1/(number of options) for
Choice items, a uniform guess among a subtask's answers for exact-match generation, 0 otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from . import data, loaders, reasoning
from .items import Choice, Generate, Item, Task

GROUPS = ("commonsense", "reading", "complex", "tiny")

BLIMP_PARADIGMS = tuple(
    """adjunct_island anaphor_gender_agreement anaphor_number_agreement animate_subject_passive
    animate_subject_trans causative complex_NP_island
    coordinate_structure_constraint_complex_left_branch
    coordinate_structure_constraint_object_extraction determiner_noun_agreement_1
    determiner_noun_agreement_2 determiner_noun_agreement_irregular_1
    determiner_noun_agreement_irregular_2 determiner_noun_agreement_with_adj_2
    determiner_noun_agreement_with_adj_irregular_1 determiner_noun_agreement_with_adj_irregular_2
    determiner_noun_agreement_with_adjective_1 distractor_agreement_relational_noun
    distractor_agreement_relative_clause drop_argument ellipsis_n_bar_1 ellipsis_n_bar_2
    existential_there_object_raising existential_there_quantifiers_1 existential_there_quantifiers_2
    existential_there_subject_raising expletive_it_object_raising inchoative intransitive
    irregular_past_participle_adjectives irregular_past_participle_verbs
    irregular_plural_subject_verb_agreement_1 irregular_plural_subject_verb_agreement_2
    left_branch_island_echo_question left_branch_island_simple_question
    matrix_question_npi_licensor_present npi_present_1 npi_present_2 only_npi_licensor_present
    only_npi_scope passive_1 passive_2 principle_A_c_command principle_A_case_1 principle_A_case_2
    principle_A_domain_1 principle_A_domain_2 principle_A_domain_3 principle_A_reconstruction
    regular_plural_subject_verb_agreement_1 regular_plural_subject_verb_agreement_2
    sentential_negation_npi_licensor_present sentential_negation_npi_scope sentential_subject_island
    superlative_quantifiers_1 superlative_quantifiers_2 tough_vs_raising_1 tough_vs_raising_2 transitive
    wh_island wh_questions_object_gap wh_questions_subject_gap wh_questions_subject_gap_long_distance
    wh_vs_that_no_gap wh_vs_that_no_gap_long_distance wh_vs_that_with_gap
    wh_vs_that_with_gap_long_distance""".split()
)


@dataclass(frozen=True)
class Spec:
    """How to build one task: its loader, group, metrics (the first is the one averaged), shots, and the
    family it is averaged within (itself, or ``BLiMP`` for a paradigm)."""

    loader: Callable[..., list[Item]]
    group: str
    metrics: tuple[str, ...]
    shots: int
    family: str = ""


MC = ("acc", "acc_norm")

TASKS: dict[str, Spec] = {
    "PIQA": Spec(loaders.piqa, "commonsense", MC, 0),
    "SIQA": Spec(loaders.siqa, "commonsense", MC, 0),
    "HellaSwag": Spec(loaders.hellaswag, "commonsense", MC, 0),
    "WinoGrande": Spec(loaders.winogrande, "commonsense", ("acc",), 0),
    "COPA": Spec(loaders.copa, "commonsense", MC, 0),
    "BoolQ": Spec(loaders.boolq, "reading", ("acc",), 0),
    "LAMBADA": Spec(loaders.lambada, "reading", ("acc",), 0),
    "TyDiQA": Spec(loaders.tydiqa, "reading", ("f1", "em"), 0),
    "SQuAD": Spec(loaders.squad, "reading", ("f1", "em"), 0),
    "AGIEval": Spec(reasoning.agieval, "complex", MC, 0),
    "AGIEval-math": Spec(reasoning.agieval_math, "complex", ("acc",), 0, "AGIEval"),
    "MMLU": Spec(reasoning.mmlu, "complex", ("acc",), 5),
    "BBH": Spec(reasoning.bbh, "complex", ("acc",), 3),
    "GSM8K": Spec(reasoning.gsm8k, "complex", ("acc",), reasoning.GSM8K_SHOTS),
    "HumanEval": Spec(reasoning.humaneval, "complex", ("pass@1",), 0),
    "MBPP": Spec(reasoning.mbpp, "complex", ("pass@1",), len(reasoning.MBPP_SHOT_IDS)),
    "ARC-Easy": Spec(loaders.arc_easy, "tiny", MC, 0),
    "OpenBookQA": Spec(loaders.openbookqa, "tiny", MC, 0),
    **{f"blimp_{p}": Spec(loaders.blimp(p), "tiny", ("acc",), 0, "BLiMP") for p in BLIMP_PARADIGMS},
}

# The paper's group averages (App. H, UltraEval): (task, metric) pairs averaged with equal weight.
AVERAGES: dict[str, tuple[tuple[str, str], ...]] = {
    "C.R.": tuple((t, "acc") for t in ("PIQA", "SIQA", "HellaSwag", "WinoGrande", "COPA")),
    "R.C.": (("BoolQ", "acc"), ("LAMBADA", "acc"), ("TyDiQA", "f1"), ("TyDiQA", "em")),
    "Complex": (
        ("AGIEval", "acc"),
        ("HumanEval", "pass@1"),
        ("MBPP", "pass@1"),
        ("GSM8K", "acc"),
        ("MMLU", "acc"),
        ("BBH", "acc"),
    ),
}


def names(group: str | None = None) -> list[str]:
    """Task names in registry order, all of them or those of one group."""
    if group is not None and group not in GROUPS:
        raise ValueError(f"unknown group {group!r}; choose one of {', '.join(GROUPS)}")
    return [n for n, s in TASKS.items() if group is None or s.group == group]


def family(name: str) -> str:
    """The score a task is averaged into (``BLiMP`` for a paradigm, else the task itself)."""
    return _spec(name).family or name


def _spec(name: str) -> Spec:
    if name not in TASKS:
        shown = [n for n in TASKS if not n.startswith("blimp_")]
        raise ValueError(
            f"unknown task {name!r}; valid names: {', '.join(shown)}, and blimp_<paradigm> for "
            f"the {len(BLIMP_PARADIGMS)} BLiMP paradigms ({BLIMP_PARADIGMS[0]}, …)"
        )
    return TASKS[name]


def chance(items: list[Item]) -> float:
    """Random guessing's expected first-metric score, averaged over the items.

    A Choice item: 1/(options). An exact-match generation item (scorers ``exact`` and ``number``): 1/(distinct
    answers among the items of its subtask, the part of its id before ``/``), a uniform guess among the answers
    the subtask uses; without it, BBH's true/false and yes/no subtasks would count a model that has learnt only
    the answer format as far above chance. Other items (F1 scoring, programs, cloze words): 0."""
    answers: dict[str, set] = {}
    for it in items:
        if isinstance(it, Generate) and it.scorer in ("exact", "number"):
            answers.setdefault(it.id.split("/")[0], set()).add(it.references[0])
    guesses = [
        1 / len(it.continuations)
        if isinstance(it, Choice)
        else 1 / len(answers[it.id.split("/")[0]])
        if isinstance(it, Generate) and it.scorer in ("exact", "number")
        else 0.0
        for it in items
    ]
    return math.fsum(guesses) / len(items) if items else 0.0  # fsum: the same value on every Python version


def load(name: str, limit: int | None = None) -> Task:
    """The task ``name`` with its items in file order (the first ``limit`` of them if given)."""
    spec = _spec(name)
    if limit is not None and limit < 1:
        raise ValueError(f"limit must be a positive number of items or None, not {limit}")
    items = spec.loader(data.path)[:limit]  # looked up now, so a test can point it at synthetic files
    return Task(name, spec.group, spec.metrics, chance(items), spec.shots, items)
