"""Offline conversion of a format-1 run folder: frequencies cut to the kept checkpoints, per-position ratios
averaged per vocabulary id with the positions' token ids, and a record of what was done."""

import json

import numpy as np
import pytest

from sparsing_lib import runs
from sparsing_lib.upgrade_runs import IDS_FILE, position_sources, upgrade

CONFIG = dict(
    vocab_size=10,
    train=dict(seq_len=2),
    probe=dict(tokens=12),
    corpus_identity=dict(train_sha256="abc"),
)


def old_run(folder, sha="abc"):
    """A format-1 dense run: 5 checkpoints, 2 domains, 1 layer of 3 neurons, 6 probe positions."""
    folder.mkdir(parents=True)
    runs.write_json(folder / "config.json", CONFIG | dict(run=folder.name, corpus_identity=dict(train_sha256=sha)))
    steps = np.array([10, 20, 30, 40, 50])
    freq = np.arange(5 * 2 * 3, dtype=np.float16).reshape(5, 2, 1, 3) / 100
    runs.write_npz(folder / "neuron_frequency.npz", steps=steps, domains=np.array(["prose", "web"]), frequency=freq)
    ratios = np.array([[0.1, 0.3, 0.2, 0.4, 0.6, 0.5]] * 5, dtype=np.float16) * np.arange(1, 6)[:, None]
    runs.write_npz(folder / "token_ratios.npz", steps=steps, token_ratios=ratios.astype(np.float16))


def test_position_sources_follow_the_runners_equal_windows_per_domain():
    # 12 // (2 * 2) = 3 windows of 2 = 6 tokens per domain: 6 positions all prose, 9 split 6 + 3
    assert position_sources(CONFIG, ["prose", "web"], 6) == (["prose"], [6])
    assert position_sources(CONFIG, ["prose", "web"], 9) == (["prose", "web"], [6, 3])


def test_upgrade_converts_what_the_data_allow_and_records_it(tmp_path):
    old_run(tmp_path / "mini-160x3-relu")
    old_run(tmp_path / "mini-160x3-silu", sha="other")  # trained on another corpus build: ids do not apply
    runs.write_npz(tmp_path / IDS_FILE, ids=np.array([5, 7, 5, 7, 9, 5], dtype=np.uint16), train_sha256=np.array("abc"))
    done = upgrade(tmp_path)
    assert sorted(done) == ["mini-160x3-relu", "mini-160x3-silu"] and not (tmp_path / IDS_FILE).exists()
    relu = tmp_path / "mini-160x3-relu"
    assert runs.run_format(relu) == runs.FORMAT and not (relu / "token_ratios.npz").exists()
    nf = runs.load_arrays(relu, "neuron_frequency")
    assert nf["steps"].tolist() == [10, 30, 50] and nf["frequency"].shape == (3, 2, 1, 3)
    assert nf["frequency"][1, 0, 0].tolist() == pytest.approx([0.12, 0.13, 0.14], abs=1e-3)  # checkpoint 30 kept
    vr = runs.load_arrays(relu, "vocab_ratios")
    # last checkpoint (x5): id 5 at positions 0, 2, 5 -> (0.1 + 0.2 + 0.5) / 3 * 5; id 7: (0.3 + 0.4) / 2 * 5
    assert vr["mean"][-1, [5, 7, 9]] == pytest.approx([4 / 3, 1.75, 3.0], rel=1e-3)
    assert vr["count"].tolist() == [0, 0, 0, 0, 0, 3, 0, 2, 0, 1] and vr["count"].dtype == np.int32
    assert vr["sources"].tolist() == ["prose"] and vr["source_tokens"].tolist() == [6]
    record = json.loads((relu / "config.json").read_text())["format_upgrade"]
    assert record["kept_steps"] == [10, 30, 50] and "covers only those positions" in record["vocab_ratios"]
    silu = tmp_path / "mini-160x3-silu"
    assert not (silu / "vocab_ratios.npz").exists() and "not written" in done["mini-160x3-silu"]["vocab_ratios"]
    assert upgrade(tmp_path) == {}  # nothing left to convert
