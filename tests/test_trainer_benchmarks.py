"""Trainer benchmarks at toy size on CPU: MFU configurations, the DDP comparison and the 2-GPU plan script."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import ddp, mfu

ROOT = Path(__file__).resolve().parents[1]


def test_mfu_configs_parse_and_bad_ones_give_one_message():
    c = mfu.parse_config("mini-448x8:reduce-overhead:256:64")
    assert (c["model"], c["mode"], c["batch"], c["micro"], c["fused"]) == (
        "mini-448x8",
        "reduce-overhead",
        256,
        64,
        True,
    )
    assert not mfu.parse_config("mini-256x5:default:64:foreach")["fused"]
    with pytest.raises(ValueError, match="mode='turbo' is not valid"):
        mfu.parse_config("mini-256x5:turbo:64")
    with pytest.raises(ValueError, match="micro-batch 5 does not divide batch 64"):
        mfu.parse_config("mini-256x5:default:64:5")
    with pytest.raises(ValueError, match="is not model:mode:batch"):
        mfu.parse_config("mini-256x5:default")


def test_mfu_measures_a_toy_step_with_accumulation_on_cpu():
    row = mfu.measure("tiny-32x2:eager:8:4", seq_len=32, vocab=64, steps=4, warmup=1, repeats=2, device="cpu")
    assert row["status"] == "ok" and row["tokens_per_s"] > 0 and row["micro"] == 4
    assert row["flops_per_token"] == 6 * (row["non_embedding_params"] + 32 * 64) + 12 * 2 * 32 * 32


def test_ddp_compare_on_hand_made_curves():
    curves = pd.DataFrame(
        dict(
            world_size=[1, 1, 1, 2, 2, 2, 1, 1, 1],
            seed=[0, 0, 0, 0, 0, 0, 1, 1, 1],
            step=[25, 50, 75] * 3,
            train_loss=[5.0, 4.0, 3.5, 5.0, 4.01, 3.48, 5.2, 4.1, 3.3],
            val_loss=[float("nan"), 4.1, 3.6, float("nan"), 4.1, 3.63, float("nan"), 4.3, 3.5],
            tokens_per_s=[1.0, 10.0, 12.0, 1.0, 19.0, 21.0, 1.0, 9.0, 9.0],
        )
    )
    both = ddp.compare(curves).set_index(["world_size", "seed"])
    noise = both.loc[(1, 1)]
    assert noise["max_abs_train_loss_diff"] == pytest.approx(0.2) and noise["max_abs_val_loss_diff"] == pytest.approx(
        0.2
    )
    s = both.xs(0, level="seed")
    assert s.loc[1, "tokens_per_s"] == 11.0 and s.loc[2, "tokens_per_s"] == 20.0  # first interval left out
    assert s.loc[2, "speedup"] == pytest.approx(20 / 11)
    assert s.loc[2, "max_abs_train_loss_diff"] == pytest.approx(0.02)
    assert s.loc[2, "max_abs_val_loss_diff"] == pytest.approx(0.03) and s.loc[2, "final_val_loss"] == 3.63


@pytest.mark.slow
def _plan(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "benchmarks/trainer_v2_gpu.sh", "--profile", "smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


def test_the_gpu_plan_runs_every_part_on_cpu_at_smoke_size(tmp_path):
    env = os.environ | dict(
        PYTHON=sys.executable, PYTHONPATH=str(ROOT), OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w")
    )
    p = _plan(env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = sorted(x.name for x in (tmp_path / "out").iterdir())
    assert out == ["bench.tar.gz", "pilots.csv", "pilots.tar.gz", "plan.log"]
    bench = sorted(x.name for x in (tmp_path / "w" / "bench").iterdir())
    assert "ddp_v2_smoke.csv" in bench and "mfu_v4_gpu0_smoke.csv" in bench and "mfu_v4_gpu1_smoke.csv" in bench
    curves = pd.read_csv(tmp_path / "w" / "bench" / "ddp_v2_smoke.csv")
    assert set(curves["world_size"]) == {1, 2}
    table = pd.read_csv(tmp_path / "out" / "pilots.csv")
    assert len(table) == 6 and set(table["status"]) <= {"done", "paused"}
    again = _plan(env)
    assert "DDP: done in an earlier call" in again.stdout and "MFU: done in an earlier call" in again.stdout
