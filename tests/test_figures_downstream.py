"""Downstream chapter analysis on synthetic suite results: grouping, intervals, paired Δ, claims, no data."""

import importlib.util
import json
import re

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib.evaluation import results as evres
from sparsing_lib.figures import downstream as ds
from sparsing_lib.figures import downstream_data as dd
from sparsing_lib.figures import downstream_verdicts as dv
from sparsing_lib.paths import ROOT

N = 400  # items per task: enough that a 6-point loss is far outside the paired interval
TASKS = (("piqa", "commonsense", 0.5, 0.6), ("boolq", "reading", 0.5, 0.6), ("mmlu", "complex", 0.25, 0.25),
         ("arc_easy", "tiny", 0.25, 0.6))  # fmt: skip
SETTINGS = {"dense": ("dense", np.nan, np.nan), "cett-ppl-1%": ("cett", 0.1, 0.3),
            "cett-ppl-10%": ("cett", 0.3, 0.2), "topk_token=0.25": ("topk_token", 0.25, 0.25)}  # fmt: skip


def suite(flips: dict[str, dict[str, float]], complex_p: float = 0.25, p: float = 0.6) -> evres.SuiteResult:
    """Deterministic items: the dense model gets the first p*N right; ``flips[setting][group]`` is the share of
    those the setting gets wrong. Intervals are normal ones, so that every number can be checked by hand."""
    rows, items = [], {}
    for task, group, chance, _ in TASKS:
        dense = (np.arange(N) < (complex_p if group == "complex" else p) * N).astype(np.float32)
        for setting, (method, value, ratio) in SETTINGS.items():
            x = dense.copy()
            x[: int(flips.get(setting, {}).get(group, 0.0) * dense.sum())] = 0
            m = float(x.mean())
            half = 1.96 * np.sqrt(m * (1 - m) / N)
            items[evres.item_key(task, setting, "acc")] = x
            rows.append(dict(task=task, group=group, setting=setting, method=method, value=value, metric="acc",
                             score=m, interval=json.dumps([m - half, m + half]),
                             items=N, truncated=0, activation_ratio=ratio, chance=chance, shots=0))  # fmt: skip
    return evres.SuiteResult(pd.DataFrame(rows), items, {})


def verdicts(res: dict) -> dict[int, str]:
    return {c["id"]: c["verdict"] for c in ds.claims(res)}


def test_component_names_follow_the_paper_groups():
    assert dd.component("PIQA", "acc", "acc") == "piqa" and dd.component("piqa", "acc_norm", "acc") is None
    assert dd.component("social_iqa", "acc", "acc") == "siqa"
    assert dd.component("tydiqa_goldp_en", "f1", "f1") == "tydiqa:f1"
    assert dd.component("tydiqa", "exact_match", "f1") == "tydiqa:em"
    assert dd.component("blimp_anaphor_gender_agreement", "acc", "acc") == "blimp"
    assert dd.component("ARC-Easy", "acc", "acc") == "arceasy" and dd.component("arc_challenge", "acc", "acc") is None
    assert dd.component("squad", "f1", "f1") is None  # scored by the suite, but in none of the paper's averages
    assert dd.component("AGIEval-math", "acc", "acc") is None  # kept apart from the paper's AGIEval (its choices)
    assert (
        dd.component("GSM8K-synthetic", "acc", "acc") == "gsm8k" and dd.component("MBPP", "pass@1", "pass@1") == "mbpp"
    )


def test_group_average_by_hand():
    rows = pd.DataFrame(
        dict(
            component=["piqa", "siqa", "hellaswag", "winogrande", "copa"],
            score=[0.6, 0.4, 0.3, 0.5, 0.7],
            lo=[0.5, 0.3, 0.25, 0.4, 0.6],
            hi=[0.7, 0.5, 0.35, 0.6, 0.8],
            chance=[0.5, 1 / 3, 0.25, 0.5, 0.5],
            activation_ratio=[0.2, 0.2, 0.3, 0.3, np.nan],
        )  # fmt: skip
    )
    g = dd.group_average(rows)
    # half width: 1.96 * sqrt(sum of (width / 3.92)^2) / 5 = 0.5 * sqrt(4 * 0.04 + 0.01) / 5
    assert g["score"] == pytest.approx(0.5) and g["hi"] - 0.5 == pytest.approx(0.1 * np.sqrt(0.17))
    assert g["chance"] == pytest.approx((0.5 + 1 / 3 + 0.25 + 0.5 + 0.5) / 5) and g[
        "activation_ratio"
    ] == pytest.approx(0.25)
    # a benchmark split into files (BLiMP's paradigms) counts once: (mean(0.8, 0.6) + 0.5 + 0.3) / 3
    tiny = pd.DataFrame(dict(component=["blimp", "blimp", "arceasy", "openbookqa"], score=[0.8, 0.6, 0.5, 0.3],
                             lo=[0.7, 0.5, 0.4, 0.2], hi=[0.9, 0.7, 0.6, 0.4], chance=[0.5, 0.5, 0.25, 0.25],
                             activation_ratio=np.nan))  # fmt: skip
    assert dd.group_average(tiny)["score"] == pytest.approx(0.5) and dd.group_average(tiny)["chance"] == 1 / 3
    one = dd.group_average(rows.iloc[:1])
    assert (one["lo"], one["hi"]) == (0.5, 0.7)  # a single task keeps its own (possibly asymmetric) interval


def test_paired_delta_excludes_zero_for_a_loss_and_not_for_noise():
    res = dd.analyse({"mini-160x3-relu": suite({"cett-ppl-10%": {"commonsense": 0.1}, "cett-ppl-1%": {"tiny": 0.005}})})
    d = res["deltas"].set_index(["group", "setting"])
    loss, noise = d.loc[("C.R.", "cett-ppl-10%")], d.loc[("tiny", "cett-ppl-1%")]
    assert loss["delta"] == pytest.approx(-0.06) and loss["hi"] < 0 and dv.call(loss["lo"], loss["hi"]) == "a loss"
    assert noise["delta"] == pytest.approx(-1 / N)  # one item of 240 flipped and noise["lo"] < 0 <= noise["hi"]
    assert dv.call(noise["lo"], noise["hi"]) == "within noise" and dv.call(np.nan, 1) == "no interval"
    g = res["groups"].set_index(["group", "setting"])
    assert g.loc[("C.R.", "dense"), "sparsity"] == 0 and g.loc[("C.R.", "cett-ppl-1%"), "sparsity"] == pytest.approx(
        0.7
    )


def test_claims_hold_on_a_model_that_behaves_as_the_paper_says():
    res = dd.analyse(
        {"a-relu": suite({"cett-ppl-10%": {"reading": 0.1}, "topk_token=0.25": {"commonsense": 0.3, "reading": 0.3}})}
    )
    # 10 only partly: the synthetic suite scores one of Table 6's six benchmarks (MMLU)
    assert verdicts(res) == {1: "holds", 2: "holds", 3: "holds", 8: "untested", 9: "untested", 10: "partly holds"}
    assert "1 of the 6 benchmarks" in dict(dv.claim_verdicts(res))[10][1]
    # Top-k at sparsity 0.75 against CETT interpolated between 0.7 and 0.8 (both 0.6): 0.42 - 0.6
    cr = ds.compare_methods(res).set_index("group").loc["C.R."]
    assert cr["diff"] == pytest.approx(-0.18) and cr["better"] and not cr["beaten"]


def test_claims_fail_where_the_intervals_say_so():
    flips = {"cett-ppl-1%": {"commonsense": 0.2, "reading": 0.2}, "cett-ppl-10%": {"commonsense": 0.3, "tiny": 0.3}}
    res = dd.analyse({"a-relu": suite(flips, complex_p=0.6)})
    # 1: both groups lose 12 points at p = 1 %; 2: C.R. clearly hurt at p = 10 %; 3: Top-k (no loss) beats the
    # CETT curve between its 1 % and 10 % points; 10: the complex tasks sit 35 points above chance
    assert {i: v for i, v in verdicts(res).items() if i not in (8, 9)} == dict.fromkeys((1, 2, 3, 10), "does not hold")
    two = dd.analyse({"a-relu": suite({}), "b-relu": suite(flips, complex_p=0.6)})
    assert verdicts(two)[1] == "partly holds" and verdicts(two)[10] == "partly holds"


def test_no_data_is_untested_and_draws_no_figure():
    res = dd.analyse({}, skipped=["mini-160x3-relu"])
    assert set(verdicts(res).values()) == {"untested"}
    assert not isinstance(ds.fig3(res), Figure) and "none of the 1 run folders" in ds.fig3(res).data
    assert list(ds.table1(res).columns[:3]) == ["group", "setting", "0.1B ReLU"]  # the paper's table alone
    assert set(ds.table5(res)["model"]) == {"paper 0.1B ReLU", "paper 0.1B SiLU"}
    nums = ds.numbers(res)
    assert nums["fig3_verdict"].startswith("untested") and nums["table1_text"].startswith(
        "No run has a downstream evaluation yet"
    )


def test_tables_figure_and_numbers_with_data():
    res = dd.analyse(
        {"mini-160x3-relu": suite({"cett-ppl-10%": {"reading": 0.1}})}, params={"mini-160x3-relu": 8.832e5}
    )
    t1 = ds.table1(res).set_index(["group", "setting"])
    assert t1.loc[("R.C.", "Δ CETT-PPL-10%"), "mini-160x3 ReLU"].startswith("-6.0 [")
    assert t1.loc[("C.R.", "Dense"), "paper 0.1B ReLU"] == 49.6
    t4 = ds.table4(res)
    assert t4.loc[0, "PIQA"] == "60.0 [55.2, 64.8]" and pd.isna(t4.loc[0, "SIQA"]) and len(t4) == 3 + 8
    fig = ds.fig3(res)
    assert isinstance(fig, Figure) and len(fig.axes) == 3
    assert "122 to 1,336 times fewer" in ds.numbers(res)["status"]


def test_replay_reads_eval_folders_and_lists_the_rest(tmp_path, monkeypatch):
    for run in ("mini-160x3-relu", "mini-160x3-silu"):
        (tmp_path / "runs" / run).mkdir(parents=True)
        config = {"model": {"non_embedding_params": 883200}, "train": {"seq_len": 1024}}
        (tmp_path / "runs" / run / "config.json").write_text(json.dumps(config))
    evres.write(tmp_path / "runs" / "mini-160x3-relu", suite({}))
    monkeypatch.setattr(dd, "DATA", tmp_path)
    res = ds.results("replay")
    assert res["runs"] == ["mini-160x3-relu"] and res["skipped"] == ["mini-160x3-silu"]
    assert res["context"] == {"mini-160x3-relu": 1024}
    assert dv.truncation_summary(res, "R.C.") == "In mini-160x3 ReLU, no prompt was cut to fit the 1,024-token context."
    with pytest.raises(ValueError, match="runs='mini-9x9-relu' is not valid"):
        ds.results("replay", runs=["mini-9x9-relu"])


@pytest.mark.skipif(importlib.util.find_spec("sparsing_lib.evaluation.suite") is not None, reason="suite exists")
def test_smoke_says_the_suite_is_missing():
    with pytest.raises(RuntimeError, match="evaluation.suite.*profile='replay'"):
        ds.results("smoke")


def test_the_page_quotes_the_same_names_with_and_without_results():
    """The book builds with warnings as errors: every glued name must exist whether or not a run has results."""
    empty = ds.numbers(dd.analyse({}, skipped=["x-relu"]))
    full = ds.numbers(dd.analyse({"a-relu": suite({})}))
    assert set(empty) == set(full) and all(isinstance(v, str) and v for v in full.values())
    page = (ROOT / "book" / "downstream.md").read_text()
    assert set(re.findall(r"\{glue:text\}`(\w+)`", page)) <= set(full)


# the complex tasks as the next evaluation scores them: (task, metric, items, shots, chance, dense score)
COMPLEX = (("AGIEval", "acc", 2852, 0, 0.24, 0.22), ("AGIEval-math", "acc", 1000, 0, 0.0, 0.9),
           ("HumanEval", "pass@1", 164, 0, 0.0, 0.0), ("MBPP", "pass@1", 500, 3, 0.0, 0.0),
           ("GSM8K", "acc", 1319, 8, 0.0, 0.01), ("MMLU", "acc", 14042, 5, 0.25, 0.25),
           ("BBH", "acc", 6511, 3, 0.0, 0.02))  # fmt: skip


def generation_suite(cut: dict[str, int]) -> evres.SuiteResult:
    """Scores only (no per-item file), dense and CETT-PPL-1 %, ``cut[task]`` prompts truncated under both."""
    rows = [dict(task=task, group="complex", setting=setting, method=method, value=np.nan, metric=metric,
                 score=score, interval=json.dumps([max(score - 0.01, 0), score + 0.01]), items=n,
                 truncated=cut.get(task, 0), activation_ratio=np.nan, chance=chance, shots=shots)
            for task, metric, n, shots, chance, score in COMPLEX
            for setting, method in (("dense", "dense"), ("cett-ppl-1%", "cett"))]  # fmt: skip
    return evres.SuiteResult(pd.DataFrame(rows), {}, {})


def test_truncation_sentence_names_the_cut_prompts_per_run():
    full = {"GSM8K": 1319, "MBPP": 500}
    res = dd.analyse(
        {"mini-336x7-relu": generation_suite(full), "mini-336x7-silu": generation_suite(full),
         "mini-160x3-relu": generation_suite({})},
        context={"mini-336x7-relu": 1024, "mini-336x7-silu": 1024},
    )  # fmt: skip
    t = dd.truncation(res, "complex")  # one row per run and table task: AGIEval-math is not in Table 6
    assert len(t) == 3 * 6 and t["truncated"].sum() == 2 * (1319 + 500)
    assert dv.truncation_summary(res, "complex") == (
        "In mini-160x3 ReLU, no prompt was cut to fit the model's context; in mini-336x7 ReLU and mini-336x7 SiLU, "
        "500 of 500 MBPP prompts (3-shot) and 1,319 of 1,319 GSM8K prompts (8-shot) were cut from the left to fit "
        "the 1,024-token context."
    )
    one = dd.analyse({"a-relu": generation_suite({"AGIEval": 1})}, context={"a-relu": 2048})
    assert dv.truncation_summary(one, "complex") == (
        "In a ReLU, 1 of 2,852 AGIEval prompts was cut from the left to fit the 2,048-token context."
    )
    assert dv.truncation_summary(one, "R.C.") == "No task of this table was scored, so no prompt was cut."
    nums = ds.numbers(one)
    assert nums["table6_truncation"] == dv.truncation_summary(one, "complex") and nums["paper_context"] == "4,096"


def test_table6_and_claim_10_with_the_generation_tasks():
    res = dd.analyse({"a-relu": generation_suite({})})
    row = ds.table6(res).iloc[0]  # AGIEval is its choices alone: the MATH cloze set (0.9) is not averaged in
    assert row["AGIEval acc"] == "22.0 [21.0, 23.0]" and row["GSM8K acc"] == "1.0 [0.0, 2.0]"
    assert row["HumanEval pass@1"] == "0.0 [0.0, 1.0]" and row["Avg."].startswith("8.3 [")  # (22+0+0+1+25+2)/6
    c10 = dv.claim_verdicts(res)[10]  # all six benchmarks scored, each within 5 points of chance: holds outright
    assert c10[0] == "holds" and "not evaluated" not in c10[1]
    assert "claim 10 holds" in ds.numbers(res)["table6_verdict"]
