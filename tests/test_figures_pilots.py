"""The pilots' section of the dynamics chapter: the judged table, the verdicts, the figures, on the committed
pilots and on hand-made ones."""

import shutil

import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib.figures import pilots
from sparsing_lib.paths import DATA


@pytest.fixture(scope="module")
def res():
    return pilots.results()


def test_committed_pilots_six_rows_and_only_the_base_is_unstable(res):
    t = pilots.judged(res).set_index("pilot")
    assert len(t) == 6 and set(t.index) == set(pilots.PILOTS)
    assert list(t.index[~t["stable"].astype(bool)]) == ["p448-base"]
    assert t.loc["p448-base", "max_rise"] == pytest.approx(4.2423978 - 3.9623523, abs=1e-6)
    assert (t["tokens"] == 3200 * 64 * 1024).all()
    assert t.loc["p448-lr005", "tokens_per_param"] == pytest.approx(209715200 / 18464768)
    # the reference's validation loss at 209.7M tokens, interpolated between its checkpoints at 195.2M and 226.3M
    ref = pd.read_csv(DATA / "runs" / "mini-336x7-relu" / "metrics.csv").dropna(subset=["val_loss"])
    (a, la), (b, lb) = (
        ref[ref["tokens"] <= 209715200].iloc[-1][["tokens", "val_loss"]],
        ref[ref["tokens"] >= 209715200].iloc[0][["tokens", "val_loss"]],
    )
    assert t.loc["p448-base", "reference_loss"] == pytest.approx(la + (lb - la) * (209715200 - a) / (b - a))
    assert list(t.index[t["trains_well"]]) == ["p448-lr005", "p448-warm40m", "p448-batch4x", "p512-expected"]
    assert t.loc["p448-head32", "activation_ratio"] == pytest.approx(
        pd.read_csv(DATA / "pilots" / "p448-head32" / "sparsity.csv")["activation_ratio"].iloc[-1]
    )


def test_display_table_and_numbers(res):
    d = pilots.pilot_display(res).set_index("pilot")
    assert len(d) == 6 and d.loc["p448-base", "stable (rise ≤ 0.05)"] == "no"
    assert d.loc["p448-head32", "change to the degraded recipe"] == "14 heads of 32"
    assert d.loc["p512-expected", "change to the degraded recipe"] == "4× batch + 41.9M-token warm-up"
    assert d.loc["p448-base", "change to the degraded recipe"] == "none (the degraded recipe)"
    n = pilots.numbers(res)
    assert n["pilot_tokens"] == "210" and n["pilot_ref_tpp"] == "100"
    assert n["pilot_tpp"] == "11 (mini-448x8) and 7 (mini-512x10)"
    assert n["pilot_verdict"].startswith("5 of 6 pilots are stable by the rule; p448-base (rise 0.28 nats) is not")
    assert "p448-head32 (3.623) ends above it" in n["pilot_verdict"]
    assert (
        n["pilot_base"]
        == "reaches its lowest validation loss, 3.962, at 79M tokens and ends at 4.242, 0.28 nats above it"
    )
    assert n["pilot_good"] == "peak lr 0.005 (3.040), 41.9M-token warm-up (3.095) and 4× batch (3.086)"
    assert n["pilot_warmup_share"] == f"{40 * 2**20 / 2**27:.0%}" and n["pilot_small_steps"] == "512"
    assert n["pilot_paper_batch"] == "0.33M to 2.10M"


def test_sparsity_verdict_by_hand():
    good, late = pd.Series([0.07, 0.11]), pd.Series([0.08, 0.09, 0.085])
    v = pilots.sparsity_verdict(good, late)
    assert "end 0.0400 apart" in v and "4.0 times" in v and "moves the ratio more" in v
    assert "less" in pilots.sparsity_verdict(pd.Series([0.08, 0.081]), late)
    assert "fewer than two" in pilots.sparsity_verdict(pd.Series([0.08]), late)


def test_figures_draw_every_pilot_and_the_reference(res):
    loss, spars = pilots.fig_pilot_loss(res), pilots.fig_pilot_sparsity(res)
    assert isinstance(loss, Figure) and isinstance(spars, Figure)
    for fig in (loss, spars):
        labels = [line.get_label() for line in fig.axes[0].get_lines() if not line.get_label().startswith("_")]
        assert len(labels) == 7 and labels[-1].startswith("mini-336x7-relu")
    thick = [line.get_label() for line in loss.axes[0].get_lines() if line.get_linewidth() > 2]
    assert len(thick) == 1 and thick[0].startswith("p448-base") and "rises 0.28 nats" in thick[0]


def test_hand_made_pilots_without_an_unstable_one(tmp_path):
    """The smoke path's shape: _collect reads any folder of pilot runs; with the base made stable the verdict
    and the base's sentence follow."""
    for name in ("p448-base", "p448-lr005"):
        shutil.copytree(DATA / "pilots" / name, tmp_path / name)
    m = pd.read_csv(tmp_path / "p448-base" / "metrics.csv")
    m["val_loss"] = m["val_loss"].where(m["val_loss"].isna(), m["val_loss"].cummin())
    m.to_csv(tmp_path / "p448-base" / "metrics.csv", index=False)
    res = pilots._collect(tmp_path, pilots.REFERENCE, DATA / "runs" / pilots.REFERENCE)
    assert list(res["table"]["pilot"]) == ["p448-base", "p448-lr005"]
    n = pilots.numbers(res)
    assert n["pilot_verdict"].startswith("2 of 2 pilots are stable by the rule. Of the stable ones, p448-lr005 (3.040)")
    assert "p448-base (3.962) ends above it" in n["pilot_verdict"]
    assert n["pilot_base"] == "does not rise this time (largest rise 0.00 nats)"
    assert n["pilot_expected"] == "none"


def test_results_rejects_an_unknown_profile():
    with pytest.raises(ValueError, match="profile='fast'"):
        pilots.results("fast")


@pytest.mark.slow
def test_smoke_profile_trains_toy_pilots():
    res = pilots.results("smoke")
    assert len(res["table"]) == 6 and res["reference_name"] == "tiny-32x2-relu"
    assert (res["table"]["status"] == "done").all()
    n = pilots.numbers(res)
    assert n["pilot_hardware"] == "CPU" and n["pilot_verdict"]
    assert isinstance(pilots.fig_pilot_loss(res), Figure) and isinstance(pilots.fig_pilot_sparsity(res), Figure)
