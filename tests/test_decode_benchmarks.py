"""The decode benchmarks' logic, in their CPU smoke mode (reference path, toy sizes; about a minute)."""

import importlib.util
import json
import math

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from sparsing_lib.decode import bench
from sparsing_lib.decode.bench import SUMMARY_COLUMNS, checked_error
from sparsing_lib.paths import ROOT


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow
def test_decode_benchmarks_smoke_write_raw_logs_and_summary(tmp_path):
    ffn = _script("decode_ffn").main(["--smoke", "--out", str(tmp_path)])
    assert len(ffn) == 12 and (ffn["dense_rel_err"] < 1e-5).all() and (ffn["sparse_rel_err"] < 1e-5).all()
    relu1 = ffn[(ffn["activation"] == "relu") & (ffn["batch"] == 1)]
    assert (relu1["limit"] > 2).all() and (relu1["kept"] - relu1["activation_ratio"]).abs().max() < 0.01
    assert (relu1["gate_cublas_us"] > 0).all() and (relu1["copy_sparse_us"] > 0).all()  # the diagnosis: batch 1,
    assert ffn.loc[ffn.index.difference(relu1.index), "gate_cublas_us"].isna().all()  # ReLU only
    model = _script("decode_model").main(["--smoke", "--out", str(tmp_path), "--steps", "1"])
    assert len(model) == 4 and (model["check_rel_err"] < 1e-6).all()
    summary = pd.read_csv(tmp_path / "decode_summary.csv")
    assert list(summary.columns[: len(SUMMARY_COLUMNS)]) == SUMMARY_COLUMNS and len(summary) == 16
    log = (tmp_path / "decode_ffn.log").read_text()
    assert log.startswith("# command: python benchmarks/decode_ffn.py --smoke") and "# hardware:" in log


def test_checked_error_takes_the_worst_of_several_calls():
    ref = torch.tensor([3.0, 4.0])  # norm 5
    outputs = iter([ref, ref + torch.tensor([0.0, 0.5]), ref])  # the second call is off by 0.5: error 0.1
    assert checked_error(lambda: next(outputs), ref) == pytest.approx(0.1)
    outputs = iter([ref, torch.tensor([float("nan"), 4.0]), ref])
    assert math.isnan(checked_error(lambda: next(outputs), ref))


def test_diagnosis_line_by_hand():
    row = dict(sparse_us=16.0, gate_only_us=12.0, gate_cublas_us=11.5, gate_limit_us=9.6, copy_sparse_us=11.25,
               copy_limit_sparse_us=10.83)  # fmt: skip
    line = bench.diagnosis_line(row)
    assert "its gate pass alone 12.00 us (75 %), so up and down add 4.00 us" in line
    assert "cuBLAS gate GEMV 11.50 us (W_gate at copy bandwidth 9.60)" in line
    assert "copy of the sparse bytes 11.25 us (at the 2 GiB copy's bandwidth 10.83)" in line


def test_diagnosis_on_the_cpu_times_cublas_and_the_copy_and_skips_the_kernel():
    """On the CPU (no kernels) the gate pass is NaN, never a number from another path; W_gate's bytes at a copy
    bandwidth of 1e9 B/s: 64 × 160 × 4 bytes (float32) take 40.96 µs."""
    x = torch.randn(1, 64, dtype=torch.float64)
    layers = [bench.controlled_layer(x, 160, 0.1, "relu", torch.float32, seed=s) for s in range(2)]
    logged = []
    out = bench.diagnose(layers, "reference", 4000.0, 1e9, 2, False, logged.append)
    assert out["gate_limit_us"] == pytest.approx(40.96)
    assert math.isnan(out["gate_only_us"]) and not logged
    assert out["gate_cublas_us"] > 0 and out["copy_sparse_us"] > 0


def _fake_run(folder, name, kind, params, probed=True, layers=(0.1, 0.3)):
    run = folder / name
    run.mkdir(parents=True)
    model = dict(name=name.rsplit("-", 1)[0], d_model=32, n_layers=len(layers), d_ff=80, n_heads=4, kind=kind,
                 non_embedding_params=params)  # fmt: skip
    (run / "config.json").write_text(json.dumps(dict(activation=name.split("-")[-1], model=model, vocab_size=96)))
    (run / "metrics.csv").write_text("step,train_loss\n0,3.0\n")
    if probed:
        cols = {"step": [1, 2], "activation_ratio": [0.5, sum(layers) / len(layers)], "zero_ratio": [0.6, 0.4]}
        cols |= {f"layer_{i}": [0.5, r] for i, r in enumerate(layers)}
        cols |= {f"zero_layer_{i}": [0.6, r + 0.1] for i, r in enumerate(layers)}
        pd.DataFrame(cols).to_csv(run / "sparsity.csv", index=False)


def test_largest_run_is_the_largest_probed_run_of_the_scale_family(tmp_path):
    _fake_run(tmp_path, "mini-160x3-relu", "scale", 900)
    _fake_run(tmp_path, "mini-336x7-relu", "scale", 9000, layers=(0.2, 0.1, 0.05))
    _fake_run(tmp_path, "mini-512x10-relu", "large", 30000, probed=False)  # not probed: no ratios to replicate
    _fake_run(tmp_path, "wd-96x16-relu", "width_depth", 99000)  # not the scale family
    _fake_run(tmp_path, "mini-336x7-relu-s1", "scale", 99000)  # a seed variant: load_runs leaves it out
    _fake_run(tmp_path, "mini-448x8-silu", "large", 18000)
    _fake_run(tmp_path, "mini-160x3-silu", "scale", 900)
    assert bench.largest_run("relu", tmp_path) == "mini-336x7-relu"
    assert bench.largest_run("silu", tmp_path) == "mini-448x8-silu"
    with pytest.raises(ValueError, match="no probed gelu run of the scale family"):
        bench.largest_run("gelu", tmp_path)
    assert bench.run_model("mini-336x7-relu", tmp_path) == (32, 3, 80, 4, 96)
    r = bench.run_ratios("mini-336x7-relu", tmp_path)  # the last checkpoint's row
    assert r["layers"] == [0.2, 0.1, 0.05] and r["nonzero"] == pytest.approx([0.3, 0.2, 0.15])
    assert r["mean"] == pytest.approx(0.35 / 3)


def test_model_benchmark_decodes_the_largest_relu_run_at_its_true_size():
    run = bench.largest_run("relu")
    cfg = json.loads((ROOT / "data" / "runs" / run / "config.json").read_text())
    m = cfg["model"]
    shapes = _script("decode_model").models(run, cuda=True)
    assert list(shapes) == ["2.4B", m["name"]]
    assert shapes[m["name"]] == (m["d_model"], m["n_layers"], m["d_ff"], m["n_heads"], cfg["vocab_size"])
    assert _script("decode_model").models(run, cuda=False) == {"smoke": (64, 3, 160, 4, 128)}


@pytest.mark.slow
def test_model_benchmark_with_compiled_non_ffn_parts(tmp_path):
    """``--compile``: torch.compile (CPU inductor here) on the parts of a step outside the FFN, in both engines;
    the compiled dense step matches the eager one, and the sparse engine still matches the reference."""
    model = _script("decode_model").main(["--smoke", "--compile", "--batches", "1", "--steps", "1", "--out",
                                          str(tmp_path)])  # fmt: skip
    assert len(model) == 2 and (model["engine"] == "compiled (default)").all() and (model["check_rel_err"] < 1e-5).all()
    log = (tmp_path / "decode_model.log").read_text()
    assert log.count("CHECK ok   step-1 hidden state, compiled dense engine vs eager") == 2
    assert "# non-FFN parts of a step: torch.compile, mode default" in log


def _separate_launches_step(eng, kv: torch.Tensor, pos: torch.Tensor, ids: torch.Tensor):
    """A decode step as the engine ran it up to code c7f51dc: RMSNorm, QKV product, cache write, attention with
    a mask over the whole cache, output projection, FFN input norm, dense FFN; normed logits for the argmax."""
    b, h, hd, d = eng.batch, eng.h, eng.hd, eng.d
    hs = eng.emb[ids]
    mask = (torch.arange(kv.shape[4]) <= pos)[None, None, None, :]
    for i in range(eng.n):
        q = (F.rms_norm(hs, (d,)) @ eng.wqkv[i].T).view(b, 3, h, hd)
        kv[i].index_copy_(3, pos, q[:, 1:].transpose(0, 1).unsqueeze(3))
        att = F.scaled_dot_product_attention(q[:, 0, :, None], kv[i, 0], kv[i, 1], attn_mask=mask)
        hs = torch.addmm(hs, att.reshape(hs.shape), eng.wo[i].T)
        hs = eng.dense_ffn(i, F.rms_norm(hs, (d,)), hs)
    return hs, (F.rms_norm(hs, (d,)) @ eng.emb.T).argmax(-1)


@pytest.mark.parametrize("batch", [1, 3])
def test_engine_step_equals_the_separate_launches_in_float64(batch):
    """The engine's step (norm folded into the attention launch, head without its norm) gives the hidden states,
    the cache and the next tokens of the earlier step, over several positions, in float64 on the CPU (the
    torch path of the attention launch; tests/test_decode_kernels.py checks the Triton kernel against it)."""
    eng = _script("decode_model").Engine((32, 3, 80, 4, 96), batch, "cpu", torch.float64, max_len=16)
    eng.cast()
    kv, pos, ids = eng.kv.clone(), torch.zeros(1, dtype=torch.long), eng.ids.clone()
    for _ in range(5):
        want, ids = _separate_launches_step(eng, kv, pos, ids)
        got = eng.step()
        assert ((got - want).norm() / want.norm()).item() < 1e-12
        assert torch.equal(eng.ids, ids) and (eng.kv - kv).abs().max().item() < 1e-12
        pos += 1
    assert eng.pos.item() == 5
