"""evaluation.tasks and its loaders on tiny synthetic files in each benchmark's format, prompts checked by hand.

``data.path`` is pointed at a temporary folder (the real file names, no hash check) so that the registry's
``load`` runs each loader end to end; multi-file tasks see a manifest cut down to one file per role. Tests on
the real files are marked slow and run only where SPARSING_EVAL_DATA names the built folder.
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import os
import zipfile
from pathlib import Path

import pytest

from sparsing_lib.evaluation import data, loaders, reasoning, tasks
from sparsing_lib.evaluation.items import Choice, Cloze, Generate, Program

REAL = data.manifest()


@pytest.fixture
def files(monkeypatch, tmp_path):
    """``write(task, name, content)`` puts a synthetic file where ``data.path`` will look for it."""

    def path(task, role="data", file=None):
        return tmp_path / task / data.select(task, role, file).name

    monkeypatch.setattr(data, "path", path)

    def write(task: str, name: str, content: str | bytes) -> None:
        (tmp_path / task).mkdir(exist_ok=True)
        target = tmp_path / task / name
        target.write_bytes(content if isinstance(content, bytes) else content.encode())

    return write


def only(monkeypatch, task: str, *names: str) -> None:
    """Cut the manifest's ``task`` rows down to the files ``names``."""
    kept = tuple(s for s in REAL if s.task != task or s.name in names)
    monkeypatch.setattr(data, "manifest", lambda: kept)


def jsonl(*rows: dict) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def test_piqa(files):
    files(
        "PIQA", "valid.jsonl", jsonl({"goal": "g0", "sol1": "a", "sol2": "b"}, {"goal": "g1", "sol1": "c", "sol2": "d"})
    )
    files("PIQA", "valid-labels.lst", "0\n1\n")
    task = tasks.load("PIQA")
    assert task.items[0] == Choice("piqa/0", "Question: g0\nAnswer:", (" a", " b"), 0)
    assert task.items[1].gold == 1 and task.chance == 0.5 and task.group == "commonsense" and task.shots == 0
    files("PIQA", "valid-labels.lst", "0\n")
    with pytest.raises(ValueError, match="2 items but 1 labels"):
        tasks.load("PIQA")


def test_siqa_labels_are_one_based(files):
    row = {"context": "Tracy left.", "question": "Why?", "answerA": "x", "answerB": "y", "answerC": "z"}
    files("SIQA", "dev.jsonl", jsonl(row))
    files("SIQA", "dev-labels.lst", "3\n")
    item = tasks.load("SIQA").items[0]
    assert item == Choice("siqa/0", "Q: Tracy left. Why?\nA:", (" x", " y", " z"), 2)
    assert tasks.load("SIQA").chance == pytest.approx(1 / 3)


def test_hellaswag_six_lines_and_capitalised_clause(files):
    text = "Roofing: A man is on a roof. he\n3\nfalls.\nsits.\njumps.\nstarts pulling.\n"
    text += "Baking: Mix flour\n0\na\nb\nc\nd\n"
    files("HellaSwag", "hellaswag_val_full.txt.bz2", bz2.compress(text.encode()))
    first, second = tasks.load("HellaSwag").items
    assert first == Choice(
        "hellaswag/0", "Roofing: A man is on a roof. He", (" falls.", " sits.", " jumps.", " starts pulling."), 3
    )
    assert second.context == "Baking: Mix flour" and second.gold == 0


def test_winogrande_scores_the_shared_rest_after_each_option(files):
    row = {"context_options": ["Ann beat Bo so Ann", "Ann beat Bo so Bo"], "continuation": "was sad.", "gold": 1}
    files("WinoGrande", "winogrande.jsonl", jsonl(row))
    item = tasks.load("WinoGrande").items[0]
    assert item.pairs() == [("Ann beat Bo so Ann", " was sad."), ("Ann beat Bo so Bo", " was sad.")]
    assert item.gold == 1 and tasks.load("WinoGrande").metrics == ("acc",)
    with pytest.raises(ValueError, match="1 contexts for 2"):
        Choice("x", "", ("a", "b"), 0, contexts=("only one",))


def test_copa_connectors_and_lower_case_choices(files):
    rows = [
        {"premise": "The man turned on the faucet.", "choice1": "The toilet filled.", "choice2": "Water flowed.",
         "question": "effect", "label": 1, "idx": 0},
        {"premise": "My body cast a shadow", "choice1": "The sun rose.", "choice2": "Grass was cut.",
         "question": "cause", "label": 0, "idx": 7},
    ]  # fmt: skip
    files("COPA", "val.jsonl", jsonl(*rows))
    a, b = tasks.load("COPA").items
    assert a == Choice("copa/0", "The man turned on the faucet therefore", (" the toilet filled.", " water flowed."), 1)
    assert b.context == "My body cast a shadow because" and b.id == "copa/7" and b.gold == 0


def test_boolq_string_and_boolean_labels(files):
    files(
        "BoolQ",
        "val.jsonl",
        jsonl(
            {"question": "is it", "passage": "P.", "idx": 0, "label": "true"},
            {"question": "is not", "passage": "Q.", "idx": 1, "label": False},
        ),
    )
    a, b = tasks.load("BoolQ").items
    assert a == Choice("boolq/0", "P.\nQuestion: is it?\nAnswer:", (" no", " yes"), 1)
    assert b.gold == 0
    files("BoolQ", "val.jsonl", jsonl({"question": "q", "passage": "p", "idx": 0, "label": "maybe"}))
    with pytest.raises(ValueError, match="neither true nor false"):
        tasks.load("BoolQ")


def test_lambada_last_word(files):
    files("LAMBADA", "lambada_test.jsonl", jsonl({"text": 'He said "go"\n\nand then Shane'}))
    assert tasks.load("LAMBADA").items == [Cloze("lambada/0", 'He said "go"\n\nand then', " Shane")]
    assert tasks.load("LAMBADA").chance == 0.0


def squad_file(answers: list[str]) -> str:
    qa = {"question": "Who?", "id": "q1", "answers": [{"text": a, "answer_start": 0} for a in answers]}
    return json.dumps({"data": [{"title": "T", "paragraphs": [{"context": "C.", "qas": [qa]}]}]})


def test_tydiqa_and_squad_prompt_and_distinct_references(files):
    files("TyDiQA-GoldP-en", "english_tydiqa_dev.json", squad_file(["Amos", "Amos", "Amos Ayre"]))
    files("SQuAD-v1.1", "dev-v1.1.json", squad_file(["Denver"]))
    item = tasks.load("TyDiQA").items[0]
    assert item == Generate(
        "tydiqa/q1", "Title: T\n\nBackground: C.\n\nQuestion: Who?\n\nAnswer:", ("Amos", "Amos Ayre"), "f1_em", ("\n",)
    )
    assert tasks.load("SQuAD").items[0].references == ("Denver",)
    assert tasks.load("TyDiQA").metrics == ("f1", "em")


def test_arc_easy_numeric_labels(files):
    q = {"stem": "Which?", "choices": [{"text": t, "label": str(k + 1)} for k, t in enumerate("xyz")]}
    files("ARC-Easy", "ARC-Easy-Test.jsonl", jsonl({"id": "M_1", "question": q, "answerKey": "2"}))
    task = tasks.load("ARC-Easy")
    assert task.items == [Choice("arc_easy/M_1", "Question: Which?\nAnswer:", (" x", " y", " z"), 1)]
    assert task.chance == pytest.approx(1 / 3) and task.group == "tiny"


def test_openbookqa_tsv(files):
    head = "ID\tQuestion Stem\tChoices\tComplete Question\tAnswer Key\n"
    files(
        "OpenBookQA",
        "test.tsv",
        head + "7-1\tFog is around:\t(A) a marsh (B) a (big) tundra (C) sand (D) a desert\tx\tC\n",
    )
    item = tasks.load("OpenBookQA").items[0]
    assert item == Choice("openbookqa/7-1", "Fog is around:", (" a marsh", " a (big) tundra", " sand", " a desert"), 2)
    with pytest.raises(ValueError, match="cannot split"):
        loaders._obqa_choices("a marsh (B) tundra")


def test_blimp_one_task_per_paradigm(files):
    buf = io.BytesIO()
    pairs = [{"sentence_good": "Ann left.", "sentence_bad": "Ann lefts.", "pairID": str(k)} for k in range(3)]
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("data/causative.jsonl", jsonl(*pairs))
    files("BLiMP", "BLiMP.zip", buf.getvalue())
    task = tasks.load("blimp_causative", limit=2)
    assert task.items == [Choice(f"causative/{k}", "", ("Ann left.", "Ann lefts."), 0) for k in range(2)]
    assert task.chance == 0.5 and task.group == "tiny" and tasks.family("blimp_causative") == "BLiMP"
    assert len(tasks.BLIMP_PARADIGMS) == 67 and len(tasks.names("tiny")) == 69


def test_agieval_zero_shot_prompt_and_math(files, monkeypatch):
    only(monkeypatch, "AGIEval-en", "aqua-rat.jsonl", "lsat-lr.jsonl", "math.jsonl")
    opts5 = ["(A)1", "(B)2", "(C)3", "(D)4", "(E)5"]
    files("AGIEval-en", "aqua-rat.jsonl", jsonl({"passage": None, "question": "1+2?", "options": opts5, "label": "C"}))
    opts4 = ["(A)w", "(B)x", "(C)y", "(D)z"]
    files(
        "AGIEval-en",
        "lsat-lr.jsonl",
        jsonl({"passage": "Ann runs.", "question": "So?", "options": opts4, "label": "A"}),
    )
    files("AGIEval-en", "math.jsonl", jsonl({"passage": None, "question": "2+2?", "options": None, "answer": "4"}))
    a, b = tasks.load("AGIEval").items
    assert a == Choice(
        "aqua-rat/0",
        "Q: 1+2? Answer Choices: (A)1 (B)2 (C)3 (D)4 (E)5\nA: Among A through E, the answer is",
        (" (A)1", " (B)2", " (C)3", " (D)4", " (E)5"),
        2,
    )
    assert b.context == "Ann runs.Q: So? Answer Choices: (A)w (B)x (C)y (D)z\nA: Among A through D, the answer is"
    assert tasks.load("AGIEval").chance == pytest.approx((1 / 5 + 1 / 4) / 2)
    assert tasks.load("AGIEval-math").items == [
        Generate("math/0", "Q: 2+2?\nA: The answer is", ("4",), "exact", ("\n",))
    ]


def test_mmlu_five_shot_prompt(files, monkeypatch):
    only(monkeypatch, "MMLU", "anatomy_test.csv", "anatomy_dev.csv")
    header = "question,choice0,choice1,choice2,choice3,answer\n"
    files("MMLU", "anatomy_dev.csv", header + "".join(f"D{k}?,a,b,c,d,{k % 4}\n" for k in range(6)))
    files("MMLU", "anatomy_test.csv", header + " What? ,w,x,y,z,3\n")
    task = tasks.load("MMLU")
    shot = "D{k}?\nA. a\nB. b\nC. c\nD. d\nAnswer: {L}\n\n"
    expected = "The following are multiple choice questions (with answers) about anatomy.\n\n"
    expected += "".join(shot.format(k=k, L="ABCDA"[k]) for k in range(5))
    expected += "What?\nA. w\nB. x\nC. y\nD. z\nAnswer:"
    assert task.items == [Choice("anatomy/0", expected, (" A", " B", " C", " D"), 3)]
    assert task.shots == 5 and task.chance == 0.25


COT = """CANARY LINE
-----
Evaluate expressions.

Q: not True is
A: Let's think step by step.
not True = False. So the answer is False.

Q: Which is first?
Options:
(A) x
(B) y
A: Let's think step by step.
x comes first. So the answer is (A).

Q: True and True is
A: Let's think step by step.
So the answer is True.
"""


def test_bbh_answer_only_three_shot(files, monkeypatch):
    assert reasoning.bbh_shots(COT) == (
        "Evaluate expressions.",
        [("not True is", "False"), ("Which is first?\nOptions:\n(A) x\n(B) y", "(A)"), ("True and True is", "True")],
    )
    only(monkeypatch, "BBH", "boolean_expressions.json", "boolean_expressions.txt")
    files("BBH", "boolean_expressions.txt", COT)
    files(
        "BBH",
        "boolean_expressions.json",
        json.dumps({"canary": "c", "examples": [{"input": "False is", "target": "False"}]}),
    )
    item = tasks.load("BBH").items[0]
    assert item.prompt == (
        "Evaluate expressions.\n\nQ: not True is\nA: False\n\nQ: Which is first?\nOptions:\n(A) x\n(B) y\nA: (A)\n\n"
        "Q: True and True is\nA: True\n\nQ: False is\nA:"
    )
    assert item.references == ("False",) and item.scorer == "exact" and tasks.load("BBH").shots == 3
    with pytest.raises(ValueError, match="no 'So the answer is'"):
        reasoning.bbh_shots("c\n-----\nD.\n\nQ: q\nA: no conclusion")


def test_gsm8k_first_eight_training_problems(files):
    train = [{"question": f"T{k}?", "answer": f"{k}+0={k}\n#### {k}"} for k in range(9)]
    files("GSM8K", "train.jsonl", jsonl(*train))
    files("GSM8K", "test.jsonl", jsonl({"question": "How many?", "answer": "lots\n#### 1,234"}))
    item = tasks.load("GSM8K").items[0]
    head = "".join(f"Question: T{k}?\nAnswer: {k}+0={k}\n#### {k}\n\n" for k in range(8))
    assert item.prompt == head + "Question: How many?\nAnswer:" and "T8?" not in item.prompt
    assert item.references == ("1234",) and item.scorer == "number" and tasks.load("GSM8K").shots == 8


def test_humaneval_program_runs_prompt_completion_and_check(files):
    row = {"task_id": "HumanEval/0", "prompt": "def f(x):\n", "test": "def check(c):\n    assert c(1) == 2\n",
           "entry_point": "f", "canonical_solution": "    return x + 1\n"}  # fmt: skip
    files("HumanEval", "HumanEval.jsonl.gz", gzip.compress(jsonl(row).encode()))
    item = tasks.load("HumanEval").items[0]
    assert isinstance(item, Program) and item.prompt == "def f(x):\n"
    source = item.program("    return x + 1\n")
    assert source == "def f(x):\n    return x + 1\n\ndef check(c):\n    assert c(1) == 2\n\ncheck(f)\n"
    exec(compile(source, "humaneval", "exec"), {})  # the canonical solution passes


def test_mbpp_ids_shots_and_tests(files):
    def row(k: int) -> dict:
        tests = [f"assert f{k}() == {k}"] * 3
        setup = "import math" if k == 11 else ""
        code = f"def f{k}():\r\n\treturn {k}"
        return {"task_id": k, "text": f"Task {k}.", "code": code, "test_list": tests, "test_setup_code": setup}

    rows = [row(k) for k in [1, 2, 3, 4, *range(11, 511), 600]]
    files("MBPP", "mbpp.jsonl", jsonl(*rows))
    task = tasks.load("MBPP")
    first = task.items[0]
    assert len(task.items) == 500 and first.id == "mbpp/11" and task.items[-1].id == "mbpp/510" and task.shots == 3
    ask = "You are an expert Python programmer, and here is your task: Task {k}. Your code should pass these tests:"
    shot = ask + "\n\n" + "\n".join(["assert f{k}() == {k}"] * 3) + "\n[BEGIN]\ndef f{k}():\n\treturn {k}\n[DONE]\n\n"
    expected = "".join(shot.format(k=k) for k in (2, 3, 4)) + ask.format(k=11) + "\n\n"
    expected += "\n".join(["assert f11() == 11"] * 3) + "\n[BEGIN]\n"
    assert first.prompt == expected and first.stop == ("[DONE]",) and first.prefix == ""
    assert first.test == "import math\n" + "\n".join(["assert f11() == 11"] * 3) + "\n"
    exec(compile(first.program("def f11():\n\treturn 11"), "mbpp", "exec"), {})


def test_registry_names_groups_and_errors():
    assert tasks.names("commonsense") == ["PIQA", "SIQA", "HellaSwag", "WinoGrande", "COPA"]
    assert tasks.names("reading") == ["BoolQ", "LAMBADA", "TyDiQA", "SQuAD"]
    assert set(tasks.names()) == set(tasks.TASKS) and len(tasks.TASKS) == 18 + 67
    with pytest.raises(ValueError, match="unknown task 'PIQA2'; valid names: PIQA, SIQA"):
        tasks.load("PIQA2")
    with pytest.raises(ValueError, match="unknown group"):
        tasks.names("hard")
    with pytest.raises(ValueError, match="limit must be a positive"):
        tasks.load("PIQA", limit=0)
    for members in tasks.AVERAGES.values():
        for task, metric in members:
            assert metric in tasks.TASKS[task].metrics


def test_chance_is_mean_inverse_option_count():
    items = [Choice("a", "", ("x", "y"), 0), Choice("b", "", ("x", "y", "z", "w"), 0)]
    assert tasks.chance(items) == pytest.approx((1 / 2 + 1 / 4) / 2)
    assert tasks.chance([Cloze("c", "a", " b")]) == 0.0


def test_chance_of_exact_match_generation_is_a_uniform_guess_among_its_subtasks_answers():
    # a true/false subtask (two answers: 1/2 each), a subtask with three answers over four items (1/3 each), a
    # SQuAD-style F1 item (0) and a four-option choice (1/4): the mean over the nine items, by hand
    items = [Generate(f"tf/{i}", "q", (a,), "exact") for i, a in enumerate(["True", "False", "True"])]
    items += [Generate(f"num/{i}", "q", (a,), "number") for i, a in enumerate(["1", "2", "3", "1"])]
    items += [Generate("squad/0", "q", ("x",), "f1_em"), Choice("c", "", ("a", "b", "c", "d"), 0)]
    assert tasks.chance(items) == pytest.approx((3 / 2 + 4 / 3 + 0 + 1 / 4) / 9)


# Items per registered task on the real files: the manifest's counts, except where a task takes part of a file.
def expected_counts() -> dict[str, int]:
    items = {}
    for s in REAL:
        if s.role == "data":
            items[s.task] = items.get(s.task, 0) + s.items
    agieval_math = next(s.items for s in REAL if s.task == "AGIEval-en" and s.name == "math.jsonl")
    renamed = {"TyDiQA": "TyDiQA-GoldP-en", "SQuAD": "SQuAD-v1.1"}
    whole = ["PIQA", "SIQA", "HellaSwag", "WinoGrande", "COPA", "BoolQ", "LAMBADA", "TyDiQA", "SQuAD", "MMLU", "BBH"]
    out = {n: items[renamed.get(n, n)] for n in [*whole, "GSM8K", "HumanEval", "ARC-Easy", "OpenBookQA"]}
    out["AGIEval"] = items["AGIEval-en"] - agieval_math
    out["AGIEval-math"] = agieval_math
    out["MBPP"] = len(reasoning.MBPP_TEST_IDS)  # of the 974 in the file
    out.update({f"blimp_{p}": items["BLiMP"] // 67 for p in tasks.BLIMP_PARADIGMS})
    return out


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(data.ENV), reason=f"{data.ENV} not set")
def test_real_files_item_counts_match_the_manifest():
    expected = expected_counts()
    assert set(expected) == set(tasks.TASKS)
    got = {name: len(tasks.load(name).items) for name in tasks.names()}
    assert got == expected
    ids = [it.id for it in tasks.load("MMLU").items]
    assert len(set(ids)) == len(ids)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(data.ENV), reason=f"{data.ENV} not set")
def test_real_files_spot_checks():
    piqa = tasks.load("PIQA", limit=1).items[0]
    assert piqa.context.startswith("Question: How do I ready a guinea pig cage") and piqa.gold == 0
    assert tasks.load("HellaSwag", limit=2).items[1].context.endswith("the pole. The lady")
    bbh = tasks.load("BBH", limit=1).items[0]
    assert bbh.prompt.count("\nA:") == 4 and "canary" not in bbh.prompt.lower()
    humaneval = tasks.load("HumanEval", limit=1).items[0]
    assert humaneval.id == "HumanEval/0" and "check(has_close_elements)" in humaneval.test
    assert Path(data.path("BLiMP")).suffix == ".zip"
