"""The replaced runs beside their current twins (figures.recipe_change) and the script that keeps them."""

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from sparsing_lib.figures import recipe_change as rc
from sparsing_lib.paths import ROOT


def _run(batch: int, final_loss: float, ratios, params: int = 1000, tokens_per_param: float = 20.0) -> dict:
    """A probed run: validation losses ending at ``final_loss``, and activation ratios at 2, 4, ... 2n tokens
    per parameter."""
    tokens = np.arange(1, len(ratios) + 1) * 2.0 * params
    return {
        "config": {
            "activation": "relu",
            "model": {"name": "mini-160x3", "non_embedding_params": params},
            "train": {
                "batch_size": batch,
                "warmup_tokens": 500,
                "warmup_frac": 0.0,
                "tokens": tokens_per_param * params,
            },
        },
        "metrics": pd.DataFrame(
            {"tokens": [1000.0, tokens_per_param * params], "val_loss": [5.0, final_loss], "epoch": [0.1, 2.0]}
        ),
        "sparsity": pd.DataFrame({"tokens": tokens, "activation_ratio": ratios}),
    }


def test_compare_pairs_runs_by_name_and_takes_the_recipes_numbers():
    old = {"abc1234": {"mini-160x3-relu": _run(64, 3.5, [0.20, 0.18, 0.17, 0.16, 0.16, 0.15, 0.15])}}
    new = {
        "mini-160x3-relu": _run(18, 3.8, [0.20, 0.15, 0.13, 0.12, 0.12, 0.12, 0.11]),
        "mini-192x4-relu": _run(27, 3.4, [0.2] * 7),  # not replaced: left out
    }
    df = rc.compare(old, new)
    assert list(df["recipe"]) == ["replaced, abc1234", rc.USED] and set(df["run"]) == {"mini-160x3-relu"}
    e, c = df.set_index("recipe").loc["replaced, abc1234"], df.set_index("recipe").loc[rc.USED]
    assert (e["batch (sequences)"], c["batch (sequences)"]) == (64, 18)
    assert c["final validation loss"] - e["final validation loss"] == pytest.approx(0.3)
    assert (e["CETT-PPL-1% ratio (%)"], c["CETT-PPL-1% ratio (%)"]) == pytest.approx((15.0, 11.0))
    # the change from the start ratio (7.8 tokens per parameter: the 4th checkpoint, at 8) to the last
    assert e["change from start (points)"] == pytest.approx(-1.0) and c["change from start (points)"] == pytest.approx(
        -1.0
    )
    assert e["change lo"] <= -1.0 <= e["change hi"]
    text = rc.sentence(df)
    assert text.startswith(
        "mini-160x3-relu, 64 sequences a step (replaced, abc1234) against 18 (used in this book): final validation "
        "loss 3.500 against 3.800 nats (+0.300), CETT-PPL-1% activation ratio 15.0 against 11.0 %"
    )
    shown = rc.table(df)
    assert list(shown.index) == [("mini-160x3-relu", "replaced, abc1234"), ("mini-160x3-relu", rc.USED)]
    assert shown["activation"].tolist() == ["ReLU", "ReLU"]


def test_nothing_replaced_says_so():
    df = rc.compare({}, {"mini-160x3-relu": _run(18, 3.8, [0.2] * 5)})
    assert rc.compare(
        {"abc1234": {"mini-192x4-relu": _run(64, 3.5, [0.2] * 5)}}, {"mini-160x3-relu": _run(18, 3.8, [0.2] * 5)}
    ).empty
    assert df.empty and rc.table(df).empty
    assert rc.sentence(df) == "No run of this profile has replaced an earlier run of the same name and another recipe."
    assert rc.results("smoke").empty


def test_reruns_of_one_recipe_are_told_apart_from_other_recipes():
    old = {
        "abc1234": {"mini-160x3-relu-s1": _run(64, 3.52, [0.20, 0.18, 0.17, 0.16, 0.16, 0.15, 0.14])},
        "def5678": {
            "mini-160x3-relu-s1": _run(64, 3.50, [0.20, 0.18, 0.17, 0.16, 0.16, 0.15, 0.16]),
            "mini-160x3-relu": _run(18, 3.9, [0.2] * 7),
        },
    }
    new = {
        "mini-160x3-relu-s1": _run(64, 3.51, [0.20, 0.18, 0.17, 0.16, 0.16, 0.15, 0.15]),
        "mini-160x3-relu": _run(64, 3.5, [0.2] * 7),
    }
    df = rc.compare(old, new)
    assert df.groupby("run")["same recipe"].sum().to_dict() == {"mini-160x3-relu": 1, "mini-160x3-relu-s1": 3}
    r = rc.reruns(df).set_index("run")
    assert list(r.index) == ["mini-160x3-relu-s1"] and r.loc["mini-160x3-relu-s1", "trainings"] == 3
    assert r.loc["mini-160x3-relu-s1", "final validation loss"] == pytest.approx(0.02)
    assert r.loc["mini-160x3-relu-s1", "CETT-PPL-1% ratio (%)"] == pytest.approx(2.0)  # 14 to 16 %
    assert r.loc["mini-160x3-relu-s1", "change from start (points)"] == pytest.approx(2.0)
    assert rc.rerun_sentence(df).startswith(
        "mini-160x3-relu-s1 (3 trainings): final validation loss over 0.020 nats, last activation ratio over 2.00"
    )
    # the recipe comparison names only the version of another recipe, not the reruns
    text = rc.sentence(df)
    assert text.startswith("mini-160x3-relu, 18 sequences a step (replaced, def5678)") and "relu-s1" not in text
    nothing = rc.compare({"abc1234": {"mini-160x3-relu": _run(18, 3.9, [0.2] * 7)}}, new)
    assert rc.reruns(nothing).empty
    assert rc.rerun_sentence(nothing) == "No run of this profile was trained twice with the same recipe and seed."


def test_committed_replaced_runs_are_other_recipes_or_reruns_of_the_runs_used():
    df = rc.results("replay")
    assert len(df) and set(df["recipe"]) >= {rc.USED} and len(set(df["recipe"])) >= 2
    used = df[df.recipe == rc.USED].set_index("run")
    for _, e in df[df.recipe != rc.USED].iterrows():
        assert e["run"] in used.index
        same = (e["batch (sequences)"], e["warm-up (M tokens)"]) == tuple(
            used.loc[e["run"], ["batch (sequences)", "warm-up (M tokens)"]]
        )
        assert same or not e["same recipe"]  # a rerun has the recipe of the run used
    # the seed runs trained again to be evaluated (data/replaced/README.md) are reruns of one recipe and seed
    assert {"mini-320x6-relu-s1", "mini-320x6-silu-s1"} <= set(rc.reruns(df)["run"])


def test_keep_replaced_copies_a_run_at_a_revision(tmp_path):
    out = tmp_path / "kept"
    out.mkdir()
    (out / "README.md").write_text("kept:\n")
    cmd = [sys.executable, "benchmarks/keep_replaced.py", "HEAD", "mini-192x4-relu", "--out", str(out)]
    subprocess.run(
        cmd, cwd=ROOT, check=True, capture_output=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"}
    )
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout[:7]
    kept = json.loads((out / rev / "mini-192x4-relu" / "config.json").read_text())
    assert kept == json.loads((ROOT / "data/runs/mini-192x4-relu/config.json").read_text())
    assert f"`{rev}/mini-192x4-relu`" in (out / "README.md").read_text()
    bad = subprocess.run(
        [*cmd[:3], "no-such-run-relu", "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
    )
    assert bad.returncode != 0
