"""The three chapters on the released curves and our mini runs: derivative, verdicts, tables, size ratio."""

import matplotlib
import numpy as np
import pandas as pd
import pytest

from sparsing_lib import paper, refit
from sparsing_lib.figures import data_activation as da
from sparsing_lib.figures import mini_laws, released, scale, sparser_model
from sparsing_lib.laws import curve

matplotlib.use("Agg")


def test_sparsity_slope_power_law_by_hand():
    # 0.1B SiLU (Table 2: alpha 0.479, c 0.102) at 20 tokens per parameter: D = 20 * 1.08e8 / 1e9 = 2.16,
    # dA/dD = c·alpha·D^(-alpha-1) = 0.048858 / 2.16^1.479 = 0.015642, so d(1-A)/dD = -0.01564 (inventory: -0.0156)
    p = {"alpha": 0.479, "c": 0.102, "A0": 0.409}
    assert scale.sparsity_slope("silu", p, 2.16e9) == pytest.approx(-0.015642, abs=2e-6)


def test_sparsity_slope_logspace_by_hand_and_by_differences():
    p = {"alpha": 1.0, "b": 0.0, "c": 0.1, "A0": 0.0}  # A = exp(-0.1 D): d(1-A)/dD = 0.1·exp(-0.1 D)
    assert scale.sparsity_slope("relu", p, 10e9) == pytest.approx(0.1 * np.exp(-1.0), rel=1e-12)
    q = paper.table2().set_index(["activation", "scale"]).loc[("relu", "0.8B")].to_dict()
    t, h = 150e9, 1e6
    numeric = -(curve("logspace", q, t + h) - curve("logspace", q, t - h)) / (2 * h / 1e9)
    assert scale.sparsity_slope("relu", q, t) == pytest.approx(numeric, rel=1e-5)


def _coef(relu: dict, silu: dict) -> pd.DataFrame:
    rows = []
    for s in scale.SCALES:
        for act, form, p in (("relu", "logspace", relu), ("silu", "power", silu)):
            rows += [{"activation": act, "scale": s, "form": form, "name": k, "value": v} for k, v in p.items()]
    return pd.DataFrame(rows)


def test_faster_when_smaller_on_identical_laws():
    # the same law at every scale: a larger model reaches a larger D at the same ratio, where both laws are flatter
    coef = _coef({"alpha": 1.0, "b": 0.0, "c": 0.1, "A0": 0.07}, {"alpha": 0.5, "c": 0.2, "A0": 0.4})
    assert scale.faster_when_smaller({"coef": coef, "table3": paper.table3()}) == {"relu": True, "silu": True}
    # logspace with alpha 2: d(1-A)/dD = 2e-4·D·exp(-1e-4·D²) grows until D = 70.7; at 20 tokens/param D <= 23.6
    rising = _coef({"alpha": 2.0, "b": 0.0, "c": 1e-4, "A0": 0.07}, {"alpha": 0.5, "c": 0.2, "A0": 0.4})
    assert scale.faster_when_smaller({"coef": rising, "table3": paper.table3()}, ratio=20)["relu"] is False


def test_size_ratios_scale_for_scale():
    r = da.size_ratios(paper.table3())
    assert list(r["mini model"]) == ["mini-160x3", "mini-192x4", "mini-256x5", "mini-320x6", "mini-336x7"]
    assert r.ratio.iloc[0] == pytest.approx(1.08e8 / 883_200)  # 122.3
    assert r.ratio.min() == pytest.approx(7.60e8 / 7_065_600) and round(r.ratio.max()) == 142


def test_best_k_picks_the_closest_refit():
    p = paper.table2().set_index(["activation", "scale"]).loc[("silu", "0.1B")]
    scan = pd.DataFrame(
        {
            "activation": "silu",
            "scale": "0.1B",
            "k": [0, 1],
            "first_tokens": [1e9, 2e9],
            "alpha": [p.alpha * 1.5, p.alpha * 1.02],
            "c": [p.c, p.c * 0.99],
            "A0": [p.A0, p.A0 * 1.01],
        }
    )
    out = da.best_k({"kscan": scan, "table2": paper.table2()})
    assert out.iloc[0]["best k"] == 1 and out.iloc[0]["worst coefficient gap (%)"] == pytest.approx(2.0)


def test_delta_aicc_is_relative_to_the_best_form():
    q = pd.DataFrame({"activation": "relu", "scale": "0.1B", "form": da.FORMS, "aicc": [-10, -4, -12, 0, -11, -9]})
    d = da.delta_aicc({"quality": q})
    assert d.loc["ReLU 0.1B"].tolist() == [2, 8, 0, 12, 1, 3]


def test_settings_refuse_bad_values():
    assert released.settings(0, 2, 1.5, 0.5)["min_tokens"] == 1.5e9
    with pytest.raises(ValueError, match="frac=0.95 is not valid"):
        released.settings(frac=0.95)
    with pytest.raises(ValueError, match="drop_first=11 is not valid"):
        released.settings(drop_first=11)
    with pytest.raises(ValueError, match="token_axis='logit' is not valid"):
        da.results("replay", token_axis="logit")


def test_save_and_load_round_trip(tmp_path):
    tables = {name: pd.DataFrame({"x": [1.5, 2.0], "warning": ["", "on a bound: A0"]}) for name in refit.RESULT_TABLES}
    refit.save_results(tables, tmp_path, {"settings": {"n_boot": 3}})
    back, meta = refit.load_results(tmp_path)
    assert meta == {"settings": {"n_boot": 3}} and back["coef"].x.tolist() == [1.5, 2.0]
    with pytest.raises(FileNotFoundError, match="profile='full'"):
        refit.load_results(tmp_path / "missing")


@pytest.fixture(scope="module")
def replayed(curves):
    tables, meta = refit.load_results(released.FOLDER)
    return {
        "curves": curves,
        "table2": paper.table2(),
        "table3": paper.table3(),
        **tables,
        "meta": meta,
        "runs": {},
        "mini": mini_laws.results("replay"),
        "token_axis": "log",
        "ours": sparser_model.recipe_run("replay"),
    }


def test_committed_refit_numbers(replayed):
    n = da.numbers(replayed)
    assert n["mae_printed_01relu"] == "4.07e-04" and n["b01_diff"] == "12.8 %"
    assert (
        n["size_ratio"] == "108–142"
        and n["n_per_curve"] == "24–42"
        and n["ml_n_runs"] == str(len(mini_laws.mini_runs("replay")))
    )  # every committed scale run
    cmp = da.table2(replayed)
    assert len(cmp[cmp.coefficient == "A0"]) == 10
    assert sparser_model.numbers(replayed)["last_24"] == "291B"
    assert scale.numbers(replayed)["paper_silu_a0_change"] == "-2.7"


def test_figures_draw(replayed):
    for fig in (
        da.fig4(replayed),
        da.kscan_figure(replayed),
        scale.fig7(replayed),
        scale.fig8(replayed),
        sparser_model.fig11(replayed),
    ):
        assert len(fig.axes) >= 1
        matplotlib.pyplot.close(fig)
