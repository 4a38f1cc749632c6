"""The controls chapter: seed spread, the first-passes cut, repetition verdicts, on small synthetic runs."""

import numpy as np
import pandas as pd
import pytest

from sparsing_lib.figures import controls, mini_laws
from sparsing_lib.models import get_spec


def _run(model, act, ratios, passes_total, tpp_end, seed=0, warmup_tokens=1000, val=None):
    """A fake run of ``model`` with one checkpoint per value of ``ratios``, evenly spaced in steps from step 10 to
    step 10 * len, reaching ``tpp_end`` tokens per parameter and ``passes_total`` passes at its last checkpoint."""
    n = get_spec(model).non_embedding_params
    k = len(ratios)
    steps = np.arange(1, k + 1) * 10
    tokens = steps / steps[-1] * tpp_end * n
    epoch = steps / steps[-1] * passes_total
    val = np.linspace(5.0, 4.0, k) if val is None else np.asarray(val, float)
    return dict(
        config=dict(
            activation=act,
            model=dict(name=model, non_embedding_params=n),
            train=dict(seed=seed, batch_size=64, warmup_tokens=warmup_tokens, decay_frac=0.0, tokens=int(tokens[-1])),
            tokens_per_param=float(tpp_end),
            corpus_identity=dict(train_tokens=tokens[-1] / passes_total),
        ),
        metrics=pd.DataFrame({"step": steps, "tokens": tokens, "epoch": epoch, "val_loss": val}),
        env=dict(status="done"),
        sparsity=pd.DataFrame({"step": steps, "tokens": tokens, "activation_ratio": np.asarray(ratios, float)}),
    )


def _line(a, b, k=10, wiggle=0.0):
    """``k`` values from ``a`` to ``b`` with an alternating ±``wiggle`` (a measurable checkpoint noise)."""
    return np.linspace(a, b, k) + wiggle * (-1) ** np.arange(k)


def test_restrict_cuts_at_exactly_three_passes():
    r = _run("mini-192x4", "relu", _line(0.2, 0.1, 10), passes_total=5.0, tpp_end=50)  # passes 0.5, 1.0, ..., 5.0
    cut = controls.restrict(r, 3.0)
    assert list(cut["sparsity"].step) == [10, 20, 30, 40, 50, 60]  # epoch 3.0 kept, 3.5 not
    assert cut["metrics"].epoch.iloc[-1] == pytest.approx(3.0)
    assert len(controls.restrict(r, 2.99)["sparsity"]) == 5


def test_prefix_table_qualifies_by_checkpoints_from_the_start_ratio():
    plain = {
        # 10 checkpoints to 40 tokens/param over 4 passes: the cut at 3 passes ends at 30, checkpoints 4..30 by 4
        "mini-192x4-relu": _run("mini-192x4", "relu", _line(0.2, 0.1, 10, 0.001), 4.0, 40),
        # 10 checkpoints to 20 tokens/param over 20 passes: 3 passes end at 3 tokens/param, before the start 7.8
        "mini-320x6-relu": _run("mini-320x6", "relu", _line(0.2, 0.1, 10, 0.001), 20.0, 20, warmup_tokens=0),
    }
    p = controls.prefix_table(plain, 3.0, mini_laws.START_RATIO).set_index("run")
    small, big = p.loc["mini-192x4-relu"], p.loc["mini-320x6-relu"]
    # the 192x4 cut keeps 7 checkpoints (4, 8, ..., 28 tokens/param); from 7.8 on: 8, 12, ..., 28 = 6
    assert small.qualifies and small.n_after == 6 and small.cut_tpp == pytest.approx(28.0)
    assert small.start_change == pytest.approx(small.start_change)  # measured
    # change within the cut: from the checkpoint at 8 (index 1) to the one at 28 (index 6)
    a = _line(0.2, 0.1, 10, 0.001)
    assert small.start_change == pytest.approx(a[6] - a[1])
    assert not big.qualifies and big.n_after == 0 and "before the start ratio" in big.why
    assert small.exact and not big.exact  # a warm-up fixed in tokens makes the cut a stopped run


def test_prefix_with_too_few_checkpoints_from_the_start_does_not_qualify():
    plain = {"mini-192x4-relu": _run("mini-192x4", "relu", _line(0.2, 0.1, 10, 0.001), 10.0, 30)}
    p = controls.prefix_table(plain, 3.0, mini_laws.START_RATIO).iloc[0]
    # 3 passes end at 9 tokens/param: checkpoints at 3, 6, 9 of which only 9 lies beyond 7.8
    assert not p.qualifies and p.n_after == 1 and p.why.startswith("only 1 probed checkpoint")


def test_seed_spread_ranges_over_three_seeds():
    ratios = {0: 0.30, 1: 0.34, 2: 0.31}  # last activation ratios
    losses = {0: 4.00, 1: 4.03, 2: 3.99}
    plain = {"mini-192x4-relu": _run("mini-192x4", "relu", _line(0.2, ratios[0], 10), 2, 100, val=[5] * 9 + [4.0])}
    variants = {
        f"mini-192x4-relu-s{s}": _run(
            "mini-192x4", "relu", _line(0.2, ratios[s], 10), 2, 100, seed=s, val=[5] * 9 + [losses[s]]
        )
        for s in (1, 2)
    }
    variants["mini-192x4-relu-f8"] = _run("mini-192x4", "relu", _line(0.2, 0.5, 10), 16, 100)  # not a seed
    seeds = controls.seed_table(plain, variants, {}, mini_laws.START_RATIO)
    assert list(seeds.seed) == [0, 1, 2] and set(seeds.set) == {controls.SWEEP}
    sp = controls.seed_spread(seeds).iloc[0]
    assert sp.n == 3 and sp.last_range == pytest.approx(0.04) and sp.val_loss_range == pytest.approx(0.04)
    # change from the start (the first checkpoint, at 10 tokens/param >= 7.8) to the end: last - 0.2
    assert sp.start_change_range == pytest.approx(0.04)
    assert controls.yardstick(controls.seed_spread(seeds), "relu", "last")[0] == pytest.approx(0.04)
    assert np.isnan(controls.yardstick(controls.seed_spread(seeds), "silu", "last")[0])


def test_neighbours_compare_with_the_largest_seed_range():
    spread = pd.DataFrame(
        {"set": ["s"], "model": ["m"], "activation": ["relu"], "recipe": ["r"], "n": [3], "seeds": [[0, 1, 2]]}
        | {"val_loss_range": [0.01], "last_range": [0.02], "start_change_range": [0.01], "half_width": [0.002]}
    )
    plain = {
        "mini-160x3-relu": _run("mini-160x3", "relu", _line(0.20, 0.25, 10, 0.001), 2, 100),
        "mini-192x4-relu": _run("mini-192x4", "relu", _line(0.20, 0.245, 10, 0.001), 3, 100),
        "mini-256x5-relu": _run("mini-256x5", "relu", _line(0.20, 0.20, 10, 0.001), 6, 50),
    }
    t = mini_laws.trends(plain, mini_laws.START_RATIO)
    d = controls.neighbours(t, plain, spread).set_index("pair")
    assert list(d.index) == ["mini-160x3 → mini-192x4", "mini-192x4 → mini-256x5"]
    assert not d.iloc[0].exceeds_change and d.iloc[1].exceeds_change  # 0.004 < 0.01 < 0.036
    assert d.iloc[1].matched_tpp == 50 and d.iloc[0].seed_change == 0.01


def _rep_res(f8_change, whole_change=0.02, trend_end=-0.01, f32_change=None, most_passes=16.7):
    """Fabricated repetition and trend rows: mini-160x3 on the whole split (2.5 passes), 1/8 (20) and 1/32 (80; a
    memorised run, 1.3 nats above its best validation loss), a larger scale; the family's most repeated run makes
    ``most_passes`` passes."""
    rows, half = [], 0.003
    for act in ("relu", "silu"):
        for k, c in ((1, whole_change), (8, f8_change), (32, f32_change)):
            ok = c is not None
            rows.append(
                {"run": f"mini-160x3-{act}" + (f"-f{k}" if k > 1 else ""), "activation": act, "split": k}
                | {"trained": ok, "passes": 2.5 * k, "start_change": c if ok else np.nan}
                | {"start_lo": c - half if ok else np.nan, "start_hi": c + half if ok else np.nan}
                | {"overfit": 1.3 if k == 32 else 0.01, "stability": "overfit" if k == 32 else "stable"}
            )
    trends = pd.DataFrame(
        {"run": ["mini-160x3-relu", "mini-512x10-relu", "mini-160x3-silu", "mini-512x10-silu"]}
        | {"activation": ["relu", "relu", "silu", "silu"], "params": [1, 2, 1, 2]}
        | {"start_change": [whole_change, trend_end] * 2}
    )
    spread = pd.DataFrame(columns=["activation", "n", "start_change_range"])
    res = {"repetition": pd.DataFrame(rows), "trends": trends, "spread": spread, "rep_model": "mini-160x3"}
    return res | {"most_passes": most_passes}


def test_repetition_verdict_on_fabricated_trajectories():
    code, said = controls.repetition_sentence(_rep_res(0.005), "relu")  # shift -0.015, half-width 0.0042
    assert code == "fall" and "a shift of -1.50 ± 0.42" in said and "of which that shift is 50%" in said
    assert "not trained yet: mini-160x3-relu-f32" in said
    assert controls.repetition_sentence(_rep_res(0.022), "relu")[0] == "none"
    assert controls.repetition_sentence(_rep_res(0.03), "relu")[0] == "rise"
    assert controls.repetition_sentence(_rep_res(None), "relu")[0] == "untrained"
    res = _rep_res(0.005)
    res["spread"] = pd.DataFrame(
        {"set": ["s"], "model": ["m"], "recipe": ["r"], "activation": ["relu"], "n": [3], "start_change_range": [0.02]}
    )
    assert controls.repetition_sentence(res, "relu")[0] == "none"  # the shift is within the seed range


def test_repetition_is_judged_at_the_share_that_matches_the_familys_passes_and_names_memorisation():
    # 1/8 (20 passes, past the family's 16.7) shifts by -0.2 points, within noise; 1/32 (80 passes) by -3 points
    code, said = controls.repetition_sentence(_rep_res(0.018, f32_change=-0.01), "relu")
    assert code == "none" and "judged at 1/8, the first share past the 16.7 passes" in said
    assert "1/32 (80.0 passes, validation loss 1.30 nats above its minimum: memorised) -1.00, a shift of -3.00" in said
    assert "of which that shift is 7%" in said  # -0.002 of a -0.03 trend
    # a family that repeats more than any share: the largest share is judged, and said to fall short
    code, said = controls.repetition_sentence(_rep_res(0.018, f32_change=-0.01, most_passes=100), "relu")
    assert code == "fall" and "judged at 1/32, the largest share trained, short of the 100.0 passes" in said


def test_results_refuses_bad_parameters():
    with pytest.raises(ValueError, match="profile='fast'"):
        controls.results("fast")
    with pytest.raises(ValueError, match="prefix_passes"):
        controls.results("replay", prefix_passes=-1.0)


def test_replay_reads_the_committed_runs_and_seed_set():
    res = controls.results("replay")
    assert {"mini-160x3-relu", "mini-512x10-silu"} <= set(res["plain"])
    assert len(res["earlier"]) == 6 and (res["spread"].n == 3).any()
    words = controls.numbers(res)
    assert all(isinstance(v, str) and "`" not in v for v in words.values())
    assert "mini-512x10" in words["ct_prefix_qualify"]


@pytest.mark.slow
def test_smoke_profile_trains_the_tiny_variants():
    res = controls.results("smoke")
    assert set(res["variants"]) == set(controls.SMOKE_VARIANTS)
    assert res["repetition"].trained.sum() == 4  # whole split and 1/8, two activations; 1/32 is not trained
    assert (res["spread"].n == 2).all() and res["prefix"].qualifies.all()
    assert controls.numbers(res)["ct_summary"]


def _prefix_res(falling_cut: bool):
    """Three ReLU scales: mini-160x3 rises over its whole run, mini-192x4 and mini-256x5 fall; whether the falling
    mini-192x4 can be cut is the switch; mini-256x5 never can."""
    runs = ["mini-160x3-relu", "mini-192x4-relu", "mini-256x5-relu"]
    prefix = pd.DataFrame(
        {
            "run": runs,
            "activation": "relu",
            "passes": [2.5, 3.1, 6.9],
            "qualifies": [True, falling_cut, False],
            "why": ["", "" if falling_cut else "too few checkpoints", "too few checkpoints"],
            "exact": True,
            "start_ratio": 10.0,
            "cut_tpp": [150.0, 90.0, 40.0],
            "whole_change": [0.02, -0.01, -0.01],
            "start_change": [0.02, -0.003, np.nan],
            "start_lo": [0.01, -0.004, np.nan],
            "start_hi": [0.03, -0.002, np.nan],
            "direction": ["rises", "falls", None],
        }
    )
    trends = pd.DataFrame(
        {"run": runs, "activation": "relu", "start_lo": [0.01, -0.02, -0.02], "start_hi": [0.03, -0.01, -0.01]}
    )
    trends["noise"] = 0.001
    return {"prefix": prefix, "trends": trends, "plain": dict.fromkeys(runs, {}), "passes": 3.0}


def test_prefix_tests_the_fall_at_a_falling_scale_that_can_be_cut(monkeypatch):
    monkeypatch.setattr(controls, "ratio_at", lambda run, tpp: 0.2 - 1e-4 * tpp)  # the smallest scale falls too
    out = controls.prefix_sentences(_prefix_res(falling_cut=True))
    assert out["ct_prefix_top"] == "mini-192x4" and out["ct_prefix_code"] == "falls"  # not the rising mini-160x3
    assert out["ct_prefix_which"] == "the largest scale cut there whose whole run falls"
    assert out["ct_prefix_uncut"] == "mini-256x5"
    out = controls.prefix_sentences(_prefix_res(falling_cut=False))
    assert out["ct_prefix_top"] == "mini-160x3" and out["ct_prefix_which"] == "the largest scale cut there"
    assert out["ct_prefix_uncut"] == "mini-192x4 and mini-256x5"
