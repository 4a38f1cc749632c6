"""The stability rule applied to any run: verdicts on hand-made runs, load_runs' exclusion and the sentence."""

import math

import numpy as np
import pandas as pd
import pytest

from sparsing_lib import runs
from sparsing_lib.stability import run_stability, verdict_sentence
from sparsing_lib.train_config import TrainConfig, recorded_config

# 64 x 1024-token steps over 2^20 tokens = 16 steps, warm-up 1% of them, rounded up to 1 step; with
# warmup_tokens = 4 steps' worth the warm-up is 4 steps
TRAIN = {"tokens": 2**20, "batch_size": 64, "seq_len": 1024, "betas": [0.9, 0.95], "warmup_tokens": 4 * 65536}


def make_run(val, train_loss=None, status="done", train=TRAIN):
    steps = list(range(2, 2 * len(val) + 1, 2))
    metrics = pd.DataFrame(dict(step=steps, train_loss=train_loss or [3.0] * len(val), val_loss=val))
    return dict(config=dict(train=train) if train else {}, metrics=metrics, env=dict(status=status))


def test_recorded_config_fills_what_old_runs_did_not_record():
    old = {"tokens": 2**20, "batch_size": 64, "seq_len": 1024, "betas": [0.9, 0.95], "unknown_later_key": 1}
    cfg = recorded_config(old)
    assert cfg == TrainConfig(tokens=2**20) and cfg.betas == (0.9, 0.95)
    assert cfg.warmup_steps == 1  # 1% of 16 steps, at least one
    assert recorded_config(TRAIN).warmup_steps == 4


def test_verdicts_on_hand_made_runs():
    # steps 2, 4, 6, 8, 10; warm-up 4 steps, so the spike at step 2 does not count
    ok = run_stability(make_run([9.0, 4.0, 3.96, 3.9, 3.94]))
    assert (ok.verdict, ok.warmup_steps, ok.excluded) == ("stable", 4, False)
    assert ok.rise == pytest.approx(0.04)  # 3.94 - 3.9
    bad = run_stability(make_run([5.0, 4.0, 3.9, 4.0, 3.96]))
    assert bad.verdict == "unstable" and bad.excluded and bad.rise == pytest.approx(0.10)
    assert "0.100 nats after step 4" in bad.reason


def test_unmeasured_runs_are_not_judged_and_kept():
    early = run_stability(make_run([5.0, np.nan, np.nan, np.nan, np.nan]))  # only before warm-up ended
    assert early.verdict == "not judged" and not early.excluded and math.isnan(early.rise)
    assert "after warm-up (step 4)" in early.reason
    unrecorded = run_stability(make_run([5.0, 4.0, 3.0], train=None))
    assert unrecorded.verdict == "not judged" and unrecorded.warmup_steps is None


def test_nan_losses_skipped_but_divergence_fails_the_rule():
    gaps = run_stability(make_run([5.0, 4.0, np.nan, 3.9, np.nan]))  # NaN = not measured at that step
    assert gaps.verdict == "stable" and gaps.rise == pytest.approx(0.0)
    blown = run_stability(make_run([5.0, 4.0, 3.9], train_loss=[3.0, 3.0, float("nan")]))
    assert blown.verdict == "unstable" and blown.reason == "training diverged"
    stopped = run_stability(make_run([5.0, 4.0, 3.9], status="diverged"))
    assert stopped.excluded and stopped.rise == pytest.approx(0.0)
    inf = run_stability(make_run([5.0, 4.0, float("inf")]))
    assert inf.verdict == "unstable" and inf.rise == float("inf")


def write(folder, run):
    folder.mkdir(parents=True)
    runs.write_json(folder / "config.json", run["config"])
    runs.write_csv(folder / "metrics.csv", run["metrics"].to_dict("records"))
    runs.write_json(folder / "env.json", run["env"])


def test_load_runs_leaves_unstable_runs_out_unless_asked(tmp_path):
    write(tmp_path / "mini-160x3-relu", make_run([5.0, 4.0, 3.9, 3.8, 3.7]))
    write(tmp_path / "mini-160x3-silu", make_run([5.0, 4.0, 3.9, 4.0, 3.96]))  # rises 0.10
    write(tmp_path / "mini-192x4-relu", make_run([5.0, np.nan, np.nan, np.nan, np.nan]))  # not judged: kept
    (tmp_path / "mini-256x5-relu").mkdir()  # not begun: nothing to judge
    runs.write_json(tmp_path / "mini-256x5-relu" / "config.json", {"train": TRAIN})
    assert list(runs.load_runs(tmp_path)) == ["mini-160x3-relu", "mini-192x4-relu"]
    assert list(runs.load_runs(tmp_path, unstable=True)) == ["mini-160x3-relu", "mini-160x3-silu", "mini-192x4-relu"]
    by_config = [d.name for d in runs.run_folders(tmp_path, marker="config.json")]
    assert by_config == ["mini-160x3-relu", "mini-192x4-relu", "mini-256x5-relu"]


def test_verdict_sentence_names_the_runs_left_out_or_the_largest_rise():
    good = {"a": run_stability(make_run([5.0, 4.0, 3.9, 3.92, 3.8])), "b": run_stability(make_run([5.0, 4.0, 3.9]))}
    assert verdict_sentence(good) == "all 2 runs are stable by the rule: the largest rise is 0.020 nats"
    mixed = good | {"c": run_stability(make_run([5.0, 4.0, 3.9, 4.0])), "d": run_stability(make_run([5.0, np.nan]))}
    assert verdict_sentence(mixed) == (
        "1 of 3 judged runs breaks the rule and is left out of every analysis: c (largest rise 0.100 nats after "
        "step 4); the other 2 are stable by the rule: the largest rise is 0.020 nats; 1 more could not be judged and "
        "is kept without a verdict"
    )
    assert (
        verdict_sentence({"d": mixed["d"]}) == "no run has a validation loss after its warm-up, so none could be judged"
    )


def test_a_lasting_rise_with_a_falling_training_loss_is_overfitting_and_kept():
    # validation best at step 6 (3.9), then climbs to 4.3; the training loss falls from 3.0 to 2.0 meanwhile
    memorised = run_stability(make_run([5.0, 4.0, 3.9, 4.1, 4.3], train_loss=[4.0, 3.5, 3.0, 2.5, 2.0]))
    assert memorised.verdict == "overfit" and not memorised.excluded and memorised.rise == pytest.approx(0.4)
    assert memorised.reason == "validation loss 0.400 nats above its best as the training loss falls"
    # the same climb with a training loss that climbs too is instability
    assert run_stability(make_run([5.0, 4.0, 3.9, 4.1, 4.3], train_loss=[4.0, 3.5, 3.0, 3.2, 3.4])).excluded
    # a spike the validation loss recovers from is not overfitting, even if the training loss falls
    spike = run_stability(make_run([5.0, 4.0, 3.9, 4.3, 3.92], train_loss=[4.0, 3.5, 3.0, 2.5, 2.0]))
    assert spike.verdict == "unstable"
    said = verdict_sentence({"m": memorised, "s": spike, "g": run_stability(make_run([5.0, 4.0, 3.9]))})
    assert "1 of 3 judged runs breaks the rule and is left out of every analysis: s (largest rise 0.400" in said
    assert "1 of 3 overfits, which is no instability, and is kept: m (validation loss 0.400 nats" in said
    assert said.endswith("the other 1 is stable by the rule: the largest rise is 0.000 nats")
