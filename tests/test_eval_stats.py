import numpy as np
import pytest

from sparsing_lib.evaluation import stats as S


def test_wilson_matches_hand_computation():
    # 8/10 at 95 %: centre (0.8 + 1.92/10) / 1.384 = 0.7167, half 0.2266 -> (0.4902, 0.9433)
    low, high = S.wilson(8, 10)
    assert low == pytest.approx(0.4902, abs=1e-4) and high == pytest.approx(0.9433, abs=1e-4)
    assert S.wilson(0, 20)[0] == 0.0 and S.wilson(20, 20)[1] == 1.0
    assert np.isnan(S.wilson(0, 0)[0])


def _loop_reference(x, n_boot, seed, level=0.95):
    rng = np.random.default_rng(seed)
    means = [np.mean(x[rng.integers(0, len(x), size=len(x))]) for _ in range(n_boot)]
    return np.percentile(means, [50 * (1 - level), 50 * (1 + level)])


def test_bootstrap_mean_equals_a_plain_loop(monkeypatch):
    x = np.random.default_rng(1).normal(size=37)
    monkeypatch.setattr(S, "_BLOCK", 37 * 7)  # force several blocks
    np.testing.assert_allclose(S.bootstrap_mean(x, 500, seed=3), _loop_reference(x, 500, 3), rtol=1e-12)


def test_paired_difference_is_tighter_than_unpaired():
    rng = np.random.default_rng(0)
    a = (rng.random(2000) < 0.6).astype(float)
    b = a.copy()
    b[rng.choice(2000, 40, replace=False)] = 0.0  # sparse loses a few items
    d, low, high = S.paired_difference(a, b)
    assert d == pytest.approx(b.mean() - a.mean())
    assert low < d < high < 0  # a paired loss of ~1.2 points is resolved...
    wa, wb = S.wilson(a.sum(), 2000), S.wilson(b.sum(), 2000)
    assert wa[0] < wb[1]  # ...although the two unpaired intervals overlap
    np.testing.assert_allclose((low, high), _loop_reference(b - a, S.N_BOOT, 0))
    with pytest.raises(ValueError, match="same items"):
        S.paired_difference(a, b[:-1])


def test_group_average_resamples_each_task_on_its_own_items():
    x, y = np.array([1.0, 0.0, 1.0, 1.0]), np.array([0.0, 0.0, 1.0])
    point, low, high = S.group_average({"x": x, "y": y}, n_boot=400, seed=5)
    assert point == pytest.approx((0.75 + 1 / 3) / 2)  # mean of task means, not of pooled items
    rng = np.random.default_rng(5)
    bx = np.array([x[rng.integers(0, 4, size=4)].mean() for _ in range(400)])
    by = np.array([y[rng.integers(0, 3, size=3)].mean() for _ in range(400)])
    np.testing.assert_allclose((low, high), np.percentile((bx + by) / 2, [2.5, 97.5]))


def test_wilson_ends_are_exact():
    assert S.wilson(0, 6)[0] == 0.0 and S.wilson(6, 6)[1] == 1.0
