"""The width-depth chapter's library: tail statistics, the per-run limits, the shape test, the best loss
interval, the figures, the table and the claims verdicts, on synthetic runs with known answers."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib import laws
from sparsing_lib.figures import width_depth as wd


def test_tail_mean_by_hand():
    # last third of tokens 1..6: t >= 4 -> values 4, 5, 6; mean 5, sd 1, t(0.975, 2) = 4.3027
    mean, lo, hi = wd.tail_mean(np.arange(1, 7), np.arange(1, 7), frac=1 / 3)
    assert mean == pytest.approx(5.0)
    assert hi - mean == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)
    assert mean - lo == pytest.approx(hi - mean)


def test_tail_window_keeps_at_least_two_checkpoints():
    mean, lo, hi = wd.tail_mean([1, 2, 100], [1.0, 3.0, 5.0], frac=0.01)
    assert mean == pytest.approx(4.0) and np.isfinite(lo) and np.isfinite(hi)


def test_tail_slope_of_an_exact_line():
    t = np.linspace(1e7, 9e7, 9)
    slope, lo, hi = wd.tail_slope(t, 2 + 0.5 * t / 1e7, frac=0.5)  # 0.5 per 10M tokens
    assert slope == pytest.approx(0.5) and lo == pytest.approx(0.5) and hi == pytest.approx(0.5)
    assert np.isnan(wd.tail_slope([1, 2], [1, 2])[0])


def _falling(a0: float, t: np.ndarray) -> np.ndarray:
    noise = 2e-4 * np.resize([1.0, -1.0, 0.5, -0.5], len(t))  # exact data would give the profile a zero RSS
    return a0 + 0.1 * np.exp(-t / 2e7) + noise  # the logspace law with alpha = 1, so A0 is identifiable


def test_limit_ratio_fits_a_falling_curve_and_falls_back_on_a_rising_one():
    t = np.linspace(1e6, 85e6, 30)
    fitted = wd.limit_ratio(t, _falling(0.07, t), n_boot=0)
    assert fitted["how"] == wd.FITTED and fitted["value"] == pytest.approx(0.07, abs=1e-4)
    assert fitted["profile_lo"] <= 0.07 <= fitted["profile_hi"]
    rising = 0.1 + 0.05 * t / t[-1]
    fallback = wd.limit_ratio(t, rising, n_boot=0)
    assert fallback["how"] == wd.MEAN and fallback["fit_note"]
    assert fallback["value"] == pytest.approx(wd.tail_mean(t, rising)[0])
    short = wd.limit_ratio(t[:5], rising[:5], n_boot=0)
    assert short["how"] == wd.MEAN and "too short" in short["fit_note"]


def test_limit_loss_flags_undetermined_fits():
    t = np.linspace(5e6, 85e6, 30)
    good = wd.limit_loss(t, 3.0 + 2.0 * (t / 1e6) ** -0.5, n_boot=20)
    assert good["limit_status"] == "determined" and good["limit"] == pytest.approx(3.0, abs=1e-3)
    assert wd.limit_loss(t[:2], [5.0, 4.0])["limit_status"] == "not fitted"
    straight = wd.limit_loss(t, 5.0 - t / 1e8, n_boot=20)  # no curvature: the limit runs to a bound or to 0
    assert straight["limit_status"] in ("on a bound", "interval reaches 0")


def test_plateau_fit_recovers_a_broken_line_on_its_grid():
    x = np.array([1.0, 2, 3, 4, 5, 6, 7])
    p = wd.plateau_fit(x, 1 + 2 * np.minimum(x, 2.0))  # 2 is the grid's first node
    assert (p["a"], p["b"], p["k"]) == pytest.approx((1.0, 2.0, 2.0))
    assert p["rss"] == pytest.approx(0.0, abs=1e-20)


def test_shape_test_prefers_the_right_model_and_counts_aicc_by_hand():
    x = np.array([6.0, 14, 27, 48, 75, 136, 384])
    wiggle = 1e-4 * np.array([1, -1, 1, -1, 1, -1, 1])
    line = wd.shape_test(x, 0.05 + 1e-3 * x + wiggle)
    assert line["preferred"] == "line" and line["rise_lo"] > 0
    rss = float(np.sum((np.polyval(np.polyfit(x, 0.05 + 1e-3 * x + wiggle, 1), x) - 0.05 - 1e-3 * x - wiggle) ** 2))
    assert line["aicc_line"] == pytest.approx(7 * np.log(rss / 7) + 6 + 24 / 3)
    plateau = wd.shape_test(x, 0.05 + 5e-4 * np.minimum(x, 100) + wiggle)
    assert plateau["preferred"] == "plateau" and plateau["plateau_k_lo"] <= 100 <= plateau["plateau_k_hi"]
    assert wd.shape_test(x[:3], x[:3])["preferred"] == "too few points"
    six = wd.shape_test(x[:6], 0.05 + 5e-4 * np.minimum(x[:6], 50) + wiggle[:6])
    assert six["preferred"] == "too few for AICc" and six["plateau_rss"] < six["line_rss"]
    assert "too few for AICc" in wd._shape_phrase(six)


def test_best_region_by_hand():
    df = pd.DataFrame(
        {
            "run": list("abcde"),
            "ratio": [6.0, 27, 75, 136, 384],
            "limit_status": ["on a bound"] * 5,
            "loss_tail": [3.9, 3.70, 3.72, 3.80, 3.85],
            "loss_tail_lo": [3.88, 3.68, 3.69, 3.78, 3.83],
            "loss_tail_hi": [3.92, 3.72, 3.75, 3.82, 3.87],
        }
    )
    b = wd.best_region(df)
    assert b["quantity"].startswith("mean") and b["best_run"] == "b"
    assert (b["region_lo"], b["region_hi"]) == (27.0, 75.0)
    assert b["deep_worse"] and not b["in_paper"] and not b["within_paper"]
    assert wd.best_region(df.head(2))["quantity"] == "too few points"


# ----------------------------------------------------------------------------- whole chapter, synthetic runs


def _runs(ratios, limits, losses, kind="width_depth"):
    """Fake probed runs: a falling activation ratio towards ``limits`` and a flat, slightly noisy loss."""
    t = np.linspace(1e6, 85e6, 30)
    wiggle = 0.002 * np.tile([1.0, -1.0], 15)
    runs = {}
    for i, (r, a0, loss) in enumerate(zip(ratios, limits, losses)):
        depth = 2 + i
        model = dict(d_model=int(r * depth), n_layers=depth, n_heads=4, head_dim=32, kind=kind)
        model["non_embedding_params"] = 1_700_000
        runs[f"run{i}"] = dict(
            config=dict(model=model),
            sparsity=pd.DataFrame({"tokens": t, "activation_ratio": _falling(a0, t)}),
            metrics=pd.DataFrame({"tokens": t, "val_loss": loss + wiggle, "epoch": t / 5.4e7}),
        )
    return runs


RATIOS = [6.0, 14, 27, 48, 75, 136, 384]


def _res(limits, losses, ratios=RATIOS):
    runs = _runs(ratios, limits, losses)
    return wd._analyse(runs, list(runs), n_boot=0, seed=0)


def _verdicts(res):
    return {c["id"]: c["verdict"] for c in wd.claims(res)}


def test_claims_hold_for_the_papers_shape():
    limits = [0.05 + 2.5e-4 * min(r, 114) for r in RATIOS]
    res = _res(limits, [3.9, 3.8, 3.75, 3.7, 3.6, 3.5, 3.6])
    assert _verdicts(res) == {11: "holds", 12: "holds"}
    assert all(c["basis"] == "our runs" and c["note"] for c in wd.claims(res))


def test_claims_partly_hold_for_a_straight_rise_and_a_deep_best():
    res = _res([0.05 + 1e-4 * r for r in RATIOS], [3.9, 3.7, 3.6, 3.7, 3.8, 3.9, 4.0])
    assert _verdicts(res) == {11: "partly holds", 12: "partly holds"}


def test_claims_do_not_hold_for_a_falling_limit_and_a_deepest_best():
    res = _res([0.2 - 2e-4 * r for r in RATIOS], [3.5, 3.6, 3.7, 3.8, 3.9, 4.0, 4.1])
    assert _verdicts(res) == {11: "does not hold", 12: "does not hold"}


def test_two_points_are_too_few_and_everything_still_draws():
    res = _res([0.07, 0.08], [3.8, 3.7], ratios=[16.0, 16.0])
    assert _verdicts(res) == {11: "untested", 12: "untested"}
    n = wd.numbers(res)
    assert "too few" in n["fig5_verdict"] and "too few" in n["fig6_verdict"]
    assert isinstance(wd.fig5(res), Figure) and isinstance(wd.fig6(res), Figure)
    assert len(wd.table(res)) == 2


def test_reference_is_cut_to_the_variants_tokens_per_parameter():
    runs = _runs([6.0, 14, 27, 75, 136, 384], [0.1] * 6, [3.7] * 6)
    ref = _runs([48.0], [0.1], [3.7], kind="scale")["run0"]
    ref["metrics"] = ref["metrics"].assign(tokens=ref["metrics"]["tokens"] * 2)  # twice the data
    ref["sparsity"] = ref["sparsity"].assign(tokens=ref["sparsity"]["tokens"] * 2)
    runs[wd.REFERENCE] = ref
    res = wd._analyse(runs, list(runs), n_boot=0, seed=0)
    row = res["points"].set_index("run").loc[wd.REFERENCE]
    assert res["cap"] == pytest.approx(85e6 / 1.7e6)
    assert row["truncated"] and row["checkpoints"] == 15 and row["tokens_per_param"] <= res["cap"]
    assert "cut to its first 15" in wd.numbers(res)["reference"]
    table = wd.table(res)
    assert "limit activation ratio (%)" in table.columns and table["run"].tolist()[3] == wd.REFERENCE


def test_results_refuses_a_bad_bootstrap_count():
    with pytest.raises(ValueError, match="n_boot"):
        wd.results("replay", n_boot=-1)


def test_paper_form_is_the_relu_law():
    assert wd.FORM == laws.PAPER_FORM["relu"] == "logspace"
