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
    assert len(t) == 12 and (t["outcome"] == "timed out after 100 s").sum() == 1
    assert (t["round"] == "v5").sum() == 4 and (t.loc[t["round"] == "v4", "attention"] == "mask tensor").all()
    v5 = t[t["round"] == "v5"]
    assert (v5["attention"] == "causal, no mask").all() and (v5["loss"] == "chunks of 8,192 tokens").sum() == 3
    best = t.dropna(subset=["MFU"]).groupby("model")["MFU"].max()
    assert best["mini-448x8"] == pytest.approx(1761780.9883227693 * 187858944 / 790e12)  # v5, causal + chunked
    assert list(best[best >= methods_throughput.MFU_TARGET].index) == ["mini-448x8"]
    n = methods_throughput.numbers(res)
    assert n["v2_mfu_verdict"].startswith(
        "the 40% target is met by mini-448x8 (41.9%) only; mini-256x5 (31.2%) and mini-336x7 (34.3%) stay below it"
    )
    assert n["v2_mfu_verdict"].endswith("default mode, 64 sequences, causal attention, chunked loss")
    assert n["v2_batch"] == "+1.3 points (22.4% to 23.7%)"
    assert n["v2_timeouts"] == "mini-256x5 with max-autotune-no-cudagraphs at 64 sequences"
    assert n["v5_chunked"] == "+1.0 points (30.2% to 31.2%)"
    assert n["v5_gains"].startswith("+8.8 points at mini-256x5 (22.4% with reduce-overhead to 31.2%)")
    assert n["v5_spread"] == "0.5% to 3.5%"
    assert n["v5_margin"] == "mini-448x8 is 1.9 points above it, its timed windows 0.6 points apart"
    d = methods_throughput.ddp_table(res).set_index("run")
    assert d.loc["2 GPUs, seed 0", "rate against 1 GPU"] == pytest.approx(4837652.776719562 / 3056772.966071632)
    assert n["ddp_verdict"].startswith("two GPUs follow one") and "21 times smaller" in n["ddp_verdict"]
    assert n["ddp_speedup"] == "1.58"


def _rows(**cols) -> pd.DataFrame:
    """Hand-made MFU rows: three models of growing size, compiled in default mode at batch 64, no options."""
    base = dict(model=["a", "b", "c"], mode=["default"] * 3, batch=[64] * 3, non_embedding_params=[1, 2, 3])
    return pd.DataFrame(base | dict(causal=[False] * 3, loss_chunk=[0] * 3) | cols)


def test_mfu_verdict_branches_on_hand_made_rows():
    rows = _rows(mfu=[0.1, 0.45, 0.41])
    v = methods_throughput.mfu_verdict
    assert v(rows, 0.4, "b") == (
        "every model from b up reaches the 40% target: b (45.0%) and c (41.0%), "
        "each in its best configuration: default mode, 64 sequences"
    )
    assert v(rows, 0.42, "b") == (
        "the 42% target is met by b (45.0%) only; c (41.0%) stays below it, "
        "each in its best configuration: default mode, 64 sequences"
    )
    assert v(rows, 0.5, "a").startswith("the 50% target is not met by any of the 3 models from a up: a (10.0%), b")
    mixed = _rows(mfu=[0.1, 0.45, 0.41], causal=[False, True, False], loss_chunk=[0, 8192, 0])
    assert v(mixed, 0.4, "b").endswith(
        "; best configurations: b default mode, 64 sequences, causal attention, chunked loss "
        "and c default mode, 64 sequences"
    )
    assert v(rows, 0.4, "z") == "no configuration of z or larger was measured"


def test_round_gains_compare_the_best_of_each_round_at_the_same_batch():
    runs = pd.DataFrame(
        {
            "round": ["v4", "v4", "v4", "v5", "v5", "v5", "v5"],
            "model": ["a", "a", "a", "a", "a", "b", "c"],
            "mode": ["default", "reduce-overhead", "reduce-overhead", "default", "default", "default", "default"],
            "batch": [64, 64, 256, 64, 64, 64, 64],
            "mfu": [0.20, 0.22, 0.30, 0.25, 0.31, 0.5, float("nan")],
        }
    )
    g = methods_throughput.round_gains(runs)
    assert list(g["model"]) == ["a"]  # b has no v4 row, c timed out
    assert (g.loc[0, "old"], g.loc[0, "old_mode"], g.loc[0, "new"]) == (0.22, "reduce-overhead", 0.31)
    assert g.loc[0, "points"] == pytest.approx(9.0)  # 31% - 22%; the 30% at batch 256 does not count
