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
