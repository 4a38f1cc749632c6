"""The sweep plan prices runs from measurements only: finished runs at their wall time, the rest from rates."""

import numpy as np
import pandas as pd
import pytest

from benchmarks.throughput import plan
from sparsing_lib.models import get_spec
from sparsing_lib.paths import H200_BF16_FLOPS
from sparsing_lib.run import train_config

VOCAB = 12288


def tokens(model):
    cfg = train_config(model, "full")
    return cfg.steps * cfg.tokens_per_step


def bench_rows(moe=True):
    rows = []
    for model, mfu in [("mini-160x3", 0.2), ("mini-336x7", 0.3)]:
        fpt = get_spec(model).flops_per_token(1024, VOCAB)
        rows.append(
            dict(
                model=model,
                compiled=True,
                processes=1,
                vocab=VOCAB,
                flops_per_token=fpt,
                mfu=mfu,
                tokens_per_s=mfu * H200_BF16_FLOPS / fpt,
            )
        )
    for e in (16, 30, 60) if moe else ():
        rows.append(
            dict(
                model=f"moe-192x4-e{e}",
                compiled=False,
                processes=1,
                vocab=VOCAB,
                flops_per_token=1.0,
                mfu=0.01,
                tokens_per_s=1e6,
            )
        )
    rows.append(dict(rows[0] | dict(processes=4, tokens_per_s=1e12)))  # concurrent rates are never used
    return pd.DataFrame(rows)


def test_plan_prices_finished_runs_at_their_wall_time_and_the_rest_from_rates():
    bench = bench_rows()
    solo = [dict(run="mini-336x7-relu", model="mini-336x7", tokens=tokens("mini-336x7"), wall_s=500.0)]
    packed = [
        [
            dict(run="wd-96x16-relu", model="wd-96x16", tokens=100, wall_s=200.0),
            dict(run="wd-128x9-relu", model="wd-128x9", tokens=300, wall_s=100.0),
        ]
    ]
    sweep = plan(bench, VOCAB, solo, packed, startup_s=10.0).set_index(["grid", "run"])
    minutes = sweep["minutes"]
    assert (
        minutes["scales", "mini-336x7-relu"] == pytest.approx(510 / 60)
        and sweep.loc[("scales", "mini-336x7-relu"), "done"]
    )
    twin = sweep.loc[("scales", "mini-336x7-silu")]
    assert not twin["done"] and twin["minutes"] == pytest.approx(510 / 60) and "mini-336x7-relu" in twin["basis"]
    assert minutes["width_depth", "wd-96x16-relu"] == pytest.approx(210 * 100 / 400 / 60)
    assert minutes["width_depth", "wd-128x9-relu"] == pytest.approx(210 * 300 / 400 / 60)
    rate_336 = bench.loc[1, "tokens_per_s"]
    overhead = 500.0 - tokens("mini-336x7") / rate_336
    assert minutes["moe", "moe-192x4-e30-relu"] == pytest.approx((tokens("moe-192x4-e30") / 1e6 + overhead + 10) / 60)
    # mini-320x6 was not measured: its MFU is interpolated in log FLOPs between 160x3 (0.2) and 336x7 (0.3)
    f = [get_spec(m).flops_per_token(1024, VOCAB) for m in ("mini-160x3", "mini-320x6", "mini-336x7")]
    mfu = 0.2 + 0.1 * (np.log(f[1]) - np.log(f[0])) / (np.log(f[2]) - np.log(f[0]))
    expect = tokens("mini-320x6") / (mfu * H200_BF16_FLOPS / f[1]) + overhead + 10
    assert minutes["scales", "mini-320x6-relu"] == pytest.approx(expect / 60)
    assert not sweep.loc[("recipe", "mini-160x3-relu"), "done"]  # the recipe run is extra even if 160x3 is done
    assert len(sweep) == 10 + 6 + 3 + 1


def test_plan_refuses_to_guess_moe_throughput():
    with pytest.raises(ValueError, match="MoE throughput is not interpolated"):
        plan(bench_rows(moe=False), VOCAB, [], [], 0.0)


def test_sweep_sessions_keep_the_order_and_never_split_a_run():
    from benchmarks.throughput import sessions, sweep_group

    table = pd.DataFrame(dict(run=list("abcde"), gpu_min=[30.0, 15.0, 10.0, 40.0, 5.0]))
    assert list(sessions(table, 48.0)["session"]) == [1, 1, 2, 3, 3]  # 30+15 | 10 (10+40 > 48) | 40+5
    assert sweep_group("mini-512x10-relu") == "large" and sweep_group("mini-192x4-silu-s2") == "seed"
    assert sweep_group("mini-160x3-relu-f8") == "repetition" and sweep_group("wd-96x16-relu") == "width_depth"
    assert sweep_group("recipe-448x13-relu") == "recipe"
