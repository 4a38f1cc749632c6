import pytest

from sparsing_lib.evaluation import benchmark as B
from sparsing_lib.evaluation.items import Choice, Program


def test_synthetic_tasks_have_the_registry_shapes():
    tasks = {t.name: t for t in B.synthetic_tasks(fraction=0.001)}
    assert set(tasks) == {row[0] for row in B.LOGLIKELIHOOD + B.CLOZE + B.GENERATION}
    mmlu = tasks["MMLU"].items
    assert len(mmlu) == 14 and all(isinstance(it, Choice) and len(it.continuations) == 4 for it in mmlu)
    assert len(mmlu[0].context.split()) == 650 and tasks["BLiMP"].items[0].context == ""
    assert isinstance(tasks["MBPP"].items[0], Program) and tasks["MBPP"].items[0].max_new_tokens == 512


@pytest.mark.slow
def test_benchmark_runs_end_to_end(monkeypatch):
    monkeypatch.setattr(B, "LOGLIKELIHOOD", (("MMLU", 4, 4, 40, 2),))
    monkeypatch.setattr(B, "CLOZE", (("LAMBADA", 3, 20, 1),))
    monkeypatch.setattr(B, "GENERATION", (("GSM8K", 2, 30, 4, False), ("MBPP", 2, 30, 4, True)))
    record = B.run("tiny-32x2", "cpu", context=128, progress=False)
    assert record["settings"] == ["dense", "cett=0.1", "cett=0.2", "cett=0.3"]
    assert record["loglikelihood_requests"] == 19 and record["generations"] == 4
    assert record["total_seconds"] >= sum(record["seconds_by_setting"].values())
