"""The specialisation analysis (Figs. 9, 10, 16): distances, per-token agreement, verdicts and claim 15."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib import runs as runs_lib
from sparsing_lib.figures import specialisation as spec

SEQ = 4


def test_layer_index_picks_first_exact_middle_and_last():
    assert [spec.layer_index(3, p) for p in spec.POSITIONS] == [0, 1, 2]
    assert (
        spec.layer_index(4, "middle") == 2 and spec.layer_index(7, "middle") == 3 and spec.layer_index(7, "last") == 6
    )
    with pytest.raises(ValueError, match="position"):
        spec.layer_index(3, "second")


def test_sorted_curve_is_the_descending_quantile_function():
    # levels 5/6, 1/2, 1/6 of [0, 0.5, 1] by linear interpolation: 0.8333, 0.5, 0.1667
    assert spec.sorted_curve(np.array([1.0, 0.0, 0.5]), n=3) == pytest.approx([5 / 6, 0.5, 1 / 6])


def test_distance_is_the_mean_vertical_gap_in_points():
    assert spec.distance_pp(np.full(10, 0.1), np.full(7, 0.3)) == pytest.approx(20.0)
    x = np.linspace(0, 0.5, 101)
    assert spec.distance_pp(x, x + 0.05) == pytest.approx(5.0)
    assert spec.distance_pp(x, x[::-1]) == pytest.approx(0.0)  # neuron order does not matter


def test_bootstrap_distance_interval_and_no_interval_without_resamples():
    assert spec.bootstrap_distance(np.full(50, 0.1), np.full(40, 0.3), n_boot=20) == pytest.approx((20.0, 20.0, 20.0))
    v, lo, hi = spec.bootstrap_distance(np.full(5, 0.1), np.full(5, 0.2), n_boot=0)
    assert v == pytest.approx(10.0) and np.isnan(lo) and np.isnan(hi)
    rng = np.random.default_rng(1)
    v, lo, hi = spec.bootstrap_distance(rng.uniform(0, 0.2, 500), rng.uniform(0.1, 0.3, 500), n_boot=50)
    assert lo <= v <= hi and v == pytest.approx(10.0, abs=1.0)


def test_token_agreement_on_a_shifted_copy():
    x = np.array([0.1, 0.2, 0.3, 0.4])
    out = spec.token_agreement(x, x + 0.1, block=2, n_boot=20)
    assert out["r"] == pytest.approx(1.0) and out["mad"] == pytest.approx(10.0) and out["n"] == 4
    assert out["mad_lo"] == pytest.approx(10.0) and out["mad_hi"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="whole blocks"):
        spec.token_agreement(x, x, block=3, n_boot=0)


def test_similarity_verdicts():
    rows = pd.DataFrame(dict(lo=[0.5, 1.0], hi=[1.5, 1.9]))
    assert spec.similarity(rows) == "similar"
    assert spec.similarity(rows.assign(lo=[0.5, 2.5], hi=[1.5, 3.0])) == "different"
    assert spec.similarity(rows.assign(hi=[1.5, 2.5])) == "undetermined"
    assert spec.similarity(pd.DataFrame()) == "untested"
    tok = pd.DataFrame(dict(mad_hi=[1.0], r_lo=[0.2]))
    assert spec.token_similarity(tok) == "similar"
    assert spec.token_similarity(tok.assign(mad_hi=[5.0], r_lo=[0.8])) == "correlated"
    assert spec.token_similarity(tok.assign(mad_hi=[5.0])) == "different"
    assert spec.token_similarity(pd.DataFrame()) == "untested"


# ----------------------------------------------------------------------------- synthetic run folders


def _write(folder, model, layers, width, freq, ratios, count=None):
    """A probed dense run folder (format 2) with one checkpoint's frequencies [domain, layer, neuron] and
    per-vocabulary ratios (a vocabulary of len(ratios) ids; ``count`` occurrences, NaN where 0)."""
    count = np.ones(len(ratios), dtype=np.int32) if count is None else count
    for act in ("relu", "silu"):
        d = folder / f"{model}-{act}"
        d.mkdir(parents=True)
        config = dict(
            run=d.name,
            activation=act,
            corpus="synthetic",
            corpus_identity={},
            model=dict(name=model, kind="scale", n_layers=layers, d_ff=width, non_embedding_params=layers * width),
            train=dict(seq_len=SEQ),
            probe=dict(tokens=len(ratios)),
            format=runs_lib.FORMAT,
        )
        runs_lib.write_json(d / "config.json", config)
        runs_lib.write_csv(d / "metrics.csv", [dict(step=10, train_loss=3.0)])
        runs_lib.write_npz(
            d / "neuron_frequency.npz",
            steps=np.array([10]),
            domains=np.array(["prose", "technical"]),
            frequency=freq[None].astype(np.float16),
        )
        runs_lib.write_npz(
            d / "vocab_ratios.npz",
            steps=np.array([10]),
            mean=np.where(count > 0, ratios, np.nan)[None].astype(np.float16),
            count=count,
            sources=np.array(["prose", "train"]),
            source_tokens=np.array([count.sum() - 4, 4]),
        )


def _layers(rng, levels, width=400):
    """Frequencies near ``levels[i]`` (±1 point) for layer i, same for both domains."""
    f = np.stack([lv + 0.02 * rng.random(width) for lv in levels])
    return np.stack([f, f])


def _results(tmp_path, second=None, ratios2=None):
    rng = np.random.default_rng(0)
    ratios = 0.2 + 0.1 * rng.random(64)
    _write(tmp_path, "mini-160x3", 3, 400, _layers(rng, [0.1, 0.15, 0.2]), ratios)
    if second is not None:
        _write(tmp_path, "mini-192x4", 3, 400, _layers(rng, second), ratios if ratios2 is None else ratios2)
    return spec.results("smoke", n_boot=20, runs_folder=str(tmp_path))


def test_claim_holds_when_pooled_alike_first_and_last_layers_differ_and_tokens_agree(tmp_path):
    res = _results(tmp_path, second=[0.2, 0.15, 0.1])  # first and last swapped: pooled neurons alike
    assert res["fig9"].distance.max() < 1.0 and res["fig10"].mad.max() == pytest.approx(0.0)
    first = res["fig16"][res["fig16"].position == "first"]
    assert first.distance.min() == pytest.approx(10.0, abs=0.5)  # layer 0.1 vs 0.2 by construction
    assert spec.claims(res) == [dict(id=15, verdict="holds", basis="our runs", note=spec.claims(res)[0]["note"])]
    assert "Fig. 9 holds, Fig. 16 holds, Fig. 10 holds" in spec.claims(res)[0]["note"]


def test_claim_does_not_hold_when_every_figure_fails(tmp_path):
    other = np.random.default_rng(5).permutation(0.6 + 0.3 * np.random.default_rng(4).random(64))
    res = _results(tmp_path, second=[0.1, 0.6, 0.2], ratios2=other)  # only the middle layer moves
    parts = spec._parts(res)["relu"]
    assert (parts["fig9"], parts["fig16"], parts["fig10"]) == ("fails", "fails", "fails")
    assert res["fig9"].mean_gap.to_numpy() == pytest.approx(15.0, abs=0.2)  # middle layer +45 points, 1 of 3 layers
    assert spec.claims(res)[0]["verdict"] == "does not hold"


def test_claim_partly_holds_when_every_layer_is_alike(tmp_path):
    res = _results(tmp_path, second=[0.1, 0.15, 0.2])  # the paper's first/last-layer difference is absent
    assert spec._parts(res)["silu"]["fig16"] == "partly"
    assert spec.claims(res)[0]["verdict"] == "partly holds"


def test_one_scale_is_untested_and_still_draws(tmp_path):
    res = _results(tmp_path)
    assert spec.claims(res)[0]["verdict"] == "untested"
    n = spec.numbers(res)
    assert n["relu_fig10_r"] == "no pair of scales" and "untested" in n["fig9_verdict"]
    assert n["relu_fig9_mean_range"] == "16.0 to 16.0"  # mean of layers near 10, 15, 20 (+1) points
    for fig in (spec.fig9(res), spec.fig16(res, "relu"), spec.fig10(res, "silu")):
        assert isinstance(fig, Figure)


def test_figures_and_numbers_with_two_scales(tmp_path):
    res = _results(tmp_path, second=[0.2, 0.15, 0.1])
    n = spec.numbers(res)
    assert n["spec_models"] == "mini-160x3, mini-192x4" and n["spec_unit"] == "vocabulary token"
    assert n["spec_layers"] == "3" and res["fig9"].mean_gap.max() < 0.2  # same mean level, swapped layers
    assert n["relu_domain_distance"] == "0.0"  # both domains carry the same frequencies
    assert len(spec.fig10(res, "relu").axes) == 4
    with pytest.raises(ValueError, match="activation"):
        spec.fig16(res, "gelu")


@pytest.mark.slow
def test_smoke_profile_trains_the_smoke_grid_and_analyses_it():
    res = spec.results("smoke")
    assert {r["activation"] for r in res["runs"].values()} == {"relu", "silu"}
    assert all(np.isfinite(r["ratios"]).any() for r in res["runs"].values())
    assert spec.claims(res)[0]["verdict"] == "untested"


def test_per_vocabulary_token_comparison_uses_the_tokens_both_runs_saw_and_states_coverage(tmp_path):
    rng = np.random.default_rng(0)
    ratios, count = 0.2 + 0.1 * rng.random(64), np.zeros(64, dtype=np.int32)
    count[:5] = [13, 13, 13, 13, 12]  # 5 of 64 ids seen, 64 tokens in all
    _write(tmp_path, "mini-160x3", 3, 400, _layers(rng, [0.1, 0.15, 0.2]), ratios, count)
    _write(tmp_path, "mini-192x4", 3, 400, _layers(rng, [0.2, 0.15, 0.1]), ratios + 0.1, count)
    res = spec.results("smoke", n_boot=10, runs_folder=str(tmp_path))
    assert res["fig10"].unit.tolist() == ["vocabulary token"] * 2 and res["fig10"].n.tolist() == [5, 5]
    assert res["fig10"].mad.to_numpy() == pytest.approx(10.0, abs=0.1)  # every seen id shifted by 10 points
    n = spec.numbers(res)
    assert n["spec_probe_tokens"] == "64" and n["spec_probe_sources"] == (
        "60 from prose validation, 4 from the start of the training split"
    )
    assert n["spec_vocab_note"].startswith("They cover 5 of the 64 vocabulary tokens (8%), seen 13 times at the median")
