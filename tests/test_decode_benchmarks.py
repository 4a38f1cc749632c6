"""The decode benchmarks' logic, in their CPU smoke mode (reference path, toy sizes; about a minute)."""

import importlib.util
import math

import pandas as pd
import pytest
import torch

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
