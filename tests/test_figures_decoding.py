"""The decoding chapter's library: the bandwidth model by hand, the planned and measured paths, claim 19."""

import matplotlib
import pandas as pd
import pytest

from sparsing_lib.decode import bench
from sparsing_lib.figures import decoding as D

matplotlib.use("Agg")


def test_limits_by_hand():
    assert D.ffn_limit(0.065, 0.065) == pytest.approx(3 / 1.13)
    assert D.ffn_limit(1.0, 0.4) == pytest.approx(3 / 2.4)
    ffn = 40 * 3 * 2304 * 5760 * 2
    other = (4 * 2304 * 2304 * 40 + 32000 * 2304) * 2
    assert D.attention_bytes() == other
    assert D.model_limit(0.1, 0.1) == pytest.approx((ffn + other) / (ffn * 1.2 / 3 + other))


def _unmeasured():
    return {"summary": None, "runs": D.runs_table(), "measured": False, "source": "H200"}


def _measured():
    rows = [
        dict(level="ffn layer", shape="2.4B", activation="relu", activation_ratio=0.065, batch=1, dense_us=33.0,
             sparse_us=11.0, speedup=3.0, limit=2.65),
        dict(level="ffn layer", shape="2.4B", activation="silu", activation_ratio=0.398, batch=4, dense_us=33.0,
             sparse_us=30.0, speedup=1.1, limit=1.05),
        dict(level="model", shape="2.4B model", activation="relu", activation_ratio=0.08, batch=1, dense_us=2000.0,
             sparse_us=1250.0, speedup=1.6, limit=1.58, pattern="active = CETT ratios"),
    ]  # fmt: skip
    return {"summary": pd.DataFrame(rows), "runs": D.runs_table(), "measured": True, "source": "H200"}


def test_unmeasured_chapter_says_so_without_numbers():
    res = _unmeasured()
    n = D.numbers(res)
    assert n["measured_text"].startswith("Not measured yet") and not any(
        c.isdigit() for c in n["measured_text"].replace("H200", "")
    )
    assert n["paper_speedup"] == "4.1" and n["limit_065"] == "2.65"
    table = D.table(res)
    assert len(table) == 24 and table["dense (µs)"].isna().all()
    assert table["bandwidth limit"].iloc[0] == pytest.approx(3 / 1.13)
    assert D.claims(res) == [dict(id=19, verdict="untested", basis="—", note=n["figure_verdict"])]
    assert D.figure(res) is not None


def test_measured_chapter_quotes_the_rows():
    res = _measured()
    n = D.numbers(res)
    assert "11.0 µs against 33.0 µs dense: 3.00×" in n["measured_text"]
    assert "500 against 800 tokens/s, 1.60×" in n["measured_text"]
    (claim,) = D.claims(res)
    assert claim["verdict"] == "untested" and claim["basis"] == "our runs"
    assert "FFN layer 3.00× of a 2.65× limit" in claim["note"] and "whole 2.4B model 1.60× of 1.58×" in claim["note"]
    assert len(D.table(res)) == 3
    assert D.figure(res) is not None


def test_runs_table_reads_our_runs():
    t = D.runs_table()
    relu = t[t["run"] == "mini-336x7-relu"].iloc[0]
    assert relu["FFN limit, CETT-PPL-1%"] == pytest.approx(
        D.ffn_limit(relu["non-zero ratio"], relu["CETT-PPL-1% ratio"])
    )
    assert (t.loc[t["activation"] == "silu", "non-zero ratio"] == 1).all()


def test_full_profile_points_to_the_gpu_script():
    with pytest.raises(ValueError, match="decode_all.sh"):
        D.results("full")


def test_model_run_is_read_from_the_rows():
    """The run the whole-model rows replicate: their ``run`` column; in a summary from before that column (the
    committed third run), the ReLU run of their own model; without model rows, the benchmark's choice now."""
    res = _measured()
    mini = dict(res["summary"].iloc[2], model="mini-336x7", shape="mini-336x7 model")
    res["summary"] = pd.concat([res["summary"], pd.DataFrame([mini])], ignore_index=True)
    res["summary"].loc[2, "model"] = "2.4B"
    assert D.model_run(res) == "mini-336x7-relu"
    res["summary"]["run"] = "mini-448x8-relu"
    assert D.model_run(res) == "mini-448x8-relu"
    assert D.numbers(res)["model_run"] == "mini-448x8-relu"
    assert D.model_run(_unmeasured()) == bench.largest_run("relu")


def test_numbers_name_the_largest_runs_and_their_size():
    n = D.numbers(_unmeasured())
    assert n["relu_run"] == bench.largest_run("relu") and n["silu_run"] == bench.largest_run("silu")
    assert n["largest_params"] == f"{D.run_params(bench.largest_run('relu')) / 1e6:.0f}"
