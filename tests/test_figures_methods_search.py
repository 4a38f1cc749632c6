"""The threshold-search appendix: speed-ups, agreement and the matrix-product ceiling by hand."""

import pytest
import torch

from sparsing_lib.figures import methods_search as ms

ROWS = [  # two layers, two CETT values; the rows at 0.1 carry our times
    dict(layer=0, cett=0.05, time_official_s=1.0, broad_cett=0.0501, official_act=0.3, broad_act=0.3002),
    dict(layer=0, cett=0.1, time_official_s=2.0, broad_cett=0.1, official_act=0.2, broad_act=0.2, targeted_cett=0.1003,
         targeted_act=0.199, time_targeted_s=0.1, time_targeted_grid_s=0.05, time_broad_s=0.5),
    dict(layer=1, cett=0.05, time_official_s=3.0, broad_cett=0.05, official_act=0.3, broad_act=0.3),
    dict(layer=1, cett=0.1, time_official_s=4.0, broad_cett=0.1, official_act=0.2, broad_act=0.2, targeted_cett=0.1,
         targeted_act=0.2, time_targeted_s=0.4, time_targeted_grid_s=0.2, time_broad_s=1.5),
]  # fmt: skip


def test_speedups_by_hand():
    s = ms.speedups(ROWS)
    assert s["one"] == pytest.approx((2 + 4) / (0.1 + 0.4))
    assert s["several"] == pytest.approx((1 + 2 + 3 + 4) / (0.5 + 1.5))
    assert (s["n_values"], s["official_s"], s["ours_s"], s["grid_s"]) == pytest.approx((2, 3.0, 0.25, 0.125))
    assert ms.search_speedup(ROWS, 20) == pytest.approx(20 * 6 / 2)


def test_agreement_by_hand():
    a = ms.agreement(ROWS)
    assert a["cett"] == pytest.approx(3e-4) and a["act"] == pytest.approx(1e-3)


def test_gemm_ceiling_by_hand():
    assert ms.gemm_ceiling({"fp32": 50.0, "bfloat16": 750.0}, "bfloat16", grid_points=3) == pytest.approx(85.0)


def bench(rev, with_b=False):
    r = dict(
        meta=dict(rev=rev, device="GPU", outer_rounds=20, dtype="torch.bfloat16",
                  shape=dict(d=8, d_ff=16, layers=2, tokens_a=1024, layers_a=[0, 1])),
        gemm_tflops=dict(fp32=50.0, bfloat16=750.0), A=ROWS,
    )  # fmt: skip
    if with_b:
        r |= dict(B=dict(tokens=2048, curves_s=10.0, dense_pass_s=2.0, peak_gib=1.5), C=dict(error="unreachable"))
    return r


def test_table_and_numbers_take_parts_b_and_c_from_the_newest_run_that_has_them():
    runs = [bench("aaaaaaa", with_b=True), bench("bbbbbbb")]
    t = ms.table_speed(runs)
    assert list(t.index) == ["aaaaaaa", "bbbbbbb"]
    assert t["speed-up, 2 CETT values (measured)"].iloc[0] == pytest.approx(5.0)
    out = ms.numbers(runs)
    assert out["one"] == "12×" and out["search"] == "60×" and out["ceiling"] == "85×"
    assert (
        out["b"].startswith("2,048 calibration tokens in 10 s (5.0 dense passes) with a peak of 1.5 GiB")
        and "git aaaaaaa" in out["b"]
    )
    assert out["c"] == "unreachable"


def test_replay_reads_the_committed_runs_in_order():
    runs = ms.results("replay")
    assert len(runs) >= 2 and [r["meta"]["rev"] for r in runs[:2]] == ["e04b28f", "6e410c5"]


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a machine without a GPU")
def test_full_without_a_gpu_says_so():
    with pytest.raises(RuntimeError, match="no GPU is visible"):
        ms.results("full")
