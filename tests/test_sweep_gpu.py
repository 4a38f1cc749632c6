"""The sweep's GPU script: which runs it evaluates (fast, on hand-made folders) and the whole script on CPU (slow)."""

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import sweep_gpu
from sparsing_lib.evaluation import suite

ROOT = Path(__file__).resolve().parents[1]


def _folder(runs: Path, run: str, status: str | None, parts: tuple[str, ...] = ()) -> None:
    (runs / run).mkdir(parents=True)
    if status:
        (runs / run / "env.json").write_text(json.dumps({"status": status}))
    for p in parts:
        (runs / run / p).mkdir(parents=True, exist_ok=True)
        (runs / run / p / "eval.json").write_text("{}")


def test_fig3_sweeps_only_for_the_plain_dense_scale_runs():
    assert sweep_gpu.wants_fig3("mini-160x3-relu") and sweep_gpu.wants_fig3("mini-512x10-silu")
    for run in (
        "mini-192x4-relu-s1",
        "mini-160x3-silu-f8",
        "wd-96x16-relu",
        "moe-192x4-e16-relu",
        "recipe-448x13-relu",
    ):
        assert not sweep_gpu.wants_fig3(run), run


def test_pending_runs_are_the_trained_ones_with_a_part_missing_moe_included(tmp_path):
    _folder(tmp_path, "mini-160x3-relu", "done", (".", "eval_fig3"))  # both parts written
    _folder(tmp_path, "mini-160x3-silu", "done", (".",))  # the sweeps missing
    _folder(tmp_path, "mini-192x4-relu-s1", "done", (".",))  # a variant: no sweeps wanted, so evaluated
    _folder(tmp_path, "mini-192x4-silu-s1", "done")
    _folder(tmp_path, "mini-256x5-relu", "paused")
    _folder(tmp_path, "mini-256x5-silu", "diverged")
    _folder(tmp_path, "moe-192x4-e16-relu", "done")
    _folder(tmp_path, "moe-192x4-e30-relu", "done", (".",))  # an MoE run: no sweeps wanted, so evaluated
    runs = sorted(p.name for p in tmp_path.iterdir()) + ["mini-320x6-relu"]  # the last has no folder yet
    assert sweep_gpu.pending(tmp_path, runs) == ["mini-160x3-silu", "mini-192x4-silu-s1", "moe-192x4-e16-relu"]
    states = {r: sweep_gpu.state(tmp_path, r) for r in runs}
    assert states["mini-160x3-relu"] == "trained and evaluated" == states["mini-192x4-relu-s1"]
    assert states["mini-160x3-silu"] == "trained, to evaluate"
    assert states["mini-256x5-relu"] == "training: paused" and states["mini-320x6-relu"] == "training: not started"
    assert states["moe-192x4-e16-relu"] == "trained, to evaluate"
    assert states["moe-192x4-e30-relu"] == "trained and evaluated"


def test_a_worker_past_its_deadline_starts_nothing(tmp_path, capsys):
    past = str(time.time() - 1)
    argv = ["eval", "--deadline", past, "--out", str(tmp_path), "--ckpt", str(tmp_path), "--run", "mini-160x3-relu"]
    assert sweep_gpu.main(argv) == 0 and "next call" in capsys.readouterr().out
    argv = ["train", "--deadline", past, "--", "--out", str(tmp_path), "--ckpt", str(tmp_path), "--run", "x"]
    assert sweep_gpu.main(argv) == 0 and "x: " in capsys.readouterr().out
    assert sweep_gpu.seconds_left(time.time() + 100, 30) == pytest.approx(70, abs=1)


def test_evaluations_sharing_a_gpu_each_get_a_share_of_the_padded_tokens_per_pass(tmp_path, monkeypatch):
    seen, evaluate_runs = [], suite.evaluate_runs
    monkeypatch.setattr(suite, "evaluate_runs", lambda *a, **k: seen.append(a[-1]))
    future = str(time.time() + 100)
    argv = ["eval", "--deadline", future, "--out", str(tmp_path), "--ckpt", str(tmp_path), "--per-gpu", "4"]
    assert sweep_gpu.main([*argv, "--run", "mini-256x5-relu"]) == 0
    assert seen == [suite.GPU_MAX_TOKENS // 4]
    # and the suite's command line receives it: one part per run here (no Fig. 3 sweeps)
    (tmp_path / "moe-192x4-e16-relu").mkdir()
    (tmp_path / "moe-192x4-e16-relu" / "step_0000100.pt").touch()
    calls = []
    monkeypatch.setattr(suite, "main", lambda argv: calls.append(argv) or 0)
    evaluate_runs(tmp_path, ["moe-192x4-e16-relu"], tmp_path, "cpu", fig3=False, max_tokens=12345)
    assert len(calls) == 1 and calls[0][calls[0].index("--max-tokens") + 1] == "12345"


@pytest.mark.slow
def test_the_sweep_script_trains_and_evaluates_the_smoke_grid_on_cpu_and_resumes(tmp_path):
    env = os.environ | dict(
        PYTHON=sys.executable, PYTHONPATH=str(ROOT), OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w"),
        PROFILE="smoke",
    )  # fmt: skip
    run = lambda: subprocess.run(  # noqa: E731
        ["bash", "benchmarks/sweep_gpu.sh", "all"], cwd=ROOT, env=env, capture_output=True, text=True
    )
    p = run()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert sorted(x.name for x in (tmp_path / "out").iterdir()) == ["runs.tar.gz", "sweep_gpu.log"]
    for name in ("tiny-32x2-relu", "tiny-32x2-silu"):
        folder = tmp_path / "w" / "runs" / name
        assert json.loads((folder / "env.json").read_text())["status"] == "done"
        scores = pd.read_csv(folder / "eval_fig3" / "eval.csv")
        assert {"dense", "cett-ppl-1%", "topk_token=0.5"} <= set(scores["setting"])
        assert set(pd.read_csv(folder / "eval.csv")["setting"]) == {
            "dense",
            "cett-ppl-1%",
            "cett-ppl-5%",
            "cett-ppl-10%",
        }
    again = run()
    assert "train: 0 of 2 runs to train" in again.stdout and "eval: 0 of 2 runs to evaluate" in again.stdout


@pytest.mark.slow
def test_a_fresh_machine_evaluates_the_runs_an_earlier_call_exported_without_training_them(tmp_path):
    """The recovery path on CPU: a call that trains but may not evaluate (EVAL_MIN_S above its budget) exports both
    runs; a call in a new work dir, carrying only those parts and run folders, evaluates them and trains nothing."""
    base = os.environ | dict(PYTHON=sys.executable, PYTHONPATH=str(ROOT), PROFILE="smoke")
    call = lambda **env: subprocess.run(  # noqa: E731
        ["bash", "benchmarks/sweep_gpu.sh", "all"], cwd=ROOT, env=base | env, capture_output=True, text=True
    )
    p = call(OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w"), EVAL_MIN_S="100000")
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    parts = sorted((tmp_path / "out").glob("*.model.tar.part-*"))
    assert {x.name.split(".model")[0] for x in parts} == {"tiny-32x2-relu", "tiny-32x2-silu"}
    carry = tmp_path / "carry"
    (carry / "runs").mkdir(parents=True)
    for x in parts:
        shutil.copy(x, carry)
    for name in ("tiny-32x2-relu", "tiny-32x2-silu"):
        shutil.copytree(tmp_path / "w" / "runs" / name, carry / "runs" / name)
    p = call(OUT=str(tmp_path / "out2"), WORK=str(tmp_path / "w2"), CARRY=str(carry))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "train: 0 of 2 runs to train" in p.stdout and "eval: 2 of 2 runs to evaluate" in p.stdout
    assert not (tmp_path / "w2" / "ckpt" / "tiny-32x2-relu").exists()  # nothing was trained again
    for name in ("tiny-32x2-relu", "tiny-32x2-silu"):
        assert (tmp_path / "w2" / "runs" / name / "eval_fig3" / "eval.json").exists()
        assert "cett-ppl-1%" in set(pd.read_csv(tmp_path / "w2" / "runs" / name / "eval.csv")["setting"])
    assert sorted(x.name for x in (tmp_path / "out2").iterdir()) == ["runs.tar.gz", "sweep_gpu.log"]  # all evaluated


def test_parts_carried_over_several_calls_are_kept_until_their_set_is_complete(tmp_path):
    """A model of more parts than one call can carry beside .evaldata arrives over several calls, each carry list
    replacing the last: the parts a call brought must still be there when the rest arrive (BUDGET=1: no training
    or evaluation, only the unpacking)."""
    model = tmp_path / "tiny-32x2-relu"
    model.mkdir()
    (model / "config.json").write_text("{}")
    weights = os.urandom(3000)
    (model / "model.safetensors").write_bytes(weights)
    parts = sweep_gpu.pack(model, tmp_path / "parts", part_bytes=1000)
    assert len(parts) >= 4
    env = os.environ | dict(
        PYTHON=sys.executable, PYTHONPATH=str(ROOT), OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w"),
        PROFILE="smoke", BUDGET="1", CARRY=str(tmp_path / "carry"),
    )  # fmt: skip
    unpacked = tmp_path / "w" / "models" / "tiny-32x2-relu" / "model.safetensors"
    for half in (parts[:2], parts[2:]):  # each call carries only its own parts, as the device's carry list does
        shutil.rmtree(tmp_path / "carry", ignore_errors=True)
        (tmp_path / "carry").mkdir()
        for x in half:
            shutil.copy(x, tmp_path / "carry")
        cmd = ["bash", "benchmarks/sweep_gpu.sh", "all"]
        p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
        assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
        if half[0] == parts[0]:
            assert "2 of its parts are here so far" in p.stdout and not unpacked.exists()
    assert unpacked.read_bytes() == weights


def test_a_call_with_no_time_left_skips_both_parts_instead_of_reporting_a_failure(tmp_path):
    """A call whose budget is spent (here by a budget of 1 s) must say that the next call goes on, not launch
    workers that the shell's timeout then kills: in a real call that read as 'a run failed' (sweep_s4, call 1)."""
    env = os.environ | dict(
        PYTHON=sys.executable, PYTHONPATH=str(ROOT), OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w"),
        PROFILE="smoke", BUDGET="1",
    )  # fmt: skip
    p = subprocess.run(["bash", "benchmarks/sweep_gpu.sh", "all"], cwd=ROOT, env=env, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "the next call trains" in p.stdout and "the next call evaluates" in p.stdout
    assert "failed" not in p.stdout
    assert not (tmp_path / "w" / "ckpt" / "logs").exists()


def test_a_staging_call_copies_what_it_carried_and_a_later_call_links_it_back(tmp_path):
    """The 64 MiB carry limit: one call carries .corpus and stages it; the next carries .evaldata instead, and the
    checkout there has no .corpus, so the script must link the staged copy back."""
    repo, stage = tmp_path / "repo", tmp_path / "stage"
    (repo / ".corpus").mkdir(parents=True)
    (repo / ".corpus" / "train.u16.xz").write_text("tokens")
    env = os.environ | dict(PYTHON=sys.executable, OUT=str(tmp_path / "out"), STAGE=str(stage), PROFILE="smoke")
    call = lambda: subprocess.run(  # noqa: E731
        ["bash", str(ROOT / "benchmarks" / "sweep_gpu.sh"), "stage"], cwd=repo, env=env, capture_output=True, text=True
    )
    p = call()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (stage / ".corpus" / "train.u16.xz").read_text() == "tokens" and (stage / ".corpus.done").exists()
    assert ".evaldata: neither carried nor staged" in p.stdout and "train:" not in p.stdout
    shutil.rmtree(repo / ".corpus")  # the next call's carry list names .evaldata only
    (repo / ".evaldata").mkdir()
    (repo / ".evaldata" / "evaldata.tar.xz").write_text("tasks")
    p = call()
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert (repo / ".corpus").is_symlink() and (repo / ".corpus" / "train.u16.xz").read_text() == "tokens"
    assert (stage / ".evaldata" / "evaldata.tar.xz").read_text() == "tasks"


def test_trained_runs_to_evaluate_are_exported_once_in_parts_and_unpack_on_a_fresh_machine(tmp_path, monkeypatch):
    """A machine given back between calls must lose no trained run: each one still to evaluate leaves as parts
    small enough to come back, and a fresh machine rebuilds the model folder (and the run folder) from them."""
    runs, ckpt, models, out = tmp_path / "runs", tmp_path / "ckpt", tmp_path / "models", tmp_path / "out"
    _folder(runs, "mini-192x4-relu-s1", "done")  # trained, to evaluate
    _folder(runs, "mini-192x4-silu-s1", "done", (".",))  # already evaluated: nothing to save
    _folder(runs, "mini-256x5-relu", "paused")  # not trained: its checkpoint alone cannot be evaluated
    for run in ("mini-192x4-relu-s1", "mini-192x4-silu-s1", "mini-256x5-relu"):
        (ckpt / run).mkdir(parents=True)
        (ckpt / run / "step_000010.pt").touch()
    weights = os.urandom(2500)

    def fake_export(ck, run_folder, dest):
        assert Path(ck).name == "step_000010.pt" and Path(run_folder).name == Path(dest).name
        dest.mkdir(parents=True)
        (dest / "config.json").write_text("{}")
        (dest / "model.safetensors").write_bytes(weights)

    monkeypatch.setattr(sweep_gpu.checkpoints, "export", fake_export)
    names = sorted(p.name for p in runs.iterdir())
    assert sweep_gpu.export_pending(runs, names, ckpt, models, out, limit=3, part_bytes=1000) == ["mini-192x4-relu-s1"]
    parts = sorted(out.iterdir())
    assert len(parts) >= 3 and all(p.stat().st_size <= 1000 for p in parts)  # the archive is over 2500 bytes
    assert sweep_gpu.export_pending(runs, names, ckpt, models, out, limit=3, part_bytes=1000) == []  # once only
    # a fresh machine: the parts and the run folder carried; an incomplete set waits for the rest
    carry, fresh_models, fresh_runs = tmp_path / "carry", tmp_path / "m2", tmp_path / "r2"
    carry.mkdir()
    for p in parts[:-1]:
        shutil.copy(p, carry)
    shutil.copytree(runs / "mini-192x4-relu-s1", carry / "runs" / "mini-192x4-relu-s1")
    assert sweep_gpu.unpack(carry, fresh_models, fresh_runs) == []
    shutil.copy(parts[-1], carry)
    assert sweep_gpu.unpack(carry, fresh_models, fresh_runs) == ["mini-192x4-relu-s1"]
    assert (fresh_models / "mini-192x4-relu-s1" / "model.safetensors").read_bytes() == weights
    assert sweep_gpu.pending(fresh_runs, ["mini-192x4-relu-s1"]) == ["mini-192x4-relu-s1"]
    # with no checkpoint on this machine the evaluation reads the model folder; with one, the checkpoint
    assert sweep_gpu.checkpoint_root("mini-192x4-relu-s1", tmp_path / "none", fresh_models) == fresh_models
    assert sweep_gpu.checkpoint_root("mini-192x4-relu-s1", ckpt, fresh_models) == ckpt
    assert sweep_gpu.checkpoint_root("mini-192x4-relu-s1", tmp_path / "none", None) == tmp_path / "none"
