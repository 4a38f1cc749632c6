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


def test_time_generation_reports_every_task_and_setting_with_sync_free_steps():
    from sparsing_lib.corpus import load_tokenizer
    from sparsing_lib.evaluation.items import Generate, Task
    from sparsing_lib.models import build_model, get_spec

    tok = load_tokenizer()
    model = build_model(get_spec("tiny-32x2"), "silu", len(tok)).eval()
    model.config.max_position_embeddings = 128
    items = [Generate(f"q/{i}", "the cat sat on the mat " * (i + 1), ("x",), "exact", ("\n\n",), 6) for i in range(5)]
    record = B.time_generation(model, tok, [Task("QA", "reading", ("acc",), 0.0, 0, items)], "cpu", progress=False)
    rows = record["rows"]
    assert [r["setting"] for r in rows] == ["dense", "cett=0.1", "cett=0.2", "cett=0.3"]
    for r in rows:
        assert r["prompts"] == 5 and 0 < r["new_tokens"] <= 5 * 6
        assert r["tokens_per_second"] == pytest.approx(r["new_tokens"] / r["seconds"])
        assert set(r["step_syncs"]) == {"0"}  # every cached step ran without a host synchronisation
    assert sum(record["seconds_by_setting"].values()) == pytest.approx(sum(r["seconds"] for r in rows))
    mixed = Task("QA", "reading", ("acc",), 0.0, 0, [items[0], Generate("b", "p", ("x",), "exact", ("\n",), 6)])
    with pytest.raises(ValueError, match="2 stopping rules"):
        B.time_generation(model, tok, [mixed], "cpu", progress=False)
