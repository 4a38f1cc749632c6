"""A suite stopped midway resumes from its stored parts and gives the result of an uninterrupted run."""

import numpy as np
import pytest

from sparsing_lib import metrics
from sparsing_lib.evaluation import parts, suite
from sparsing_lib.models import TINY, build_model


@pytest.fixture(scope="module")
def tiny():
    model, tok, calib = suite.smoke_model()
    chosen = suite.Settings(
        {"dense": ("dense", None), "cett=0.2": ("cett", metrics.cett_thresholds(model, calib, 0.2))}
    )
    chosen.cett["cett=0.2"] = 0.2
    return model, tok, suite.smoke_tasks(), chosen


def test_a_stopped_suite_resumes_from_its_parts(tiny, tmp_path, monkeypatch):
    model, tok, tasks, chosen = tiny
    whole = suite.run_suite(model, tok, tasks, chosen, batch_size=16)
    real, calls = suite._score_part, []

    def stop_at_third(*args):
        if len(calls) == 2:
            raise KeyboardInterrupt  # the call's deadline
        calls.append(args[2].name)
        return real(*args)

    monkeypatch.setattr(suite, "_score_part", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        suite.run_suite(model, tok, tasks, chosen, batch_size=16, store=parts.Parts(tmp_path, model))
    monkeypatch.setattr(suite, "_score_part", lambda *a: calls.append(a[2].name) or real(*a))
    got = suite.run_suite(model, tok, tasks, chosen, batch_size=16, store=parts.Parts(tmp_path, model))
    n = len(tasks) * len(chosen)
    assert len(calls) == n  # 2 parts before the stop, the other n - 2 after it: none scored twice
    assert len(got.meta["resumed"]) == 2
    cols = ["task", "setting", "metric", "score", "interval", "items", "truncated", "activation_ratio"]
    assert got.scores[cols].equals(whole.scores[cols])
    assert got.items.keys() == whole.items.keys()
    for k in whole.items:
        np.testing.assert_array_equal(got.items[k], whole.items[k])


def test_parts_of_another_model_or_request_are_removed(tmp_path):
    a, b = build_model(TINY, "relu", 64, seed=1), build_model(TINY, "relu", 64, seed=2)
    assert parts.fingerprint(a) == parts.fingerprint(build_model(TINY, "relu", 64, seed=1))
    assert parts.fingerprint(a) != parts.fingerprint(b) != parts.fingerprint(b, "limit=10")
    store = parts.Parts(tmp_path, a)
    store.save("T", "dense", parts.Part({"acc": np.array([1.0, 0.0])}, 0, 0.5, 1.0, [(1, "print(1)")]))
    back = parts.Parts(tmp_path, a).load("T", "dense")
    assert back.programs == [(1, "print(1)")] and back.activation_ratio == 0.5
    np.testing.assert_array_equal(back.scores["acc"], [1.0, 0.0])
    assert parts.Parts(tmp_path, a, "limit=10").load("T", "dense") is None  # another request: not mixed in
    assert parts.Parts(tmp_path, b).load("T", "dense") is None
    assert [p.name for p in tmp_path.iterdir()] == [parts.fingerprint(b)]  # the stale folders are gone


def test_settings_come_back_as_saved(tmp_path):
    model, _, calib = suite.smoke_model()
    chosen = suite.settings(model, calib, ps=(0.05,))
    store = parts.Parts(tmp_path, model)
    assert store.saved_settings() is None
    store.save_settings(chosen, chosen.cett)
    names, cett = parts.Parts(tmp_path, model).saved_settings()
    assert list(names) == list(chosen) and cett == chosen.cett
    method, value = names["cett-ppl-5%"]
    assert method == "cett" and value == pytest.approx(list(chosen["cett-ppl-5%"][1]), abs=0)
    store.clear()
    assert not tmp_path.exists()


def test_the_cli_resumes_a_stopped_suite_with_the_thresholds_it_searched_once(tmp_path, monkeypatch):
    import json

    import torch

    from sparsing_lib.evaluation import results
    from sparsing_lib.evaluation import tasks as registry

    run = tmp_path / "run"
    run.mkdir()
    torch.save(build_model(TINY, "relu", 12288, seed=3).state_dict(), run / "step_000010.pt")
    config = {"model": {"name": TINY.name}, "activation": "relu", "vocab_size": 12288, "train": {"seq_len": 64}}
    (run / "config.json").write_text(json.dumps(config))
    (run / "metrics.csv").write_text("step,train_loss\n10,5.0\n")
    tasks = {t.name: t for t in suite.smoke_tasks()}
    monkeypatch.setattr(registry, "load", lambda name, limit=None: tasks[name])
    monkeypatch.setattr(suite, "expand_tasks", lambda spec: list(tasks))
    searched = []
    calib = torch.randint(0, 12288, (4, 64), generator=torch.Generator().manual_seed(0))
    monkeypatch.setattr(suite, "calibration", lambda *a: searched.append(1) or calib)
    real, scored = suite._score_part, []

    def stop_at_third(*args):
        if len(scored) == 2:
            raise KeyboardInterrupt  # the call's deadline
        scored.append(1)
        return real(*args)

    out = tmp_path / "eval"
    argv = ["--model", str(run / "step_000010.pt"), "--run", str(run), "--tasks", "all", "--out", str(out),
            "--device", "cpu", "--settings", "dense,cett-ppl-5%", "--batch-size", "16"]  # fmt: skip
    monkeypatch.setattr(suite, "_score_part", stop_at_third)
    with pytest.raises(KeyboardInterrupt):
        suite.main(argv)
    assert (out / parts.FOLDER).is_dir() and not (out / "eval.csv").exists()
    monkeypatch.setattr(suite, "_score_part", real)
    assert suite.main(argv) == 0
    got = results.read(out)
    assert len(searched) == 1  # the second call scored with the thresholds the first one searched
    assert len(got.meta["resumed"]) == 2 and len(got.scores) == 2 * sum(len(t.metrics) for t in tasks.values())
    assert not (out / parts.FOLDER).exists()  # cleared once the suite is written
