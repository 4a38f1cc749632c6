"""When a training curve settles: settling point, change left, noise residuals and the per-run table."""

import numpy as np
import pandas as pd
import pytest

from sparsing_lib import convergence


def test_settling_fraction_hand_computed():
    tokens = np.array([10, 20, 30, 40, 50, 60])
    y = np.array([10.0, 5.0, 2.5, 1.4, 1.0, 1.0])
    # end level = mean(1.4, 1, 1) = 1.1333; total change 8.8667; band 10% = 0.8867;
    # |2.5 - 1.133| = 1.367 is outside, |1.4 - 1.133| = 0.267 inside from there on -> 40 / 60
    assert convergence.settling_fraction(tokens, y) == pytest.approx(40 / 60)
    assert convergence.settling_fraction(tokens, y, frac=0.2) == pytest.approx(30 / 60)  # band 1.773 > 1.367
    assert convergence.settling_fraction(tokens, y, frac=0.5) == pytest.approx(20 / 60)  # 5 - 1.133 < 4.43
    assert np.isnan(convergence.settling_fraction(tokens, np.ones(6)))
    with pytest.raises(ValueError, match="frac="):
        convergence.settling_fraction(tokens, y, frac=1.5)


def test_settling_fraction_counts_a_late_excursion():
    y = np.array([0.0, 1.0, 1.0, 0.5, 1.0, 1.0, 1.0])  # leaves the band at the fourth checkpoint
    assert convergence.settling_fraction(np.arange(1, 8), y) == pytest.approx(5 / 7)


def test_remaining_share_hand_computed():
    tokens = np.array([0.0, 30.0, 60.0, 90.0])
    y = np.array([4.0, 2.0, 1.2, 1.0])
    # end level = mean(2, 1.2, 1) = 1.4; at 2/3 of 90 = 60: y = 1.2; |1.2 - 1.4| / |4 - 1.4| = 0.2 / 2.6
    assert convergence.remaining_share(tokens, y) == pytest.approx(0.2 / 2.6)


def test_noise_residuals_are_centred_and_vanish_on_a_line():
    assert np.allclose(convergence.noise_residuals(np.arange(10.0)), 0.0)
    r = convergence.noise_residuals(np.array([0.0] * 10) + np.array([0, 0, 0, 0, 0, 1, -1, 1, -1, 1]))
    assert len(r) == 3 and r.mean() == pytest.approx(0.0)  # checkpoints 6-8: the last two have cut windows


def test_settling_interval_brackets_a_clean_curve_and_tightens_without_noise():
    t = np.linspace(1, 100, 30)
    y = 1 + np.exp(-t / 10)
    out = convergence.settling(t, y, n_boot=50)
    assert out["settle_lo"] <= out["settle"] <= out["settle_hi"]
    assert out["settle_hi"] - out["settle_lo"] < 0.05
    noisy = y + np.random.default_rng(1).normal(0, 0.03, len(y))
    wide = convergence.settling(t, noisy, n_boot=50)
    assert wide["settle_hi"] - wide["settle_lo"] > out["settle_hi"] - out["settle_lo"]


def test_run_settling_orders_the_two_series():
    t = np.linspace(1e6, 100e6, 30)
    fast, slow = 3 + 4 * np.exp(-t / 5e6), 0.4 - 0.2 * np.exp(-t / 30e6)
    runs = {
        "mini-160x3-silu": dict(
            config=dict(activation="silu"),
            metrics=pd.DataFrame({"tokens": t, "val_loss": fast}),
            sparsity=pd.DataFrame({"tokens": t, "activation_ratio": slow}),
        ),
        "mini-160x3-relu": dict(
            config=dict(activation="relu"),
            metrics=pd.DataFrame({"tokens": t[:3]}),
            sparsity=pd.DataFrame({"tokens": t[:3]}),
        ),
    }
    st = convergence.run_settling(runs, n_boot=20)
    assert list(st["run"]) == ["mini-160x3-silu"]  # the other has too few checkpoints
    row = st.iloc[0]
    assert row["order"] == "later" and row["activation_ratio_settle"] > row["val_loss_settle"]
    assert row["params"] == 883200
