"""Run-folder format: what the writers put down, load_run reads back; writes are atomic; run names parse."""

import numpy as np
import pandas as pd
import pytest

from sparsing_lib import runs


def write_run(folder, probed=True, finished=True):
    folder.mkdir(parents=True)
    config = {"run": folder.name, "train": {"tokens": 4096, "betas": (0.9, 0.95)}, "format": runs.FORMAT}
    runs.write_json(folder / "config.json", config)
    runs.write_csv(folder / "metrics.csv", [dict(step=5, train_loss=3.5), dict(step=10, train_loss=2.25)])
    if finished:
        runs.write_json(folder / "env.json", {"status": "done", "wall_seconds": 12.5})
    if probed:
        runs.write_csv(folder / "sparsity.csv", [dict(step=10, activation_ratio=0.125, ppl=9.5)])
        runs.write_csv(folder / "pareto.csv", [dict(step=10, method="fat", value=0.1, ppl_ratio=1.01)])
        runs.write_json(folder / "cett.json", {"cett": 0.2, "joint_steps": [5, 10]})
        runs.write_npz(folder / "vocab_ratios.npz", steps=np.array([5, 10]), mean=np.eye(2, dtype=np.float16))


def test_what_is_written_load_run_reads_back(tmp_path):
    folder = tmp_path / "mini-160x3-relu"
    write_run(folder)
    run = runs.load_run(folder)
    assert run["config"] == {"run": "mini-160x3-relu", "train": {"tokens": 4096, "betas": [0.9, 0.95]}, "format": 2}
    pd.testing.assert_frame_equal(run["metrics"], pd.DataFrame(dict(step=[5, 10], train_loss=[3.5, 2.25])))
    assert run["env"] == {"status": "done", "wall_seconds": 12.5} and run["env"]["status"] in runs.FINISHED
    assert run["sparsity"].to_dict("records") == [dict(step=10, activation_ratio=0.125, ppl=9.5)]
    assert run["pareto"].loc[0, "method"] == "fat" and run["pareto"].loc[0, "ppl_ratio"] == 1.01
    assert run["cett"] == {"cett": 0.2, "joint_steps": [5, 10]}
    npz = np.load(folder / "vocab_ratios.npz")
    assert npz["steps"].tolist() == [5, 10] and npz["mean"].dtype == np.float16
    assert np.array_equal(npz["mean"], np.eye(2))
    assert not list(folder.glob("*.tmp"))  # every write renamed its temporary file into place


def test_an_unfinished_unprobed_run_has_no_env_and_no_probe_results(tmp_path):
    folder = tmp_path / "mini-160x3-silu"
    write_run(folder, probed=False, finished=False)
    run = runs.load_run(folder)
    assert run["env"] == {} and not {"sparsity", "pareto", "cett"} & set(run)


def test_a_rewrite_replaces_the_whole_file(tmp_path):
    path = tmp_path / "metrics.csv"
    runs.write_csv(path, [dict(step=s, loss=1.0) for s in range(100)])
    runs.write_csv(path, [dict(step=1, loss=0.5)])
    assert pd.read_csv(path).to_dict("records") == [dict(step=1, loss=0.5)]
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.csv"]


def test_load_runs_takes_only_begun_runs_in_name_order(tmp_path):
    write_run(tmp_path / "mini-192x4-relu")
    write_run(tmp_path / "mini-160x3-relu", probed=False, finished=False)
    (tmp_path / "mini-256x5-relu").mkdir()  # created, not yet trained: no metrics.csv
    (tmp_path / "README.md").write_text("notes")
    assert list(runs.load_runs(tmp_path)) == ["mini-160x3-relu", "mini-192x4-relu"]


def test_parse_run_splits_model_and_activation():
    assert runs.parse_run("mini-160x3-relu") == ("mini-160x3", "relu")
    assert runs.parse_run("moe-192x4-e16-silu") == ("moe-192x4-e16", "silu")
    assert runs.parse_run("mini-160x3-relu-s2-f32") == ("mini-160x3", "relu")  # suffixes checked, not returned
    with pytest.raises(ValueError, match="does not follow the run-name grammar"):
        runs.parse_run("mini-160x3-gelu")
    with pytest.raises(ValueError, match="unknown model"):
        runs.parse_run("mini-999x9-relu")
    with pytest.raises(ValueError, match="unknown model"):
        runs.parse_run("mini-999x9-relu-s1")


def test_run_names_and_variants_round_trip():
    cases = {
        "mini-160x3-relu": runs.Variant(),
        "mini-192x4-silu-s1": runs.Variant(seed=1),
        "mini-160x3-relu-f8": runs.Variant(split=8),
        "tiny-32x2-relu-s1-f8": runs.Variant(seed=1, split=8),
        "moe-192x4-e60-relu-s12-f32": runs.Variant(seed=12, split=32),
    }
    for name, variant in cases.items():
        assert runs.run_variant(name) == variant
        assert runs.run_name(*runs.parse_run(name), variant) == name
        assert variant.is_variant == (name not in ("mini-160x3-relu",))
    assert runs.Variant(split=8).fraction == 0.125 and runs.Variant(split=32).fraction == 0.03125
    assert runs.Variant().fraction == 1.0


@pytest.mark.parametrize(
    "name",
    [
        "mini-160x3-relu-s0",  # seed 0 is written without a suffix
        "mini-160x3-relu-s01",  # no leading zeros: one name per run
        "mini-160x3-relu-f1",  # the whole split is written without a suffix
        "mini-160x3-relu-f0",
        "mini-160x3-relu-f08",
        "mini-160x3-relu-f8-s1",  # seed before split
        "mini-160x3-relu-s1-s2",
        "mini-160x3-relu-x1",
        "mini-160x3-relu-s",
        "mini-160x3-relu-",
        "mini-160x3",
    ],
)
def test_a_malformed_name_gives_one_message_naming_the_grammar(name):
    with pytest.raises(ValueError, match=r"does not follow the run-name grammar <model>-<activation>\[-s<seed>\]"):
        runs.run_variant(name)
    with pytest.raises(ValueError, match="does not follow the run-name grammar"):
        runs.parse_run(name)


def test_run_name_refuses_what_the_grammar_cannot_write():
    for variant in (runs.Variant(seed=-1), runs.Variant(split=0)):
        with pytest.raises(ValueError, match="run-name grammar"):
            runs.run_name("mini-160x3", "relu", variant)


def test_load_runs_leaves_variants_out_unless_asked(tmp_path):
    for name in ("mini-160x3-relu", "mini-160x3-relu-f8", "mini-192x4-silu-s1", "mini-192x4-silu", "p448-base"):
        write_run(tmp_path / name, probed=False)
    plain = ["mini-160x3-relu", "mini-192x4-silu", "p448-base"]  # a pilot's name is no run name: kept as before
    assert list(runs.load_runs(tmp_path)) == plain
    assert list(runs.load_runs(tmp_path, variants=True)) == sorted(plain + ["mini-160x3-relu-f8", "mini-192x4-silu-s1"])


def test_load_arrays_reads_every_array_of_an_npz_and_names_a_missing_file(tmp_path):
    folder = tmp_path / "mini-160x3-relu"
    write_run(folder)
    arrays = runs.load_arrays(folder, "vocab_ratios")
    assert sorted(arrays) == ["mean", "steps"]
    assert arrays["steps"].tolist() == [5, 10] and arrays["mean"].dtype == np.float16
    assert arrays["mean"].sum() == 2.0  # the 2 x 2 identity written above
    with pytest.raises(FileNotFoundError, match="neuron_frequency.npz"):
        runs.load_arrays(folder, "neuron_frequency")


def test_a_probe_file_of_an_old_format_folder_gives_one_clear_message(tmp_path):
    folder = tmp_path / "mini-160x3-relu"
    write_run(folder)
    runs.write_json(folder / "config.json", {"run": folder.name})  # format 1: no format key
    assert runs.run_format(folder) == 1
    with pytest.raises(ValueError, match=r"format 1; vocab_ratios.npz needs format 2 .*upgrade_runs"):
        runs.load_arrays(folder, "vocab_ratios")


def test_kept_checkpoints_are_first_middle_and_last():
    assert runs.kept_checkpoints(30) == [0, 14, 29] and runs.kept_checkpoints(8) == [0, 4, 7]
    assert runs.kept_checkpoints(2) == [0, 1] and runs.kept_checkpoints(1) == [0]
    assert runs.kept_checkpoints(10, 4) == [0, 3, 6, 9]
    with pytest.raises(ValueError, match="at least one"):
        runs.kept_checkpoints(0)


def test_run_folders_by_marker_leave_out_variants_and_accept_a_missing_folder(tmp_path):
    for name in ("mini-160x3-relu", "mini-160x3-relu-s1", "mini-160x3-silu-f8", "notes"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text("{}")
    assert [d.name for d in runs.run_folders(tmp_path, marker="config.json")] == ["mini-160x3-relu", "notes"]
    assert len(runs.run_folders(tmp_path, variants=True, marker="config.json")) == 4
    assert runs.run_folders(tmp_path) == [] and runs.run_folders(tmp_path / "absent") == []
