import json

import numpy as np
import pandas as pd
import pytest

from sparsing_lib import metrics
from sparsing_lib.evaluation import results, suite
from sparsing_lib.evaluation.items import Generate, Program, Task


@pytest.fixture(scope="module")
def tiny():
    return suite.smoke_model()


@pytest.fixture(scope="module")
def result(tiny):
    model, tok, calib = tiny
    tasks = suite.smoke_tasks() + [
        Task(
            "toy-long", "reading", ("acc",), 0.0, 0, [Generate("g", "word " * 200, ("7",), "number", max_new_tokens=4)]
        ),
        Task(
            "toy-pass", "complex", ("pass@1",), 0.0, 0, [Program("p", "# any\n", "assert True", ("\n",), 4, prefix="#")]
        ),
    ]
    chosen = suite.Settings(
        {
            "dense": ("dense", None),
            "cett=0.2": ("cett", metrics.cett_thresholds(model, calib, 0.2)),
            "topk_token=0.5": ("topk_token", 0.5),
        }
    )
    chosen.cett["cett=0.2"] = 0.2  # the CETT value behind the thresholds, reported in the value column
    return suite.run_suite(model, tok, tasks, chosen, batch_size=16), tasks


def test_rows_items_and_columns(result):
    res, tasks = result
    df = res.scores
    assert len(df) == 3 * sum(len(t.metrics) for t in tasks)
    assert set(results.COLUMNS) <= set(df.columns)
    for row in df.itertuples():
        x = res.items[results.item_key(row.task, row.setting, row.metric)]
        assert len(x) == row.items and row.score == pytest.approx(x.mean())
        low, high = results.interval(row.interval)
        assert low <= row.score <= high
    by = df.set_index(["task", "setting", "metric"])
    assert by.loc[("toy-long", "dense", "acc"), "truncated"] == 1  # 200 words > 128 - 4 positions
    assert by.loc[("toy-pass", "dense", "pass@1"), "score"] == 1.0  # "#" + one line of text, then the test
    topk = by.loc[("LAMBADA-synthetic", "topk_token=0.5", "acc"), "activation_ratio"]
    assert 0.3 < topk <= 0.5  # 64 of 128 neurons kept, fewer active where ReLU zeros are among them
    assert by.loc[("LAMBADA-synthetic", "cett=0.2", "acc"), "value"] == 0.2
    assert np.isnan(by.loc[("LAMBADA-synthetic", "dense", "acc"), "value"])
    dense = by.loc[("LAMBADA-synthetic", "dense", "acc"), "activation_ratio"]
    assert 0.2 < dense < 0.8  # ReLU: about half the neurons are zero at random weights
    assert by.loc[("LAMBADA-synthetic", "cett=0.2", "acc"), "activation_ratio"] < dense


def test_write_and_read_back(result, tmp_path):
    res, _ = result
    results.write(tmp_path, res)
    back = results.read(tmp_path)
    assert len(back.scores) == len(res.scores) and set(back.items) == set(res.items)
    assert json.loads((tmp_path / "eval.json").read_text())["thresholds"]["cett=0.2"]
    assert set(res.meta["seconds"]) >= {"LAMBADA-synthetic|dense", "execute"}
    for k, v in res.items.items():  # every per-item score comes back exactly, as float32
        assert back.items[k].dtype == np.float32 and np.array_equal(back.items[k], np.asarray(v, dtype=np.float32))


def test_items_file_packs_zero_one_scores_into_bits_and_reads_back_exactly(tmp_path):
    items = {
        "a|dense|acc": [1.0, 0.0, 1.0],
        "b|dense|f1": [0.5, 1.0, 0.0],
        "c|dense|acc": [0.0] * 9,  # nine bits: the packed bytes run past a byte boundary
        "d|dense|acc": [],
    }
    scores = pd.DataFrame([{c: 0 for c in results.COLUMNS}])
    results.write(tmp_path, results.SuiteResult(scores, items, {}))
    raw = np.load(tmp_path / "eval_items.npz")
    assert sorted(raw.files) == ["binary", "bits", "floats", "keys", "sizes"]
    assert raw["binary"].tolist() == [True, False, True, True] and raw["sizes"].tolist() == [3, 3, 9, 0]
    # 3 + 9 bits in two bytes: 1,0,1 then nine zeros; the one non-binary key's three floats
    assert raw["bits"].tolist() == [0b10100000, 0] and raw["floats"].tolist() == [0.5, 1.0, 0.0]
    back = results.read(tmp_path).items
    assert {k: v.tolist() for k, v in back.items()} == items
    assert all(v.dtype == np.float32 for v in back.values())


def test_items_file_of_the_earlier_layout_still_reads(tmp_path):
    scores = pd.DataFrame([{c: 0 for c in results.COLUMNS}])
    results.write(tmp_path, results.SuiteResult(scores, {}, {}))
    np.savez_compressed(tmp_path / "eval_items.npz", **{"a|dense|acc": np.array([1.0, 0.0], np.float32)})
    assert results.read(tmp_path).items["a|dense|acc"].tolist() == [1.0, 0.0]


def test_settings_names_and_ppl_thresholds(tiny):
    model, _, calib = tiny
    got = suite.settings(model, calib, ps=(0.01,), sweeps={"fat": (0.05,)})
    assert list(got) == ["dense", "cett-ppl-1%", "fat=0.05", "zero"]  # zero: the model is ReLU
    assert got["cett-ppl-1%"][0] == "cett" and len(got["cett-ppl-1%"][1]) == 2
    assert 0 < got.cett["cett-ppl-1%"] < 1


def test_cli_messages(capsys, tmp_path):
    assert suite.main(["--out", str(tmp_path), "--settings", "dense,magic"]) == 2
    assert "--model is required" in capsys.readouterr().err
    assert suite.main(["--model", "x", "--out", str(tmp_path), "--settings", "dense,magic"]) == 2
    assert "unknown setting 'magic'" in capsys.readouterr().err


@pytest.mark.slow
def test_smoke_writes_a_complete_result(tmp_path):
    res = suite.smoke(tmp_path)
    assert set(res.scores.setting) == {"dense", "cett-ppl-1%", "cett-ppl-5%", "cett-ppl-10%"}
    assert (tmp_path / "eval.csv").exists()


def test_run_suite_on_a_tiny_moe_scores_every_task_dense_and_at_the_three_ppl_settings():
    model, tok, calib = suite.smoke_model(moe=True)
    res = suite.run_suite(model, tok, suite.smoke_tasks(), suite.settings(model, calib), batch_size=16)
    names = ["dense", "cett-ppl-1%", "cett-ppl-5%", "cett-ppl-10%"]
    assert set(res.scores.setting) == set(names)
    assert len(res.scores) == 4 * sum(len(t.metrics) for t in suite.smoke_tasks())
    assert "granitemoe" in res.meta["model"] and res.meta["model"].endswith("dff128")  # 8 experts x 16 neurons
    ratio = res.scores[res.scores.task == "LAMBADA-synthetic"].set_index("setting")["activation_ratio"]
    assert 0 < ratio["dense"] < 2 / 8  # 2 of 8 experts routed, and ReLU silences some of their neurons
    assert list(ratio[names]) == sorted(ratio[names], reverse=True) and ratio["cett-ppl-10%"] < ratio["dense"]


def _run_folder(folder, seed: int, name: str = "tiny-32x2"):
    """A toy run folder (config.json, metrics.csv) of model ``name`` with its checkpoint step_000010.pt; returns
    the model."""
    import torch

    from sparsing_lib.models import build_model, get_spec

    model = build_model(get_spec(name), "relu", 12288, seed=seed).eval()
    torch.save(model.state_dict(), folder / "step_000010.pt")
    config = {"model": {"name": name}, "activation": "relu", "vocab_size": 12288, "train": {"seq_len": 64}}
    (folder / "config.json").write_text(json.dumps(config))
    (folder / "metrics.csv").write_text("step,train_loss\n10,5.0\n")
    return model


def test_load_model_rebuilds_a_run_checkpoint(tmp_path):
    import torch

    model = _run_folder(tmp_path, seed=1)
    got, tok = suite.load_model(str(tmp_path / "step_000010.pt"), str(tmp_path))
    ids = torch.tensor([[1, 2, 3]])
    assert torch.equal(got(input_ids=ids).logits, model(input_ids=ids).logits)
    assert got.config.max_position_embeddings == 64 and tok.eos_token == "<|endoftext|>"
    with pytest.raises(ValueError, match="pass --run"):
        suite.load_model(str(tmp_path / "step_000010.pt"))


def test_load_model_rebuilds_a_moe_run_checkpoint(tmp_path):
    import torch

    model = _run_folder(tmp_path, seed=3, name="moe-192x4-e16")
    got, _ = suite.load_model(str(tmp_path / "step_000010.pt"), str(tmp_path))
    ids = torch.tensor([[1, 2, 3, 4]])
    want = model(input_ids=ids).logits
    with metrics.sparsify(got, "dense") as stats:  # the hooks open the experts up: the same function
        torch.testing.assert_close(got(input_ids=ids).logits, want, rtol=1e-5, atol=1e-5)
    assert stats.layer_ratios[0] <= 4 / 16  # four of sixteen experts routed


def test_an_exported_checkpoint_loads_back_as_a_model_folder(tmp_path):
    import torch

    from sparsing_lib import checkpoints
    from sparsing_lib.models import TINY, build_model

    model = _run_folder(tmp_path, seed=2)
    out = tmp_path / "exported"
    assert checkpoints.main(["--ckpt", str(tmp_path / "step_000010.pt"), "--run", str(tmp_path), "--out", str(out),
                             "--shard-size", "300KB"]) == 0  # fmt: skip
    assert len(list(out.glob("*.safetensors"))) > 1  # sharded (a tensor larger than a shard gets one alone)
    got, tok = suite.load_model(str(out))
    assert next(got.parameters()).dtype == torch.float32 and got.config.max_position_embeddings == 64
    ids = torch.tensor([[5, 6, 7, 8]])
    half = build_model(TINY, "relu", 12288, seed=2).eval()  # the same weights rounded to float16, as exported
    half.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})
    assert torch.allclose(got(input_ids=ids).logits, half(input_ids=ids).logits, atol=1e-5)
    assert not torch.equal(got(input_ids=ids).logits, model(input_ids=ids).logits)  # it was rounded
    assert tok.eos_token == "<|endoftext|>"
    with pytest.raises(ValueError, match="int8"):
        checkpoints.export(tmp_path / "step_000010.pt", tmp_path, tmp_path / "x", dtype="int8")
    assert checkpoints.main(["--ckpt", str(tmp_path / "missing.pt"), "--run", str(tmp_path), "--out", str(out)]) == 2


def test_last_model_prefers_the_exported_folder_then_the_last_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="train the run first"):
        suite.last_model(tmp_path / "ckpt", "mini-160x3-relu", tmp_path / "runs")
    where = tmp_path / "ckpt" / "mini-160x3-relu"
    where.mkdir(parents=True)
    for step in ("step_000100.pt", "step_000200.pt"):
        (where / step).touch()
    assert suite.last_model(tmp_path / "ckpt", "mini-160x3-relu", tmp_path / "runs") == (
        str(where / "step_000200.pt"),
        str(tmp_path / "runs" / "mini-160x3-relu"),
    )
    (where / "config.json").write_text("{}")  # an exported model folder in the same place wins
    assert suite.last_model(tmp_path / "ckpt", "mini-160x3-relu", tmp_path / "runs") == (str(where), None)
