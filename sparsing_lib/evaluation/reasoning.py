"""The paper's "complex" benchmarks as items: exams, math, BIG-Bench Hard and code, with their shots.

Loaders take ``path`` like those in ``loaders`` (``data.path`` by default). Formats, as conventions of
lm-evaluation-harness 0.4 and the benchmarks' papers (facts, not their code):

* AGIEval English, 0-shot (Choice): AGIEval's zero-shot prompt
  ``{passage}Q: {question} Answer Choices: {options joined by " "}\\nA: Among A through {last}, the answer is``
  with each option (``(A)…``) as a continuation after a space; the nine multiple-choice sets in manifest
  order. ``AGIEval-math`` (Generate, ``exact``): ``Q: {question}\\nA: The answer is``.
* MMLU, 5-shot (Choice over `` A``..`` D``): ``The following are multiple choice questions (with answers)
  about {subject}.\\n\\n`` then the subject's five dev questions, each ``{question}\\nA. {a}\\nB. {b}\\nC. {c}
  \\nD. {d}\\nAnswer: {letter}``, joined by blank lines, then the test question ending in ``Answer:``.
* BBH, 3-shot (Generate, ``exact``): the three exemplars of the official ``cot-prompts`` files in their
  answer-only form (BBH's "answer-only prompting": the same questions, ``A: {answer}`` where the answer is
  what the chain of thought ends with, ``So the answer is {answer}.``), after the task description:
  ``{description}\\n\\nQ: {q1}\\nA: {a1}\\n\\n…\\n\\nQ: {input}\\nA:``; greedy until a blank line or ``Q:``.
* GSM8K, 8-shot (Generate, ``number``): ``Question: {question}\\nAnswer: {answer}`` for the FIRST EIGHT
  items of train.jsonl (a fixed, documented choice; lm-eval samples train with a seed), joined by blank
  lines, then ``Question: {question}\\nAnswer:``; the reference is the number after ``####``.
* HumanEval, 0-shot (Program): the prompt is the function's signature and docstring, which the completion
  continues (``Program.prefix``); the test is the file's ``check`` function called on the entry point.
* MBPP, 3-shot (Program): the test set is task ids 11-510 and the shots are ids 2, 3 and 4, as in the MBPP
  paper; each exemplar is ``You are an expert Python programmer, and here is your task: {text} Your code
  should pass these tests:\\n\\n{three asserts}\\n[BEGIN]\\n{code}\\n[DONE]``, blank-line separated; the test
  item ends at ``[BEGIN]\\n`` and generation stops at ``[DONE]``.
"""

from __future__ import annotations

import csv
import gzip
import json
import re
from pathlib import Path

from . import data
from .items import Choice, Generate, Program
from .loaders import PathFn, read_jsonl, rows_of

LETTERS = "ABCDEFGHIJ"


def agieval(path: PathFn = data.path) -> list[Choice]:
    """The nine English multiple-choice AGIEval sets, 0-shot."""
    out = []
    for name, file in rows_of(path, "AGIEval-en"):
        if name == "math.jsonl":
            continue
        for i, r in enumerate(read_jsonl(file)):
            opts = r["options"]
            context = (
                f"{r['passage'] or ''}Q: {r['question']} Answer Choices: {' '.join(opts)}\n"
                f"A: Among A through {LETTERS[len(opts) - 1]}, the answer is"
            )
            out.append(
                Choice(
                    f"{name.removesuffix('.jsonl')}/{i}",
                    context,
                    tuple(f" {o}" for o in opts),
                    LETTERS.index(r["label"]),
                )
            )
    return out


def agieval_math(path: PathFn = data.path) -> list[Generate]:
    """AGIEval's MATH cloze set, 0-shot, exact match of the stripped answer."""
    return [
        Generate(f"math/{i}", f"Q: {r['question']}\nA: The answer is", (str(r["answer"]),), "exact", stop=("\n",))
        for i, r in enumerate(read_jsonl(path("AGIEval-en", file="math.jsonl")))
    ]


def _mmlu_rows(file: Path) -> list[dict]:
    with open(file, encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def _mmlu_question(r: dict) -> str:
    options = "".join(f"\n{LETTERS[k]}. {r[f'choice{k}']}" for k in range(4))
    return f"{r['question'].strip()}{options}\nAnswer:"


def mmlu(path: PathFn = data.path) -> list[Choice]:
    """MMLU test, 5-shot from each subject's dev file, subjects in manifest (alphabetical) order."""
    shots = dict(rows_of(path, "MMLU", "fewshot"))
    out = []
    for name, file in rows_of(path, "MMLU"):
        subject = name.removesuffix("_test.csv")
        dev = _mmlu_rows(shots[f"{subject}_dev.csv"])[:5]
        head = f"The following are multiple choice questions (with answers) about {subject.replace('_', ' ')}.\n\n"
        head += "".join(f"{_mmlu_question(r)} {LETTERS[int(r['answer'])]}\n\n" for r in dev)
        for i, r in enumerate(_mmlu_rows(file)):
            out.append(Choice(f"{subject}/{i}", head + _mmlu_question(r), (" A", " B", " C", " D"), int(r["answer"])))
    return out


def bbh_shots(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(task description, [(question, answer-only answer)]) of a BBH ``cot-prompts`` file.

    The file is a canary line, ``-----``, the description, then blank-line separated ``Q: … / A: Let's think
    step by step. … So the answer is X.`` blocks; the answer-only form keeps the question and X.
    """
    body = text.split("-----\n", 1)[1].strip("\n")
    description, *blocks = re.split(r"\n\n(?=Q: )", body)
    shots = []
    for block in blocks:
        question, reasoning = block.removeprefix("Q: ").split("\nA: ", 1)
        found = re.search(r"So the answer is (.*?)\.?\s*$", reasoning.strip())
        if not found:
            raise ValueError(f"BBH prompt: no 'So the answer is' in {block[:60]!r}")
        shots.append((question, found.group(1)))
    return description.strip(), shots


def bbh(path: PathFn = data.path) -> list[Generate]:
    """BIG-Bench Hard, 27 tasks in manifest order, 3-shot answer-only, exact match."""
    prompts = dict(rows_of(path, "BBH", "fewshot"))
    out = []
    for name, file in rows_of(path, "BBH"):
        task = name.removesuffix(".json")
        description, shots = bbh_shots(prompts[f"{task}.txt"].read_text(encoding="utf-8"))
        head = description + "\n\n" + "".join(f"Q: {q}\nA: {a}\n\n" for q, a in shots)
        for i, r in enumerate(json.loads(file.read_text(encoding="utf-8"))["examples"]):
            out.append(
                Generate(f"{task}/{i}", f"{head}Q: {r['input']}\nA:", (r["target"],), "exact", stop=("\n\n", "Q:"))
            )
    return out


def gsm8k_answer(solution: str) -> str:
    """The final number of a GSM8K solution (after ``####``, thousands separators removed)."""
    return solution.rsplit("####", 1)[1].strip().replace(",", "")


GSM8K_SHOTS = 8


def gsm8k(path: PathFn = data.path) -> list[Generate]:
    """GSM8K test, 8-shot from the first eight training problems with their full worked solutions."""
    shots = read_jsonl(path("GSM8K", "fewshot"))[:GSM8K_SHOTS]
    head = "".join(f"Question: {r['question']}\nAnswer: {r['answer']}\n\n" for r in shots)
    return [
        Generate(
            f"gsm8k/{i}",
            f"{head}Question: {r['question']}\nAnswer:",
            (gsm8k_answer(r["answer"]),),
            "number",
            stop=("\n\n", "Question:"),
            max_new_tokens=256,
        )
        for i, r in enumerate(read_jsonl(path("GSM8K")))
    ]


def humaneval(path: PathFn = data.path) -> list[Program]:
    """HumanEval, 0-shot: complete the function; the file's ``check`` runs on it."""
    with gzip.open(path("HumanEval"), "rt", encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [
        Program(r["task_id"], r["prompt"], f"{r['test']}\ncheck({r['entry_point']})\n", prefix=r["prompt"])
        for r in rows
    ]


MBPP_TEST_IDS = range(11, 511)
MBPP_SHOT_IDS = (2, 3, 4)


def _mbpp_task(r: dict) -> str:
    tests = "\n".join(r["test_list"])
    return (
        f"You are an expert Python programmer, and here is your task: {r['text']} "
        f"Your code should pass these tests:\n\n{tests}\n[BEGIN]\n"
    )


def _code(text: str) -> str:
    return text.replace("\r\n", "\n").strip()


def mbpp(path: PathFn = data.path) -> list[Program]:
    """MBPP test (ids 11-510), 3-shot with ids 2-4; the asserts (after any setup code) are the test."""
    rows = {r["task_id"]: r for r in read_jsonl(path("MBPP"))}
    head = "".join(f"{_mbpp_task(rows[k])}{_code(rows[k]['code'])}\n[DONE]\n\n" for k in MBPP_SHOT_IDS)
    out = []
    for k in MBPP_TEST_IDS:
        r = rows[k]
        test = "\n".join([_code(r["test_setup_code"]), *r["test_list"]]).strip() + "\n"
        out.append(Program(f"mbpp/{k}", head + _mbpp_task(r), test, stop=("[DONE]",), max_new_tokens=512))
    return out
