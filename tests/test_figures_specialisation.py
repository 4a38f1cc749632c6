"""The specialisation analysis (Figs. 9, 10, 16): distances, per-token means, verdicts and claim 15."""

import json
import lzma

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


def test_per_token_means_average_each_vocabulary_token():
    df = spec.per_token_means(np.array([0.1, 0.3, 0.2, 0.4, 0.6]), np.array([5, 7, 5, 7, 9]))
    assert df["mean"].to_dict() == pytest.approx({5: 0.15, 7: 0.35, 9: 0.6})
    assert df["count"].to_dict() == {5: 2, 7: 2, 9: 1}
    with pytest.raises(ValueError, match="token ids"):
        spec.per_token_means(np.zeros(3), np.zeros(2))


def test_token_agreement_on_a_shifted_copy():
    x = np.array([0.1, 0.2, 0.3, 0.4])
    out = spec.token_agreement(x, x + 0.1, block=2, n_boot=20)
    assert out["r"] == pytest.approx(1.0) and out["mad"] == pytest.approx(10.0) and out["n"] == 4
    assert out["mad_lo"] == pytest.approx(10.0) and out["mad_hi"] == pytest.approx(10.0)
    with pytest.raises(ValueError, match="whole blocks"):
        spec.token_agreement(x, x, block=3, n_boot=0)


def test_recover_probe_ids_rebuilds_the_runners_positions_and_checks_the_corpus(tmp_path):
    val = {"prose": np.arange(1, 11, dtype=np.uint16), "technical": np.arange(20, 30, dtype=np.uint16)}
    index = {"files": {"train": {"sha256": "abc"}, "val": {}}}
    for dom, ids in val.items():
        (tmp_path / f"{dom}.xz").write_bytes(lzma.compress(ids.tobytes()))
        index["files"]["val"][dom] = {"file": f"{dom}.xz", "tokens": len(ids)}
    (tmp_path / "index.json").write_text(json.dumps(index))
    config = {
        "corpus_identity": {"train_sha256": "abc"},
        "probe": {"tokens": 8, "token_ratio_tokens": 6},
        "train": {"seq_len": 2},
    }
    # run.mix: 8 // (2 * 2) = 2 windows of 2 per domain -> [1, 2, 3, 4, 20, 21, 22, 23]; first 6 kept
    assert spec.recover_probe_ids(config, tmp_path).tolist() == [1, 2, 3, 4, 20, 21]
    config["corpus_identity"]["train_sha256"] = "other"
    assert spec.recover_probe_ids(config, tmp_path) is None
    assert spec.recover_probe_ids(config, tmp_path / "absent") is None


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


def _write(folder, model, layers, width, freq, ratios):
    """A probed dense run folder with one checkpoint's frequencies [domain, layer, neuron] and ratios."""
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
            probe=dict(tokens=len(ratios), token_ratio_tokens=len(ratios)),
        )
        runs_lib.write_json(d / "config.json", config)
        runs_lib.write_csv(d / "metrics.csv", [dict(step=10, train_loss=3.0)])
        runs_lib.write_npz(
            d / "neuron_frequency.npz",
            steps=np.array([10]),
            domains=np.array(["prose", "technical"]),
            frequency=freq[None].astype(np.float16),
        )
        runs_lib.write_npz(d / "token_ratios.npz", steps=np.array([10]), token_ratios=ratios[None].astype(np.float16))


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
    assert n["spec_models"] == "mini-160x3, mini-192x4" and n["spec_unit"] == "probe position"
    assert n["spec_layers"] == "3" and res["fig9"].mean_gap.max() < 0.2  # same mean level, swapped layers
    assert n["relu_domain_distance"] == "0.0"  # both domains carry the same frequencies
    assert len(spec.fig10(res, "relu").axes) == 4
    with pytest.raises(ValueError, match="activation"):
        spec.fig16(res, "gelu")


@pytest.mark.slow
def test_smoke_profile_trains_the_smoke_grid_and_analyses_it():
    res = spec.results("smoke")
    assert {r["activation"] for r in res["runs"].values()} == {"relu", "silu"} and res["ids"] is not None
    assert spec.claims(res)[0]["verdict"] == "untested"


def test_committed_probe_ids_are_used_only_for_the_corpus_the_runs_trained_on(tmp_path):
    _write(tmp_path, "mini-160x3", 3, 400, _layers(np.random.default_rng(0), [0.1, 0.15, 0.2]), np.full(64, 0.25))
    runs = spec._read(runs_lib.load_runs(tmp_path), tmp_path)
    for r in runs.values():
        r["config"]["corpus_identity"] = {"train_sha256": "abc"}
    ids = np.arange(64, dtype=np.uint16) % 5
    runs_lib.write_npz(tmp_path / spec.IDS_FILE, ids=ids, train_sha256=np.array("abc"))
    assert spec._committed_ids(tmp_path, runs).tolist() == ids.tolist()
    runs_lib.write_npz(tmp_path / spec.IDS_FILE, ids=ids, train_sha256=np.array("other"))
    assert spec._committed_ids(tmp_path, runs) is None
    runs_lib.write_npz(tmp_path / spec.IDS_FILE, ids=ids[:32], train_sha256=np.array("abc"))
    assert spec._committed_ids(tmp_path, runs) is None  # not one id per probe position


def test_per_vocabulary_token_comparison_and_its_coverage(tmp_path):
    _results(tmp_path, second=[0.2, 0.15, 0.1])
    runs = spec._read(runs_lib.load_runs(tmp_path), tmp_path)
    res = spec._collect(runs, np.arange(64) % 5, n_boot=10, seed=0)  # 5 token ids, seen 13, 13, 13, 13, 12 times
    assert res["fig10"].unit.tolist() == ["probe position", "vocabulary token"] * 2
    assert res["fig10"].n.tolist() == [64, 5] * 2  # the per-position rows stay beside the per-token ones
    note = spec.numbers(res)["spec_vocab_note"]
    assert note.startswith("These positions cover 5 of the 12,288 vocabulary tokens (0%), each seen a median 13 times")
