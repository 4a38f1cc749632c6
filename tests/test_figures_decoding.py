"""The decoding chapter's library: the bandwidth model by hand, the planned and measured paths, claim 19."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from sparsing_lib.decode import bench
from sparsing_lib.figures import decoding as D
from sparsing_lib.figures import decoding_breakdown as DB

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


# Where the time goes (decoding_breakdown): the bounds by hand, on small synthetic frames.


def test_gate_bound_by_hand():
    """Dense 36 µs, target 3×: 12 µs for the layer. Gate read 11 µs leaves 1 µs; the up and down rows at copy
    bandwidth take 10.5 − 9 = 1.5 µs, so the bound is 36 / 12.5 = 2.88×. A 9.5 µs read gives 36 / 11 = 3.27×."""
    b = DB.gate_bound(36.0, 11.0, 9.0, 10.5)
    assert b["budget_us"] == pytest.approx(12.0) and b["left_us"] == pytest.approx(1.0)
    assert b["tail_us"] == pytest.approx(1.5) and b["bound"] == pytest.approx(2.88) and not b["reachable"]
    b = DB.gate_bound(36.0, 9.5, 9.0, 10.5)
    assert b["bound"] == pytest.approx(36 / 11) and b["reachable"]


def _ffn_rows(gate_only=11.0):
    row = dict(level="ffn layer", shape="2.4B", activation="relu", activation_ratio=0.065, batch=1, dense_us=36.0,
               sparse_us=16.0, speedup=2.25, limit=2.65, gate_only_us=gate_only, gate_cublas_us=11.5,
               gate_limit_us=9.0, copy_sparse_us=12.0, copy_limit_sparse_us=10.5)  # fmt: skip
    other = dict(row, batch=4, gate_only_us=np.nan, gate_cublas_us=np.nan)  # not diagnosed: left out
    return pd.DataFrame([row, other, dict(row, shape="0.1B", dense_us=18.0, sparse_us=6.0)])


def test_breakdown_table_and_layer_bound_read_the_diagnosis():
    t = DB.breakdown(_ffn_rows())
    assert len(t) == 2 and list(t.columns) == list(DB.BREAKDOWN.values())
    assert t["up and down rows add (µs)"].tolist() == [5.0, -5.0]
    b = DB.layer_bound(_ffn_rows())  # our gate pass (11) is faster than cuBLAS's (11.5)
    assert b["gate_us"] == 11.0 and b["bound"] == pytest.approx(2.88) and b["copy_bound"] == pytest.approx(3.0)
    b = DB.layer_bound(_ffn_rows(gate_only=np.nan))  # no one-launch winner: cuBLAS's read
    assert b["gate_us"] == 11.5 and b["bound"] == pytest.approx(36 / 13)
    assert DB.layer_bound(_ffn_rows(), ratio=0.2) is None and DB.layer_bound(None) is None
    assert DB.breakdown(None).empty and DB.breakdown(_ffn_rows().drop(columns="gate_cublas_us")).empty


def test_gate_text_branches():
    verdict, text = DB.gate_text(DB.layer_bound(_ffn_rows()))
    assert verdict.startswith("out of reach") and "2.88×" in verdict
    assert "12.00 µs" in text and "11.00 µs (31 % of the dense layer)" in text and "leaves 1.00 µs" in text
    assert "bounded at 2.88×" in text and "takes 12.00 µs, 3.00×" in text
    assert (
        "in 10.50 µs or less, faster than all 2 timings of that read at this shape in this run (11.00 to 11.50" in text
    )
    verdict, text = DB.gate_text(DB.layer_bound(_ffn_rows(gate_only=12.5)))  # cuBLAS's 11.5 µs is the faster
    assert "leaves 0.50 µs" in text and "12.50 µs (35 %" in text
    slow = _ffn_rows(gate_only=np.nan).assign(gate_cublas_us=13.0)
    verdict, text = DB.gate_text(DB.layer_bound(slow))
    assert "already takes 1.00 µs more" in text and "not timed" in text
    fast = _ffn_rows().assign(gate_only_us=9.0)
    verdict, text = DB.gate_text(DB.layer_bound(fast))
    assert verdict == f"within reach ({36 / 10.5:.2f}× bound)" and "reached by 1 of the 2 timings" in text
    assert DB.gate_text(None)[0] == "not measured"


def test_non_ffn_split_and_the_time_that_a_target_needs_by_hand():
    """Dense step 2000 µs, sparse 1500, 20 layers of 30 µs dense: N = 2000 − 600 = 1400, and the 500 µs saved
    make the sparse layer 30 − 25 = 5 µs. 1.4× needs N ≤ 20 (30 − 1.4·5) / 0.4 = 1150: (1150 + 600) / (1150 +
    100) = 1.4 exactly. A sparse layer of 25 µs cannot give 1.4× at any N (30 < 1.4 · 25)."""
    n, s = DB.non_ffn_split(2000.0, 1500.0, 30.0, 20)
    assert n == pytest.approx(1400.0) and s == pytest.approx(5.0)
    need = DB.needed_non_ffn(30.0, 5.0, 20)
    assert need == pytest.approx(1150.0) and (need + 600) / (need + 100) == pytest.approx(1.4)
    assert DB.needed_non_ffn(30.0, 25.0, 20) < 0


def _model_summary(dense, sparse, model="2.4B"):
    rows = [dict(level="model", shape=f"{model} model", model=model, pattern=p, activation="relu", batch=b,
                 activation_ratio=0.1, dense_us=dense, sparse_us=sparse, speedup=dense / sparse, limit=1.6)
            for p in ("active = CETT ratios", "CETT cut on ReLU") for b in (1, 8)]  # fmt: skip
    return pd.DataFrame(rows)


def test_model_table_puts_eager_next_to_compiled_and_solves_for_the_non_ffn_time():
    summaries = {"eager": _model_summary(2000.0, 1500.0), "compiled": _model_summary(1800.0, 1300.0)}
    t = DB.model_table(summaries, {"2.4B": 30.0}, {"2.4B": 20})
    assert len(t) == 4 and t["non-FFN parts"].tolist() == ["eager", "compiled"] * 2  # batch 1 only
    assert t["outside the FFN, estimated (µs/step)"].tolist() == pytest.approx([1400, 1200] * 2)
    assert t["outside the FFN, timed (µs/step)"].isna().all()  # summaries before the timed column
    assert t[DB.NEEDED].tolist() == pytest.approx([1150] * 4)  # both save 500 µs: s = 5 µs
    t = DB.model_table({"eager": _model_summary(400.0, 300.0, "mini"), "compiled": None}, {"2.4B": 30.0}, {"2.4B": 20})
    assert len(t) == 2 and t[DB.NEEDED].isna().all()  # no timed FFN layer of that model
    assert DB.model_table({"eager": None}, {}, {}).empty


def test_model_text_branches():
    summaries = {"eager": _model_summary(2000.0, 1500.0), "compiled": _model_summary(1800.0, 1300.0)}
    t = DB.model_table(summaries, {"2.4B": 30.0}, {"2.4B": 20})
    verdict, text = DB.model_text(t, "2.4B", 30.0, 20, 0.5)
    assert verdict == "not reached: 1.33× eager, 1.38× compiled"
    assert "eager 1.33× (2000 against 1500 µs per step) and compiled 1.38×" in text
    assert "compiled dense step spends 1200 µs" in text and "moves this by 10 µs" in text
    assert "at 1150 µs at most, 50 µs (4 %) less than now" in text and "skipped" not in text
    summaries["compiled"]["non_ffn_us"] = 1180.0  # timed with the FFN calls skipped (runs after c7f51dc)
    t = DB.model_table(summaries, {"2.4B": 30.0}, {"2.4B": 20})
    timed = t["outside the FFN, timed (µs/step)"]
    assert timed.iloc[[1, 3]].tolist() == [1180.0, 1180.0] and timed.iloc[[0, 2]].isna().all()  # eager: not timed
    assert "a step with its FFN calls skipped takes 1180 µs" in DB.model_text(t, "2.4B", 30.0, 20, 0.5)[1]
    summaries["compiled"] = _model_summary(1700.0, 1200.0)  # N 1100 < 1150: already there
    verdict, text = DB.model_text(DB.model_table(summaries, {"2.4B": 30.0}, {"2.4B": 20}), "2.4B", 30.0, 20, 0.5)
    assert verdict == "reached by compiled only: 1.33× eager, 1.42× compiled" and "allows up to 1150 µs" in text
    summaries["eager"] = _model_summary(1700.0, 1200.0)  # both engines at 1.4×
    assert DB.model_text(DB.model_table(summaries, {"2.4B": 30.0}, {"2.4B": 20}), "2.4B", 30.0, 20, 0.5)[0] == (
        "reached: 1.42× eager, 1.42× compiled"
    )
    summaries = {"eager": _model_summary(2000.0, 1900.0)}  # s = 25 µs: no N gives 1.4×
    verdict, text = DB.model_text(DB.model_table(summaries, {"2.4B": 30.0}, {"2.4B": 20}), "2.4B", 30.0, 20, 0.5)
    assert "no time outside the FFN would give 1.4×" in text
    assert DB.model_text(t, "mini", 30.0, 20, 0.5)[0] == "not measured"


def test_measured_chapter_with_compiled_rows_and_diagnosis():
    res = _measured()
    res["ffn"] = _ffn_rows()
    res["compiled"] = pd.DataFrame([dict(res["summary"].iloc[2], dense_us=1900.0, sparse_us=1150.0, speedup=1.65)])
    n = D.numbers(res)
    assert n["gate_verdict"].startswith("out of reach") and "bounded at 2.88×" in n["gate_text"]
    assert n["model_verdict"] == "reached: 1.60× eager, 1.65× compiled"
    assert "(1.65× compiled)" in D.claims(res)[0]["note"]
    t = D.model_table(res)
    assert t["non-FFN parts"].tolist() == ["eager", "compiled"]
    assert t["outside the FFN, estimated (µs/step)"].tolist() == pytest.approx([2000 - 40 * 33, 1900 - 40 * 33])
    assert len(D.breakdown(res)) == 2
    n = D.numbers(_measured())  # a run without the diagnosis or the compiled engine still renders
    assert n["gate_verdict"] == "not measured" and n["model_verdict"] == "reached: 1.60× eager"
    assert D.numbers(_unmeasured())["model_verdict"] == "not measured"


def test_gate_text_says_what_could_still_reach_the_target():
    """At the copy bandwidth W_gate takes 9 µs and the rows 1.5: 10.5 µs fits the 12 µs of 3× (room left at
    that bandwidth); with a 12.5 µs copy limit the rows alone take 3.5 µs and nothing exact fits."""
    assert "Only a read of W_gate at the full copy bandwidth (9.00 µs)" in DB.gate_text(DB.layer_bound(_ffn_rows()))[1]
    tight = _ffn_rows().assign(copy_limit_sparse_us=12.5)
    text = DB.gate_text(DB.layer_bound(tight))[1]
    assert "Even at the full copy bandwidth the sparse bytes take 12.50 µs; only not reading it" in text
    fast = _ffn_rows().assign(gate_only_us=9.0)
    assert "That leaves room for 3× at the measured read speed." in DB.gate_text(DB.layer_bound(fast))[1]
