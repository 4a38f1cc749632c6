"""The throughput and corpus appendices' library: MFU, the benchmark and plan tables, the corpus by domain."""

import pandas as pd
import pytest

from sparsing_lib.figures import methods_corpus, methods_throughput
from sparsing_lib.paths import DATA, H200_BF16_FLOPS


def test_mfu_is_rate_times_flops_over_peak():
    assert methods_throughput.mfu(2e6, 1e8) == pytest.approx(2e14 / 790e12)
    assert methods_throughput.mfu(1e6, 7.9e8) == pytest.approx(1.0)
    assert methods_throughput.mfu(1e6, 1e8, peak_flops=1e14) == pytest.approx(1.0)
    assert H200_BF16_FLOPS == 790e12


def test_benchmarks_recompute_the_stored_mfu():
    bench = methods_throughput.load_benchmarks()
    stored = pd.read_csv(DATA / "benchmarks" / "throughput_v2_call4.csv")
    mine = bench[bench["file"] == "throughput_v2_call4.csv"].reset_index(drop=True)
    assert mine["mfu"].to_numpy() == pytest.approx(stored["mfu"].to_numpy())
    assert set(bench["file"]) <= set(methods_throughput.FILE_LABEL)


def test_plan_table_totals_add_up():
    res = methods_throughput.results()
    plan = methods_throughput.plan_table(res).set_index("grid")
    assert plan.loc["scales (ReLU and SiLU)", "runs"] == (res["plan"]["grid"] == "scales").sum()
    assert plan.loc["all", "runs"] == len(res["plan"])
    assert plan.loc["all", "total (min)"] == pytest.approx(res["plan"]["minutes"].sum())
    n = methods_throughput.numbers(res)
    assert n["plan_minutes"] == f"{res['plan']['minutes'].sum():.1f}"
    assert n["peak_tflops"] == "790"


def test_by_domain_shares_and_public_domain_share_by_hand():
    man = pd.DataFrame(
        {
            "source": ["a", "b", "c"],
            "domain": ["prose", "prose", "technical"],
            "docs": [1, 2, 3],
            "bytes": [5, 5, 10],
            "tokens": [30, 10, 60],
            "train_tokens_kept": [29, 9, 58],
            "val_tokens": [1, 1, 2],
            "public_domain": [True, False, "True"],
        }
    )
    d = methods_corpus.by_domain(man)
    assert d.loc["prose", "tokens"] == 40 and d.loc["prose", "share"] == pytest.approx(0.4)
    assert d.loc["total", "sources"] == 3 and d.loc["total", "train_tokens"] == 96
    assert methods_corpus.public_domain_share(man) == pytest.approx(0.9)


def test_corpus_numbers_from_the_committed_manifest():
    res = methods_corpus.results()
    n = methods_corpus.numbers(res)
    assert n["corpus_vocab"] == "12,288"
    assert n["corpus_sources"] == str(len(res["manifest"]))
    assert len(methods_corpus.sources_table(res)) == len(res["manifest"])
    assert methods_corpus.domain_table(res)["share of tokens"].iloc[-1] == pytest.approx(1.0)


def test_trainer_v2_tables_and_verdicts_from_the_committed_measurements():
    res = methods_throughput.results()
    t = methods_throughput.mfu_table(res)
    assert len(t) == 8 and (t["outcome"] == "timed out after 100 s").sum() == 1
    best = t.dropna(subset=["MFU"]).groupby("model")["MFU"].max()
    assert best["mini-256x5"] == pytest.approx(3277581.186189702 * 57212928 / 790e12)  # reduce-overhead, 256 seqs
    assert (best < methods_throughput.MFU_TARGET).all()
    n = methods_throughput.numbers(res)
    assert n["v2_mfu_verdict"].startswith("the 40% target is not met by 3 of 3 models from mini-256x5 up")
    assert "mini-448x8 34.7% (reduce-overhead, 64 sequences)" in n["v2_mfu_verdict"]
    assert n["v2_batch"] == "+1.3 points (22.4% to 23.7%)"
    assert n["v2_timeouts"] == "mini-256x5 with max-autotune-no-cudagraphs at 64 sequences"
    d = methods_throughput.ddp_table(res).set_index("run")
    assert d.loc["2 GPUs, seed 0", "rate against 1 GPU"] == pytest.approx(4837652.776719562 / 3056772.966071632)
    assert n["ddp_verdict"].startswith("two GPUs follow one") and "21 times smaller" in n["ddp_verdict"]
    assert n["ddp_speedup"] == "1.58"


def test_mfu_verdict_branches_on_hand_made_rows():
    rows = pd.DataFrame(
        {
            "model": ["a", "b", "c"],
            "mode": ["default"] * 3,
            "batch": [64] * 3,
            "non_embedding_params": [1, 2, 3],
            "mfu": [0.1, 0.45, 0.41],
        }
    )
    assert methods_throughput.mfu_verdict(rows, 0.4, "b").startswith("every model from b up reaches the 40% target")
    assert methods_throughput.mfu_verdict(rows, 0.42, "b").startswith("the 42% target is not met by 1 of 2 models")
    assert methods_throughput.mfu_verdict(rows, 0.4, "z") == "no configuration of z or larger was measured"
