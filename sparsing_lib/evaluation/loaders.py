"""Zero-shot benchmarks as items: one reader per file format, prompts in lm-evaluation-harness 0.4's form.

Each public loader takes ``path``, the function that resolves a manifest file (``data.path`` by default;
tests pass their own, pointing at synthetic files with the real names), and returns the items in file
order. The prompt formats are conventions of lm-evaluation-harness 0.4 stated as facts, not its code.
Continuations start with a space (lm-eval's target delimiter) except BLiMP's whole sentences; ``|``
separates the options:

==========  ================================================  ============================================
task        context                                           continuations (gold)
==========  ================================================  ============================================
PIQA        ``Question: {goal}\\nAnswer:``                     `` {sol1}`` | `` {sol2}`` (valid-labels.lst)
SIQA        ``Q: {context} {question}\\nA:``                   `` {answerA..C}`` (dev-labels.lst, 1-based)
HellaSwag   ``{activity}: {ctx}`` (see ``hellaswag``)          `` {ending}`` × 4 (line 2)
WinoGrande  option-filled prefix, one per option               `` {continuation}`` after each (``gold``)
COPA        premise less its final ``.`` + `` because`` /      `` {choice}`` with a lower-case first letter
            `` therefore`` (question cause / effect)
BoolQ       ``{passage}\\nQuestion: {question}?\\nAnswer:``     `` no`` | `` yes`` (label true = 1)
LAMBADA     the text up to its last space                     (Cloze) `` {last word}``
ARC-Easy    ``Question: {stem}\\nAnswer:``                     `` {choice text}`` (answerKey)
OpenBookQA  ``{question stem}``                               `` {choice text}`` (Answer Key)
BLiMP       empty                                             ``{sentence_good}`` | ``{sentence_bad}`` (0)
==========  ================================================  ============================================

TyDiQA-GoldP and SQuAD (Generate, ``f1_em``) use a prompt in the style of lm-eval's SQuAD v2 task (its exact
wording was not checked against lm-eval's source here),
``Title: {title}\\n\\nBackground: {context}\\n\\nQuestion: {question}\\n\\nAnswer:``, greedy up to the first
newline, scored against every distinct annotated answer.
"""

from __future__ import annotations

import bz2
import csv
import json
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from . import data
from .items import Choice, Cloze, Generate

PathFn = Callable[..., Path]


def read_jsonl(file: Path) -> list[dict]:
    with open(file, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _lines(file: Path) -> list[str]:
    return Path(file).read_text(encoding="utf-8").split()


def _aligned(rows: list, labels: list, what: str) -> None:
    if len(rows) != len(labels):
        raise ValueError(f"{what}: {len(rows)} items but {len(labels)} labels; the files are not a pair")


def piqa(path: PathFn = data.path) -> list[Choice]:
    """PIQA validation: two solutions to a goal; gold from the separate labels file."""
    rows, labels = read_jsonl(path("PIQA")), _lines(path("PIQA", "labels"))
    _aligned(rows, labels, "PIQA")
    return [
        Choice(f"piqa/{i}", f"Question: {r['goal']}\nAnswer:", (f" {r['sol1']}", f" {r['sol2']}"), int(g))
        for i, (r, g) in enumerate(zip(rows, labels))
    ]


def siqa(path: PathFn = data.path) -> list[Choice]:
    """Social IQa dev: three answers; the labels file is 1-based."""
    rows, labels = read_jsonl(path("SIQA")), _lines(path("SIQA", "labels"))
    _aligned(rows, labels, "SIQA")
    return [
        Choice(
            f"siqa/{i}",
            f"Q: {r['context']} {r['question']}\nA:",
            tuple(f" {r[k]}" for k in ("answerA", "answerB", "answerC")),
            int(g) - 1,
        )
        for i, (r, g) in enumerate(zip(rows, labels))
    ]


def _capitalise_last_clause(ctx: str) -> str:
    """Upper-case the first letter after the context's last ``". "`` when it is lower case.

    lm-eval builds the context as ``ctx_a + " " + ctx_b.capitalize()``; the six-line file keeps only the
    joined ``ctx``, whose trailing ``ctx_b`` is a lower-case clause after the last sentence. Capitalising
    that clause's first letter recovers lm-eval's text in that case; ``capitalize()`` would also lower-case
    the rest of ``ctx_b``, which is not recoverable and rarely matters.
    """
    cut = ctx.rfind(". ") + 2
    if cut >= 2 and cut < len(ctx) and ctx[cut].islower():
        return ctx[:cut] + ctx[cut].upper() + ctx[cut + 1 :]
    return ctx


def hellaswag(path: PathFn = data.path) -> list[Choice]:
    """HellaSwag validation from the six-line text file (context, gold, four endings per item).

    The file already applies lm-eval's cleaning (``[title]`` to ``". "``, other bracketed tags removed,
    double spaces collapsed); ``_capitalise_last_clause`` restores lm-eval's capitalised ``ctx_b``.
    """
    with bz2.open(path("HellaSwag"), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    lines = lines[: len(lines) - len(lines) % 6]
    return [
        Choice(
            f"hellaswag/{i // 6}",
            _capitalise_last_clause(lines[i]),
            tuple(f" {e}" for e in lines[i + 2 : i + 6]),
            int(lines[i + 1]),
        )
        for i in range(0, len(lines), 6)
    ]


def winogrande(path: PathFn = data.path) -> list[Choice]:
    """WinoGrande dev (llm-foundry's conversion): lm-eval's partial scoring, the shared continuation scored
    after each option-filled prefix (``Choice.contexts``)."""
    out = []
    for i, r in enumerate(read_jsonl(path("WinoGrande"))):
        options = tuple(r["context_options"])
        cont = f" {r['continuation'].strip()}"
        out.append(Choice(f"winogrande/{i}", "", (cont,) * len(options), int(r["gold"]), contexts=options))
    return out


def copa(path: PathFn = data.path) -> list[Choice]:
    """COPA validation: the premise becomes a sentence opening joined by the question's connector."""
    connector = {"cause": " because", "effect": " therefore"}
    out = []
    for r in read_jsonl(path("COPA")):
        premise = r["premise"].strip()
        premise = premise[:-1] if premise.endswith(".") else premise
        options = tuple(f" {c[0].lower()}{c[1:]}" for c in (r["choice1"], r["choice2"]))
        out.append(Choice(f"copa/{r['idx']}", premise + connector[r["question"]], options, int(r["label"])))
    return out


def _truth(label: bool | str) -> int:
    """BoolQ's label as 1 (yes) or 0 (no): a JSON boolean, or the strings "true"/"false" of this copy."""
    if isinstance(label, str) and label.lower() in ("true", "false"):
        return int(label.lower() == "true")
    if isinstance(label, bool):
        return int(label)
    raise ValueError(f"BoolQ: label {label!r} is neither true nor false")


def boolq(path: PathFn = data.path) -> list[Choice]:
    """BoolQ validation: a passage, a yes/no question, options ``no`` then ``yes`` (labels are strings here)."""
    return [
        Choice(
            f"boolq/{r['idx']}",
            f"{r['passage']}\nQuestion: {r['question']}?\nAnswer:",
            (" no", " yes"),
            _truth(r["label"]),
        )
        for r in read_jsonl(path("BoolQ"))
    ]


def lambada(path: PathFn = data.path) -> list[Cloze]:
    """LAMBADA (OpenAI's test file): predict the last space-separated word of each passage."""
    out = []
    for i, r in enumerate(read_jsonl(path("LAMBADA"))):
        context, word = r["text"].rsplit(" ", 1)
        out.append(Cloze(f"lambada/{i}", context, f" {word}"))
    return out


def _squad(file: Path, tag: str) -> list[Generate]:
    """Questions of a SQuAD-format file in file order, with every distinct annotated answer."""
    out = []
    for article in json.loads(Path(file).read_text(encoding="utf-8"))["data"]:
        for para in article["paragraphs"]:
            for qa in para["qas"]:
                refs = tuple(dict.fromkeys(a["text"] for a in qa["answers"]))
                prompt = (
                    f"Title: {article['title']}\n\nBackground: {para['context']}\n\n"
                    f"Question: {qa['question']}\n\nAnswer:"
                )
                out.append(Generate(f"{tag}/{qa['id']}", prompt, refs, "f1_em", stop=("\n",)))
    return out


def tydiqa(path: PathFn = data.path) -> list[Generate]:
    """TyDiQA-GoldP, English dev questions (SQuAD format)."""
    return _squad(path("TyDiQA-GoldP-en"), "tydiqa")


def squad(path: PathFn = data.path) -> list[Generate]:
    """SQuAD v1.1 dev."""
    return _squad(path("SQuAD-v1.1"), "squad")


def arc_easy(path: PathFn = data.path) -> list[Choice]:
    """ARC-Easy test (original jsonl): gold is the position of ``answerKey`` among the choice labels."""
    out = []
    for r in read_jsonl(path("ARC-Easy")):
        choices = r["question"]["choices"]
        labels = [c["label"] for c in choices]
        out.append(
            Choice(
                f"arc_easy/{r['id']}",
                f"Question: {r['question']['stem']}\nAnswer:",
                tuple(f" {c['text']}" for c in choices),
                labels.index(r["answerKey"]),
            )
        )
    return out


def _obqa_choices(text: str) -> list[tuple[str, str]]:
    """``(A) x (B) y ...`` as [(label, text)], splitting only at the expected next label."""
    out, rest = [], text.strip()
    for k in range(26):
        label, nxt = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[k : k + 2]
        if not rest.startswith(f"({label}) "):
            break
        rest = rest[len(label) + 3 :]
        end = rest.find(f" ({nxt}) ") if nxt else -1
        out.append((label, rest if end < 0 else rest[:end]))
        rest = "" if end < 0 else rest[end + 1 :]
    if not out or rest:
        raise ValueError(f"OpenBookQA: cannot split the choices {text!r}")
    return out


def openbookqa(path: PathFn = data.path) -> list[Choice]:
    """OpenBookQA main test (tsv): the question stem, then each choice text."""
    with open(path("OpenBookQA"), encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t"))
    out = []
    for r in rows:
        choices = _obqa_choices(r["Choices"])
        gold = [label for label, _ in choices].index(r["Answer Key"].strip())
        out.append(Choice(f"openbookqa/{r['ID']}", r["Question Stem"], tuple(f" {t}" for _, t in choices), gold))
    return out


def blimp_pairs(paradigm: str, path: PathFn = data.path) -> list[Choice]:
    """One BLiMP paradigm (``data/<paradigm>.jsonl`` inside BLiMP.zip): the good and the bad sentence as
    whole-sentence continuations of an empty context; gold is always 0, the good sentence."""
    with zipfile.ZipFile(path("BLiMP")) as z:
        lines = z.read(f"data/{paradigm}.jsonl").decode("utf-8").splitlines()
    rows = (json.loads(line) for line in lines if line.strip())
    return [Choice(f"{paradigm}/{r['pairID']}", "", (r["sentence_good"], r["sentence_bad"]), 0) for r in rows]


def blimp(paradigm: str) -> Callable[..., list[Choice]]:
    """The loader of one paradigm, for the task registry."""

    def load(path: PathFn = data.path) -> list[Choice]:
        return blimp_pairs(paradigm, path)

    return load


def rows_of(path: PathFn, task: str, role: str = "data") -> Iterator[tuple[str, Path]]:
    """(file name, local path) for every file of a multi-file task, in manifest order."""
    for row in data.sources(task, role):
        yield row.name, path(task, role, row.name)
