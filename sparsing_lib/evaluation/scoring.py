"""Answer-matching scores for generated text: SQuAD-style F1/EM, GSM8K's final number, exact match.

The normalisation is SQuAD v1.1's (lower case, drop punctuation, the articles a/an/the, and collapse
white space), so F1 and EM mean what the reading-comprehension literature means by them; each score is the
maximum over the references, as in SQuAD's evaluation with several gold answers.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Sequence

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans("", "", string.punctuation)
_NUMBER = re.compile(r"-?[\d,]*\.?\d+")


def normalize_answer(text: str) -> str:
    """Lower case, remove punctuation and articles, collapse white space."""
    return " ".join(_ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split())


def token_f1(prediction: str, reference: str) -> float:
    """F1 of the bags of normalised tokens (0 when either side is empty, unless both are)."""
    pred, ref = normalize_answer(prediction).split(), normalize_answer(reference).split()
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def f1_em(prediction: str, references: Sequence[str]) -> tuple[float, float]:
    """(max token F1, max normalised exact match) over the references."""
    f1 = max(token_f1(prediction, r) for r in references)
    em = max(float(normalize_answer(prediction) == normalize_answer(r)) for r in references)
    return f1, em


def last_number(text: str) -> str | None:
    """The last number written in ``text`` with thousands separators removed (GSM8K's answer convention),
    e.g. "so she pays $1,250.50." -> "1250.50"; None if there is none."""
    found = _NUMBER.findall(text)
    if not found:
        return None
    return found[-1].replace(",", "")


def _same_number(a: str, b: str) -> bool:
    try:
        return float(a) == float(b)
    except ValueError:
        return a == b


def number_match(prediction: str, references: Sequence[str]) -> float:
    """1 if the last number of the prediction equals the last number of any reference (as numbers: 5 == 5.0)."""
    got = last_number(prediction)
    if got is None:
        return 0.0
    return float(any((want := last_number(r)) is not None and _same_number(got, want) for r in references))


def exact_match(prediction: str, references: Sequence[str]) -> float:
    """1 if the stripped prediction equals any stripped reference."""
    return float(any(prediction.strip() == r.strip() for r in references))


def score(scorer: str, prediction: str, references: Sequence[str]) -> dict[str, float]:
    """The metrics a Generate item's ``scorer`` reports: f1_em -> {f1, em}; number and exact -> {acc}."""
    if scorer == "f1_em":
        f1, em = f1_em(prediction, references)
        return {"f1": f1, "em": em}
    if scorer == "number":
        return {"acc": number_match(prediction, references)}
    if scorer == "exact":
        return {"acc": exact_match(prediction, references)}
    raise ValueError(f"scorer {scorer!r} is not one of f1_em, number, exact")
