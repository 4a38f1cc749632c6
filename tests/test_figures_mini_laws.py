"""Laws and trends of our own scale runs: start rule, checkpoint noise, trend intervals, fit words, claims."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from sparsing_lib import paper
from sparsing_lib.figures import data_activation as da
from sparsing_lib.figures import mini_laws as ml
from sparsing_lib.figures import scale, sparser_model
from sparsing_lib.paths import DATA
from sparsing_lib.runs import load_runs

matplotlib.use("Agg")


def _run(act: str, model: str, params: int, ratios, values, epochs: float = 1.0) -> dict:
    tokens = np.asarray(ratios, dtype=float) * params
    return {
        "config": {"activation": act, "model": {"name": model, "non_embedding_params": params}},
        "sparsity": pd.DataFrame({"tokens": tokens, "activation_ratio": values}),
        "metrics": pd.DataFrame({"epoch": [0.1, epochs]}),
    }


def test_start_index_on_a_synthetic_table():
    tokens = np.array([1.0, 4.4, 7.79, 7.8, 11.2]) * 1000
    assert ml.start_index(tokens, 1000, 7.8) == 3  # 7.79 is before the start, 7.8 is the start
    assert ml.start_index(tokens, 1000, 0.0) == 0
    assert ml.start_index(tokens, 1000, 20.0) == 5  # none reaches 20 tokens per parameter


def test_checkpoint_noise_by_hand_and_on_known_noise():
    # second differences of 0,1,0,1,0,1 are ±1: MAD 1, sigma = 1.4826 / sqrt(1.5) = 1.210538
    assert ml.checkpoint_noise([0, 1, 0, 1, 0, 1]) == pytest.approx(1.4826 / np.sqrt(1.5), rel=1e-12)
    rng = np.random.default_rng(0)
    x = np.linspace(0, 1, 4000)
    series = 0.3 - 0.1 * x + 0.05 * x**2 + rng.normal(0, 0.01, x.size)  # smooth trend + noise of s.d. 0.01
    assert ml.checkpoint_noise(series) == pytest.approx(0.01, rel=0.05)
    with pytest.raises(ValueError, match="at least 4"):
        ml.checkpoint_noise([1, 2, 3])


def test_trends_change_and_interval_by_hand():
    values = [0.20, 0.10, 0.11, 0.10, 0.11, 0.10, 0.12]
    runs = {"m-relu": _run("relu", "m", 100, [1, 4, 8, 12, 16, 20, 24], values, epochs=2.5)}
    t = ml.trends(runs, start_ratio=7.8).iloc[0]
    sigma = ml.checkpoint_noise(values[2:])  # from the start ratio (index 2) on
    assert t.start_ratio == 8 and t.start_change == pytest.approx(0.01) and t.first_change == pytest.approx(-0.08)
    assert t.start_hi - t.start_change == pytest.approx(1.959963984540054 * np.sqrt(2) * sigma)
    assert t.epochs == 2.5 and t.noise == pytest.approx(sigma)


def test_direction_and_fit_status_words():
    assert ml.direction(0.1, 0.2) == "rises" and ml.direction(-0.2, -0.1) == "falls"
    assert ml.direction(-0.1, 0.1) == "no change resolved" and ml.direction(np.nan, 1) == "not measured"
    assert ml.fit_status("") == "inside bounds" and ml.fit_status(np.nan) == "inside bounds"
    assert ml.fit_status("on a bound: b, A0") == "on a bound (b, A0)"
    assert ml.fit_status("did not converge; on a bound: b") == "not converged"


def _fitted(relu_warning: str = "on a bound: b", silu_a0=(0.40, 0.39, 0.41)) -> dict:
    """Hand-made fit tables for two models, as refit writes them."""
    coef, quality, lfo = [], [], []
    for model, a0 in (("mini-256x5", silu_a0), ("mini-336x7", (0.39, 0.385, 0.395))):
        for act, form, names in (
            ("relu", "logspace", ("alpha", "b", "c", "A0")),
            ("silu", "power", ("alpha", "c", "A0")),
        ):
            for name in names:
                v = (a0 if act == "silu" else (0.07, 0.06, 0.08)) if name == "A0" else (0.5, 0.4, 0.6)
                coef.append(dict(activation=act, scale=model, form=form, name=name, value=v[0], ci_lo=v[1], ci_hi=v[2]))
            v = a0 if act == "silu" else (0.07, 0.065, 0.075)
            coef.append(
                dict(activation=act, scale=model, form=form, name="A0_profile", value=v[0], ci_lo=v[1], ci_hi=v[2])
            )
            for f, aicc in ((form, -100.0), ("log", -103.0), ("exp", -90.0)):
                w = relu_warning if (act == "relu" and f == form) else ""
                quality.append(dict(activation=act, scale=model, form=f, rss=1e-4, aicc=aicc, warning=w))
                lfo.append(dict(activation=act, scale=model, form=f, mae=0.002))
    runs = {
        f"{m}-{a}": _run(a, m, p, [1, 4, 8, 12, 16, 20], v)
        for m, p in (("mini-256x5", 3768320), ("mini-336x7", 9088128))
        for a, v in (("relu", [0.2, 0.1, 0.09, 0.088, 0.085, 0.083]), ("silu", [0.2, 0.3, 0.35, 0.37, 0.38, 0.39]))
    }
    return {
        "coef": pd.DataFrame(coef),
        "quality": pd.DataFrame(quality),
        "lfo": pd.DataFrame(lfo),
        "too_short": pd.DataFrame({"activation": ["relu"], "scale": ["tiny-32x2"], "n": [6]}),
        "runs": runs,
        "trends": ml.trends(runs),
        "meta": {"settings": {"start_ratio": 7.8, "drop_first": 0, "n_boot": 3, "frac": 0.7}, "seconds": 1.0},
    }


def test_table2_reports_a_bound_fit_as_a_word():
    t = ml.table2(_fitted()).set_index("run")
    relu = t.loc["mini-256x5-relu"]
    assert relu.fit == "on a bound (b)" and relu.A0 == "on a bound (b)" and relu.alpha == "on a bound (b)"
    silu = t.loc["mini-256x5-silu"]
    assert silu.fit == "inside bounds" and silu.A0 == "0.4 [0.39, 0.41]"
    assert silu["ΔAICc to best alternative"] == 3.0 and silu["best alternative"] == "log"  # -100 - (-103)
    assert t.loc["tiny-32x2-relu"].fit == "too few checkpoints"


def test_limits_identifiable_only_inside_bounds_and_away_from_edges():
    lim = ml.limits(_fitted()).set_index(["activation", "model"])
    assert not lim.loc[("relu", "mini-256x5"), "identifiable"]  # on a bound
    assert lim.loc[("silu", "mini-256x5"), "identifiable"]
    unbounded = _fitted(silu_a0=(0.6, 0.5, 1.0))  # profile interval reaches A0's upper bound 1
    assert not ml.limits(unbounded).set_index(["activation", "model"]).loc[("silu", "mini-256x5"), "identifiable"]


def test_mini_claims_and_numbers_on_hand_made_fits():
    res = _fitted()
    by_id = {c["id"]: c for c in ml.claims(res)}
    assert by_id[7]["verdict"] == "untested" and "no scale has both limits" in by_id[7]["note"]
    # SiLU limit moves 0.40 -> 0.39: -1 point, half-width hypot(0.01, 0.005) = 1.1 points: within ±3, "small"
    assert by_id[13]["verdict"] == "partly holds" and "SiLU -1.0 ± 1.1 points" in by_id[13]["note"]
    assert by_id[6]["basis"] == "our runs" and by_id[6]["verdict"] in ("partly holds", "holds")
    ok = _fitted(relu_warning="")
    assert {c["id"]: c for c in ml.claims(ok)}[7][
        "verdict"
    ] == "holds"  # 0.40 / 0.07 and 0.39 / 0.07: more than 5 times
    n = ml.numbers(res)
    assert n["ml_relu_inside"] == "0 of 3" and n["ml_silu_inside"] == "2 of 2"
    assert ml.trend_verdict(res["trends"], "silu").startswith("rises in 2 of 2 runs")
    assert ml.faster_when_smaller(res)["relu"] is None
    for fig in (ml.fig4_trends(res), ml.fig7(res), ml.fig8(res)):
        matplotlib.pyplot.close(fig)


def test_limit_shift_and_its_verdict():
    assert scale.limit_shift(0.02, 0.005) == "small" and scale.limit_shift(-0.05, 0.01) == "large"
    assert scale.limit_shift(0.02, 0.02) == "unresolved"
    assert scale.shift_verdict(["small", "small"]) == "holds"
    assert scale.shift_verdict(["small", "unresolved"]) == "partly holds"
    assert scale.shift_verdict(["untested", "large"]) == "does not hold"
    assert scale.shift_verdict(["untested", "unresolved"]) == "untested"


def test_steeper_when_smaller_by_hand():
    # power laws, d(1-A)/dD = -c·α·D^(-α-1): same law, larger model at larger D is flatter
    law = {"alpha": 0.5, "c": 0.2, "A0": 0.4}
    assert scale.steeper_when_smaller("silu", [law, law], [1e8, 2e8], ratio=20)
    steep = {"alpha": 0.5, "c": 2.0, "A0": 0.4}
    assert not scale.steeper_when_smaller("silu", [law, steep], [1e8, 2e8], ratio=20)


@pytest.fixture(scope="module")
def replayed(curves):
    from sparsing_lib import refit
    from sparsing_lib.figures import released

    tables, meta = refit.load_results(released.FOLDER)
    ours = {"present": False}  # the authors' half of claim 18; our run's half is tested in test_figures_sparser_model
    return {"curves": curves, "table2": paper.table2(), "table3": paper.table3(), **tables, "meta": meta, "ours": ours}


def test_released_claims(replayed):
    c6 = da.claims(replayed)[0]
    assert (
        c6["id"] == 6 and c6["basis"] == "authors' data" and c6["verdict"] in ("holds", "partly holds", "does not hold")
    )
    by_id = {c["id"]: c for c in scale.claims(replayed)}
    assert by_id[7]["verdict"] == "partly holds" and "0.4B" in by_id[7]["note"]  # 0.4B ReLU limit on a bound
    assert by_id[14]["verdict"] == "holds"
    assert sparser_model.claims(replayed)[0]["verdict"] == "untested"


def test_sparser_model_claim_branches():
    def res(lo, hi):
        c = pd.DataFrame([dict(scale="2.4B", form="logspace", name="A0", value=(lo + hi) / 2, ci_lo=lo, ci_hi=hi)])
        return {"coef": c, "ours": {"present": False}}

    final = paper.law_2p4b("final")["A0"]
    assert sparser_model.claims(res(final + 0.01, final + 0.02))[0]["verdict"] == "does not hold"
    assert sparser_model.claims(res(final - 0.002, final + 0.002))[0]["verdict"] == "partly holds"
    assert sparser_model.claims(res(final - 0.02, final + 0.02))[0]["verdict"] == "untested"


def test_committed_mini_laws_replay():
    res = ml.results("replay")
    n = len(ml.mini_runs("replay"))  # every probed scale run, the larger scales' included
    assert n >= 12 and res["meta"]["settings"]["start_ratio"] == ml.START_RATIO and len(res["trends"]) == n
    assert len(ml.table2(res)) == n  # the committed fits cover every committed run
    with pytest.raises(ValueError, match="committed fits use"):
        ml.results("replay", start_ratio=5.0)


def test_start_ratio_is_the_median_start_of_the_released_curves(curves):
    t3 = paper.table3().set_index("scale").non_embedding_params
    g = curves[curves.scale.astype(str).isin(scale.SCALES)].groupby(["activation", "scale"], observed=True)
    first = g.tokens.min().reset_index()
    assert np.median(first.tokens / first.scale.astype(str).map(t3)) == pytest.approx(ml.START_RATIO, abs=0.05)


@pytest.mark.slow
def test_compute_on_two_committed_runs():
    runs = {k: v for k, v in load_runs(DATA / "runs").items() if k in ("mini-320x6-silu", "mini-336x7-silu")}
    tables = ml.compute(runs, n_boot=3, drop_first=0, start_ratio=7.8, frac=0.7, workers=1)
    assert set(tables["quality"].scale) == {"mini-320x6", "mini-336x7"} and tables["too_short"].empty


def test_runs_too_short_to_fit_are_listed_not_fitted():
    # six checkpoints, none at or after 7.8 tokens per parameter: nothing is fitted, the run is listed with n = 0
    runs = {
        "tiny-32x2-relu": _run("relu", "tiny-32x2", 100, [0.5, 1, 1.5, 2, 2.5, 3], [0.3, 0.2, 0.15, 0.12, 0.1, 0.09])
    }
    tables = ml.compute(runs, n_boot=1, drop_first=0, start_ratio=7.8, frac=0.7)
    assert tables["too_short"].to_dict("records") == [{"activation": "relu", "scale": "tiny-32x2", "n": 0}]
    res = {
        **tables,
        "runs": runs,
        "trends": ml.trends(runs),
        "meta": {"settings": {"start_ratio": 7.8, "drop_first": 0, "n_boot": 1, "frac": 0.7}},
    }
    assert ml.table2(res).fit.tolist() == ["too few checkpoints"]
    assert {c["id"]: c["verdict"] for c in ml.claims(res)} == {6: "untested", 7: "untested", 13: "untested"}
    assert ml.numbers(res)["ml_fig4_verdict"].startswith("not measured")
