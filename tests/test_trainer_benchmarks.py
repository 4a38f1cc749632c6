"""Trainer benchmarks at toy size on CPU: MFU configurations, the DDP comparison and the 2-GPU plan script."""

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from benchmarks import ddp, mfu, step_profile

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
    c = mfu.parse_config("mini-256x5:default:64:causal:chunked")
    assert (c["micro"], c["fused"], c["causal"], c["loss_chunk"]) == (0, True, True, mfu.CHUNK)
    c = mfu.parse_config("mini-336x7:reduce-overhead:64:16:chunk2048:foreach")
    assert (c["micro"], c["fused"], c["causal"], c["loss_chunk"]) == (16, False, False, 2048)
    for bad in ("chunk0", "chunkier", "turbo"):
        with pytest.raises(ValueError, match=f"unknown flag '{bad}'"):
            mfu.parse_config(f"mini-256x5:default:64:{bad}")


def test_mfu_measures_a_toy_step_with_accumulation_on_cpu():
    row = mfu.measure("tiny-32x2:eager:8:4", seq_len=32, vocab=64, steps=4, warmup=1, repeats=2, device="cpu")
    assert row["status"] == "ok" and row["tokens_per_s"] > 0 and row["micro"] == 4
    assert row["flops_per_token"] == 6 * (row["non_embedding_params"] + 32 * 64) + 12 * 2 * 32 * 32


def test_mfu_measures_a_toy_step_with_the_chunked_loss_and_causal_attention_on_cpu():
    row = mfu.measure(
        "tiny-32x2:eager:8:chunk48:causal", seq_len=32, vocab=64, steps=2, warmup=1, repeats=2, device="cpu"
    )
    assert row["status"] == "ok" and row["tokens_per_s"] > 0 and row["loss_chunk"] == 48 and row["causal"]
    step = mfu.build_step("tiny-32x2:eager:8:chunk48:causal", 32, 64, "cpu")
    assert step.cfg.loss_chunk == 48 and step.cfg.causal_attention and not step.cfg.compile
    assert step.model.config._attn_implementation == "sdpa_causal" and step.loss_fn.keywords == {"loss_chunk": 48}


def test_mfu_out_is_a_csv_file_or_a_folder_and_anything_else_is_refused(tmp_path, capsys):
    assert mfu.output_files(Path("a/b.csv"), None) == (Path("a/b.csv"), Path("a/b.log"))
    assert mfu.output_files(Path("a"), None) == (Path("a/mfu_run.csv"), Path("a/mfu_run.log"))
    assert mfu.output_files(Path("a"), "v5") == (Path("a/mfu_v5.csv"), Path("a/mfu_v5.log"))
    with pytest.raises(ValueError, match="drop --tag"):
        mfu.output_files(Path("a/b.csv"), "v5")
    with pytest.raises(ValueError, match="neither a .csv file name nor a folder"):
        mfu.output_files(Path("a/b.json"), None)
    assert mfu.main(["--configs", "", "--device", "cpu", "--out", str(tmp_path / "new" / "v5.csv")]) == 0
    assert sorted(p.name for p in (tmp_path / "new").iterdir()) == ["v5.log"]  # no config, so no rows to write
    assert (tmp_path / "new" / "v5.log").read_text().startswith("command: python benchmarks/mfu.py --configs")
    with pytest.raises(SystemExit):
        mfu.main(["--configs", "", "--out", str(tmp_path / "v5.log")])
    assert "is neither a .csv file name nor a folder" in capsys.readouterr().err


@pytest.mark.parametrize(
    "name, shapes, want",
    [
        ("nvjet_tst_128x256_64x4 <- aten::mm", [[65536, 256], [256, 12288]], "embed_logits_loss"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32 <- aten::mm", [[65536, 640], [640, 256]], "ffn"),
        ("sm90_xmma_gemm_bf16bf16_bf16f32 <- aten::addmm", [[65536, 256], [256, 256]], "attn_proj"),
        ("aten::mm", [[1024, 256], [256, 640]], "ffn"),
        ("fmha_cutlassF_bf16_aligned_64x64_rf_sm80 <- aten::_efficient_attention_forward", [], "attention"),
        ("flash_bwd_dq_dk_dv_loop_seqk_parallel_kernel <- aten::_flash_attention_backward", [], "attention"),
        ("multi_tensor_apply_kernel <- aten::_fused_adamw_", [], "optimizer"),
        (
            "triton_red_fused__log_softmax__to_copy_div_7 <- triton_red_fused__log_softmax__to_copy_div_7",
            [],
            "embed_logits_loss",
        ),
        (
            "triton_per_fused_add_mean_mul_pow_rsqrt_3 <- triton_per_fused_add_mean_mul_pow_rsqrt_3",
            [],
            "norm_elementwise",
        ),
        ("Memcpy DtoD (Device -> Device) <- aten::copy_", [], "other"),
        ("Memset (Device)", [], "other"),
    ],
)
def test_step_profile_categories_from_kernel_names_and_matmul_shapes(name, shapes, want):
    assert step_profile.category(name, shapes, vocab=12288, d_ff=640) == want  # mini-256x5's widths


def test_step_profile_of_a_toy_step_on_cpu(tmp_path):
    argv = ["--configs", "tiny-32x2:eager:4:causal", "--seq-len", "32", "--vocab", "96", "--steps", "2"]
    assert step_profile.main([*argv, "--warmup", "1", "--device", "cpu", "--out", str(tmp_path), "--tag", "t"]) == 0
    table = pd.read_csv(tmp_path / "step_profile_t.csv")
    cats = table[table.section == "category"].set_index("name")["ms_per_step"]
    wall = table[(table.section == "step") & (table.name == "wall")]["ms_per_step"].item()
    assert list(cats.index) == list(step_profile.CATEGORIES) and cats.sum() == pytest.approx(wall, rel=1e-6)
    for cat in ("embed_logits_loss", "attention", "attn_proj", "ffn", "norm_elementwise", "optimizer"):
        assert cats[cat] > 0, cat
    kernels = table[table.section == "kernel"]
    in_step = kernels[kernels.name.str.endswith("<- Optimizer.step")]  # AdamW's plain ops on CPU, told by caller
    assert in_step.name.nunique() >= 3 and set(in_step.category) == {"optimizer"}
    assert kernels.groupby("category")["ms_per_step"].sum().drop("gaps", errors="ignore").sum() <= wall
    log = (tmp_path / "step_profile_t.log").read_text()
    assert log.startswith("command: python benchmarks/step_profile.py --configs tiny-32x2:eager:4:causal")
    assert '"git_rev"' in log and "ffn" in log and "top" in log


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


def _plan(env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "benchmarks/trainer_v2_gpu.sh", "--profile", "smoke"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
def test_the_gpu_plan_runs_every_part_on_cpu_at_smoke_size(tmp_path):
    env = os.environ | dict(
        PYTHON=sys.executable, PYTHONPATH=str(ROOT), OUT=str(tmp_path / "out"), WORK=str(tmp_path / "w")
    )
    p = _plan(env)
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    out = sorted(x.name for x in (tmp_path / "out").iterdir())
    assert out == ["bench.tar.gz", "pilots.csv", "pilots.tar.gz", "plan.log"]
    bench = sorted(x.name for x in (tmp_path / "w" / "bench").iterdir())
    assert "ddp_v2_smoke.csv" in bench and "mfu_v5_gpu0_smoke.csv" in bench and "mfu_v5_gpu1_smoke.csv" in bench
    curves = pd.read_csv(tmp_path / "w" / "bench" / "ddp_v2_smoke.csv")
    assert set(curves["world_size"]) == {1, 2}
    table = pd.read_csv(tmp_path / "out" / "pilots.csv")
    assert len(table) == 6 and set(table["status"]) <= {"done", "paused"}
    again = _plan(env)
    assert "DDP: done in an earlier call" in again.stdout and "MFU: done in an earlier call" in again.stdout
