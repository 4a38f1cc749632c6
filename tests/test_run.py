"""Runner: grid slices, one run's folder end to end, skipping finished runs, failure records."""

import json
import sys

import numpy as np
import pandas as pd
import pytest

from sparsing_lib import paths, runs
from sparsing_lib import run as runner
from sparsing_lib.probes import ProbeConfig
from sparsing_lib.train import TrainConfig

VOCAB = 64


def fake_corpus(_name):
    ids = ((np.arange(30_000) * 5) % VOCAB).astype(np.uint16)
    return ids, ids[:4000], {"a": ids[:600], "b": ids[600:1200]}, VOCAB


@pytest.fixture
def tiny(monkeypatch):
    monkeypatch.setattr(runner, "load_corpus", fake_corpus)
    monkeypatch.setattr(
        runner,
        "train_config",
        lambda m, p: TrainConfig(
            tokens=30 * 8 * 32, batch_size=8, seq_len=32, n_checkpoints=4, eval_tokens=512, log_every=5, compile=False
        ),
    )
    monkeypatch.setattr(
        runner,
        "probe_config",
        lambda p: ProbeConfig(
            joint_last=2,
            tokens=256,
            domain_tokens=64,
            vocab_tokens=1600,  # 576 + 576 validation tokens (windows of 32), 448 from the training split
            batch_size=8,
            topk_values=[0.5],
            fat_values=[0.0],
        ),
    )


def test_grids_and_slices():
    assert runner.GRIDS["proof"] == ["mini-160x3-relu", "mini-160x3-silu", "mini-192x4-relu", "mini-192x4-silu"]
    assert runner.select("proof", "1:3") == ["mini-160x3-silu", "mini-192x4-relu"]
    assert runner.select("proof", "mini-192x4-silu") == ["mini-192x4-silu"]
    assert runner.select("scales", None) == runner.GRIDS["scales"] and len(runner.GRIDS["scales"]) == 10
    with pytest.raises(ValueError, match="not in grid"):
        runner.select("proof", "mini-336x7-relu")
    variants = ["mini-192x4-silu-s1", "mini-160x3-relu-f8"]
    assert runner.select("proof", ",".join(variants)) == variants
    with pytest.raises(ValueError, match="not in grid"):
        runner.select("proof", "mini-336x7-relu-s1")  # another seed of a run the grid does not hold
    with pytest.raises(ValueError, match="grid="):
        runner.select("nope", None)
    with pytest.raises(ValueError, match="does not follow the run-name grammar"):
        runs.parse_run("mini-160x3-gelu")


def test_the_sweep_grid_is_exactly_the_issues_runs():
    # counted by hand: 5 scales x 2 activations = 10, 2 larger scales x 2 = 4, seeds 1 and 2 of mini-192x4 and
    # mini-320x6 x 2 activations = 8 (seed 0 is the scale run), mini-160x3 on 1/8 and 1/32 of the split x 2 = 4,
    # 6 width-depth variants (ReLU; their reference mini-192x4-relu is a scale run), 3 MoE (ReLU), and the
    # recipe-validation run (ReLU, last): 36
    scales = [f"mini-{s}-{a}" for s in ("160x3", "192x4", "256x5", "320x6", "336x7") for a in ("relu", "silu")]
    large = ["mini-448x8-relu", "mini-448x8-silu", "mini-512x10-relu", "mini-512x10-silu"]
    seeds = [f"mini-{s}-{a}-s{k}" for s in ("192x4", "320x6") for k in (1, 2) for a in ("relu", "silu")]
    repetition = ["mini-160x3-relu-f8", "mini-160x3-silu-f8", "mini-160x3-relu-f32", "mini-160x3-silu-f32"]
    wd = [f"wd-{s}-relu" for s in ("96x16", "128x9", "160x6", "224x3", "272x2", "384x1")]
    moe = ["moe-192x4-e16-relu", "moe-192x4-e30-relu", "moe-192x4-e60-relu"]
    sweep = runner.GRIDS["sweep"]
    assert len(sweep) == len(set(sweep)) == 36
    assert sweep == scales + large + seeds + repetition + wd + moe + ["recipe-448x13-relu"]  # the issue's order
    assert set(runner.GRIDS["width_depth"]) <= set(sweep) and "mini-192x4-relu" in scales
    assert runner.select("sweep", ",".join(sweep)) == sweep and runner.select("sweep", "10:14") == large
    for name in sweep:  # every name gives a recipe: tokens per parameter as the issue asks, seed from the name
        spec, act, cfg, variant = runner.recipe(name, "full")
        per_param = cfg.steps * cfg.tokens_per_step / spec.non_embedding_params
        assert per_param >= {"scale": 100, "large": 30, "width_depth": 50, "moe": 100, "recipe": 40}[spec.kind], name
        assert cfg.decay_frac == (0.1 if spec.kind == "recipe" else 0.0), name
        assert cfg.seed == variant.seed == runs.run_variant(name).seed
        twin = runner.recipe(runs.run_name(spec.name, act), "full")[2]
        assert cfg.tokens == twin.tokens  # a variant trains as long as its seed-0, whole-split twin


def test_full_recipe_gives_largest_scale_100_tokens_per_parameter():
    from sparsing_lib.models import MINI

    biggest = max((s for s in MINI.values() if s.kind == "scale"), key=lambda s: s.non_embedding_params)
    cfg = runner.train_config(biggest.name, "full")
    assert cfg.steps * cfg.tokens_per_step >= 100 * biggest.non_embedding_params


def test_width_depth_variants_get_half_the_data_moe_the_full_recipe():
    from sparsing_lib.models import MINI

    for spec in MINI.values():
        cfg = runner.train_config(spec.name, "full")
        per_param = cfg.steps * cfg.tokens_per_step / spec.non_embedding_params
        if spec.kind == "width_depth":
            assert 50 <= per_param < 51
        elif spec.kind == "large":  # LARGE_TOKENS_PER_PARAM: 3.0B tokens at 100 for mini-512x10, 0.90B at 30
            assert 30 <= per_param < 31 and runner.LARGE_TOKENS_PER_PARAM == 30
        elif spec.kind == "recipe":  # more data than its twin mini-512x10, within the ~1.35B tokens allowed
            assert 40 <= per_param < 41 and cfg.steps * cfg.tokens_per_step < 1.35e9
        else:
            assert per_param >= 100


def test_run_one_writes_the_run_folder_and_skips_when_done(tiny, tmp_path):
    rec = runner.run_one(
        "tiny-32x2-relu", tmp_path / "runs", tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False
    )
    assert rec["status"] == "done", rec.get("traceback")
    folder = tmp_path / "runs" / "tiny-32x2-relu"
    names = {
        "config.json",
        "metrics.csv",
        "sparsity.csv",
        "pareto.csv",
        "env.json",
        "cett.json",
        "neuron_frequency.npz",
        "vocab_ratios.npz",
    }
    assert names <= {p.name for p in folder.iterdir()}
    assert not list(folder.glob("*.tmp"))  # atomic writes leave no temporaries
    env = json.loads((folder / "env.json").read_text())
    assert env["tokens"] == 30 * 8 * 32 and env["torch"] and env["git_rev"]
    git = paths.git_state()  # provenance comes from paths.git_state, with its dirty flag and source
    assert (env["git_rev"], env["git_dirty"], env["git_rev_source"]) == (git["revision"], git["dirty"], git["source"])
    assert len(pd.read_csv(folder / "sparsity.csv")) == 4
    assert runs.run_format(folder) == runs.FORMAT
    vr, nf = runs.load_arrays(folder, "vocab_ratios"), runs.load_arrays(folder, "neuron_frequency")
    steps = pd.read_csv(folder / "sparsity.csv").step.to_numpy()
    assert vr["steps"].tolist() == nf["steps"].tolist() == steps[[0, 2, 3]].tolist()  # first, middle, last of 4
    assert vr["sources"].tolist() == ["a", "b", "train"] and vr["source_tokens"].tolist() == [576, 576, 448]
    assert vr["count"].sum() == 1600 and vr["mean"].shape == (3, VOCAB) and nf["frequency"].shape[:2] == (3, 2)
    stamp = (folder / "env.json").stat().st_mtime_ns
    again = runner.run_one(
        "tiny-32x2-relu", tmp_path / "runs", tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False
    )
    assert again["status"] == "done" and (folder / "env.json").stat().st_mtime_ns == stamp


def test_a_broken_probe_is_recorded_not_raised(tiny, tmp_path, monkeypatch):
    def boom(*a, **k):
        raise RuntimeError("probe exploded")

    monkeypatch.setattr(runner, "probe_checkpoints", boom)
    rec = runner.run_one(
        "tiny-32x2-silu", tmp_path / "runs", tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False
    )
    assert rec["status"] == "failed" and "probe exploded" in rec["error"]
    env = json.loads((tmp_path / "runs" / "tiny-32x2-silu" / "env.json").read_text())
    assert env["status"] == "failed"


def test_an_moe_run_trains_and_probes_its_expert_counts(tiny, tmp_path):
    rec = runner.run_one(
        "moe-192x4-e16-relu", tmp_path / "runs", tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False
    )
    assert rec["status"] == "done", rec.get("traceback")
    run = runs.load_run(tmp_path / "runs" / "moe-192x4-e16-relu")
    assert len(run["sparsity"]) == 4 and (run["sparsity"]["top_k"] == 4).all()
    assert list(run["pareto"]["value"]) == list(range(1, 9)) and "cett" not in run


def test_a_recipe_run_decays_the_learning_rate_after_its_stable_checkpoints(tiny, tmp_path):
    rec = runner.run_one(
        "tiny-32x2-relu",
        tmp_path / "runs",
        tmp_path / "ck",
        "smoke",
        "smoke",
        None,
        "cpu",
        progress=False,
        decay_frac=0.2,
    )
    assert rec["status"] == "done", rec.get("traceback")
    run = runs.load_run(tmp_path / "runs" / "tiny-32x2-relu")
    assert run["config"]["train"]["decay_frac"] == 0.2
    lr = run["metrics"].set_index("step")["lr"]
    assert lr[20] == lr.max() and lr[30] < 0.2 * lr.max()  # steps 25-30 are the decay phase
    # 30 steps, warm-up 1, decay 6: four stable checkpoints over steps 1-24 (1, 8.67, 16.33, 24) and the last step
    saved = sorted(int(p.stem.split("_")[1]) for p in (tmp_path / "ck" / "tiny-32x2-relu").glob("step_*.pt"))
    assert saved == [1, 9, 16, 24, 30] and run["sparsity"]["step"].tolist() == saved
    assert run["cett"]["joint_steps"] == [16, 24]  # the CETT search stays in the stable phase (joint_last 2)
    assert run["metrics"].dropna(subset=["val_loss"])["step"].tolist() == saved


def test_seed_and_split_come_from_the_name_and_are_recorded(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "probe_checkpoints", lambda *a, **k: None)
    out = tmp_path / "runs"
    for name in ("tiny-32x2-relu", "tiny-32x2-relu-s1", "tiny-32x2-relu-s1-f8"):  # one folder each, side by side
        rec = runner.run_one(name, out, tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False)
        assert rec["status"] == "done", rec.get("traceback")
    every = runs.load_runs(out, variants=True, unstable=True)  # toy runs this short may break the stability rule
    recorded = {
        n: (r["config"]["seed"], r["config"]["train"]["seed"], r["config"]["train_fraction"]) for n, r in every.items()
    }
    assert recorded == {
        "tiny-32x2-relu": (0, 0, 1.0),
        "tiny-32x2-relu-s1": (1, 1, 1.0),
        "tiny-32x2-relu-s1-f8": (1, 1, 0.125),
    }
    cfg, env = every["tiny-32x2-relu-s1-f8"]["config"], every["tiny-32x2-relu-s1-f8"]["env"]
    assert cfg["train_tokens_used"] == env["corpus_tokens"] == 30_000 // 8 == 3750  # the first 1/8 of the split
    # the same training tokens as the whole-split twin: 7,680 tokens on 3,750, about two passes
    assert env["tokens"] == every["tiny-32x2-relu"]["env"]["tokens"] == 30 * 8 * 32
    losses = {n: r["metrics"]["train_loss"].to_numpy() for n, r in every.items()}
    assert not np.allclose(losses["tiny-32x2-relu"], losses["tiny-32x2-relu-s1"])  # another seed, another run
    assert list(runs.load_runs(out, unstable=True)) == ["tiny-32x2-relu"]  # the chapters' view leaves the variants out


def test_a_share_of_the_split_trains_as_long_as_its_twin():
    for profile, model in (("smoke", "tiny-32x2"), ("full", "mini-160x3")):
        twin = runner.recipe(f"{model}-relu", profile)
        for k in (8, 32):
            spec, act, cfg, variant = runner.recipe(f"{model}-relu-f{k}", profile)
            assert (cfg.tokens, cfg.steps, variant.fraction) == (twin[2].tokens, twin[2].steps, 1 / k)


def test_the_cli_has_no_seed_or_fraction_flag_the_name_gives_them():
    for flag in ("--seed", "--fraction"):
        with pytest.raises(SystemExit):
            runner.main(["--grid", "smoke", flag, "1"])


def test_smoke_runs_trains_the_smoke_grid_once_per_process(monkeypatch):
    calls = []
    monkeypatch.setattr(runner, "main", lambda argv: calls.append(argv) or 0)
    runner.smoke_runs.cache_clear()
    try:
        first, second = runner.smoke_runs(), runner.smoke_runs()
    finally:
        runner.smoke_runs.cache_clear()
    assert first == second and first.name == "runs" and len(calls) == 1
    argv = calls[0]
    assert argv[argv.index("--grid") + 1] == "smoke" and argv[argv.index("--ckpt") + 1] == str(first.parent / "ckpt")


def test_format_is_recorded_and_an_old_folder_or_a_bad_name_is_refused(tiny, tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "probe_checkpoints", lambda *a, **k: None)
    out = tmp_path / "runs"
    rec = runner.run_one("tiny-32x2-relu-f2", out, tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False)
    assert rec["status"] == "done", rec.get("traceback")
    cfg = runs.load_run(out / "tiny-32x2-relu-f2")["config"]
    assert (cfg["format"], cfg["seed"], cfg["train_fraction"], cfg["world_size"]) == (runner.FORMAT, 0, 0.5, 1)
    assert cfg["train_tokens_used"] == 15_000 and rec["corpus_tokens"] == 15_000  # the first half of 30,000
    with pytest.raises(ValueError, match="run-name grammar"):
        runner.run_one("tiny-32x2-relu-f1", out, tmp_path / "ck", "smoke", "smoke", None, "cpu")
    old = tmp_path / "old"
    (old / "tiny-32x2-silu").mkdir(parents=True)
    (old / "tiny-32x2-silu" / "config.json").write_text(json.dumps(dict(run="tiny-32x2-silu")))
    with pytest.raises(ValueError, match="run folder of the old format"):
        runner.run_one("tiny-32x2-silu", old, tmp_path / "ck", "smoke", "smoke", None, "cpu", progress=False)


def test_launch_places_runs_on_gpus_and_logs_each(tmp_path):
    from sparsing_lib.launch import launch

    script = "import os, sys, time; time.sleep(0.3); print('gpu', os.environ.get('CUDA_VISIBLE_DEVICES'), sys.argv[-1])"
    codes = launch(["a", "b", "c", "d"], [sys.executable, "-c", script], tmp_path, jobs=1, gpus=2, poll=0.05)
    assert codes == {"a": 0, "b": 0, "c": 0, "d": 0}
    gpus = {r: (tmp_path / f"{r}.log").read_text().splitlines()[-1] for r in "abcd"}
    assert gpus["a"] == "gpu 0 a" and gpus["b"] == "gpu 1 b"  # one per GPU; c and d wait for a free one
    assert {gpus["c"][:5], gpus["d"][:5]} <= {"gpu 0", "gpu 1"}
    fail = launch(["x"], [sys.executable, "-c", "raise SystemExit(3)"], tmp_path, jobs=2)
    assert fail == {"x": 3}
    bar = "import sys; sys.stdout.write('suite: 12%|#  | 40/340\\r'); sys.stdout.flush(); raise SystemExit(1)"
    launch(["y", "y"], [sys.executable, "-c", bar], tmp_path, poll=0.05)  # stopped mid-bar, then launched again
    lines = (tmp_path / "y.log").read_bytes().split(b"\n")  # bytes: read_text would turn the bar's \r into \n
    assert [line[:2] for line in lines] == [b"# ", b"su", b"# ", b"su"]  # each launch's header on its own line
