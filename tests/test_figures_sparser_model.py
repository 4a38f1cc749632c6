"""Fig. 11 from our recipe-validation run: synthetic run folders (present, absent, rising, with and without the
twin), numbers and verdicts by hand, the claim's branches, and (slow) the smoke profile's toy run."""

from dataclasses import asdict

import matplotlib
import numpy as np
import pytest

from sparsing_lib import paper, refit
from sparsing_lib import run as runner
from sparsing_lib.figures import mini_laws as ml
from sparsing_lib.figures import released
from sparsing_lib.figures import sparser_model as sm
from sparsing_lib.models import get_spec, spec_dict
from sparsing_lib.runs import FORMAT, load_runs, write_csv, write_json

matplotlib.use("Agg")
WIGGLE = 2e-4  # alternating checkpoint noise on the synthetic curves


def law(tokens, a0=0.09, c=3.0):
    """A falling logspace law: exp(-c·D + ln 0.06) + a0, D in billions of tokens."""
    return np.exp(-c * np.asarray(tokens, float) / 1e9 + np.log(0.06)) + a0


def write_run(folder, name: str, values, after: float | None = None, val_after: float = 2.9) -> dict:
    """A run folder as the runner writes it, with the full recipe of ``name``'s model and the activation ratios
    ``values(tokens)`` at its stable-phase checkpoints (``after``: the value at the checkpoint after a decay)."""
    model, act = name.rsplit("-", 1)
    spec, cfg = get_spec(model), runner.train_config(model, "full")
    steps = np.array(cfg.checkpoint_steps)
    tokens = steps * cfg.tokens_per_step
    stable = steps <= cfg.stable_end
    ratio = np.where(stable, values(tokens) + WIGGLE * (-1) ** np.arange(len(steps)), after or 0.0)
    out = folder / name
    out.mkdir(parents=True)
    config = dict(format=FORMAT, run=name, activation=act, model=spec_dict(spec), train=asdict(cfg))
    write_json(
        out / "config.json", config | dict(tokens_per_param=cfg.steps * cfg.tokens_per_step / spec.non_embedding_params)
    )
    val = np.where(stable, 3.3 - 0.2 * tokens / tokens[-1], val_after)
    rows = [
        dict(step=s, tokens=t, epoch=t / 5e8, lr=0.01, train_loss=v, val_loss=v) for s, t, v in zip(steps, tokens, val)
    ]
    write_csv(out / "metrics.csv", rows)
    write_csv(
        out / "sparsity.csv",
        [dict(step=s, tokens=t, activation_ratio=a, ppl_ratio=1.01) for s, t, a in zip(steps, tokens, ratio)],
    )
    write_json(out / "env.json", dict(status="done"))
    return dict(steps=steps, tokens=tokens, ratio=ratio, stable=stable, params=spec.non_embedding_params)


@pytest.fixture(scope="module")
def authors(curves):
    tables, meta = refit.load_results(released.FOLDER)
    return {"curves": curves, **tables, "meta": meta}


def analyse(folder, twin: str | None = sm.TWIN, n_boot: int = 30) -> dict:
    return sm.validation(load_runs(folder, unstable=True), sm.RUN, twin, ml.START_RATIO, n_boot)


def test_the_run_is_the_sweeps_recipe_run_and_its_twin_the_largest_scale():
    assert sm.RUN in runner.GRIDS["sweep"] and sm.RUN == runner.GRIDS["sweep"][-1] == runner.GRIDS["recipe"][0]
    assert sm.TWIN in runner.GRIDS["large"] and get_spec("recipe-448x13").kind == "recipe"
    d = sm.design(sm.RUN)
    assert (d["width"], d["depth"], d["params"], d["decay_frac"]) == (448, 13, 30_005_248, 0.1)
    assert d["ratio"] == pytest.approx(448 / 13) and 40 <= d["tokens_per_param"] < 40.1


def test_absent_run_says_so_in_one_sentence_and_draws_the_authors_panel_only(tmp_path, authors):
    o = analyse(tmp_path)
    assert not o["present"] and o["run"] == sm.RUN
    res = authors | {"ours": o}
    n = sm.numbers(res)
    assert (
        n["ours_result"] == f"{sm.RUN} is not among our trained runs yet, so the figure shows the authors' data only."
    )
    assert (
        "ratio of 34.5 and 40 tokens" in n["ours_design"]
        and "(against 51.2 and 30 for mini-512x10-relu" in n["ours_design"]
    )
    assert n["fig11_verdict"].endswith(f"Our own run: not trained yet ({sm.RUN}).")
    assert not n["fig11_what"].startswith("left") and (n["ours_start"], n["ours_smaller"]) == ("7.8", "81")
    fig = sm.fig11(res)
    assert len(fig.axes) == 1
    assert [c["basis"] for c in sm.claims(res)] == ["authors' data"]


def test_present_run_is_fitted_on_its_stable_phase_only(tmp_path, authors):
    made = write_run(tmp_path, sm.RUN, law, after=0.093, val_after=2.95)
    o = analyse(tmp_path, twin=None)
    assert o["present"] and o["status"] == "inside bounds" and o["identifiable"]
    # 31 checkpoints: 30 stable (of which those from 7.8 tokens per parameter on are fitted) and the decayed one
    assert len(o["stable"]) == 30 and len(o["after"]) == 1 and o["after"]["step"].iloc[0] == made["steps"][-1]
    first = int(np.searchsorted(made["tokens"] / made["params"], ml.START_RATIO))
    assert o["stable"]["fitted"].tolist() == [i >= first for i in range(30)] and o["fit"].n == 30 - first
    assert o["fit"].params["A0"] == pytest.approx(0.09, abs=2e-3)  # the law the points were drawn from
    lo, hi = o["fit"].ci["A0"]
    assert lo < o["fit"].params["A0"] < hi
    # the decay's change by hand: the decayed checkpoint minus the last stable one, ±1.96·√2·σ (checkpoint noise)
    last = made["ratio"][29]
    sigma = ml.checkpoint_noise(made["ratio"][first:30])
    d = o["decay"]
    assert d["change"] == pytest.approx(0.093 - last) and d["hi"] - d["change"] == pytest.approx(
        ml.Z95 * np.sqrt(2) * sigma
    )
    assert (d["loss_before"], d["loss_after"]) == (
        pytest.approx(3.3 - 0.2 * made["tokens"][29] / made["tokens"][-1]),
        2.95,
    )
    assert o["trend"]["start_change"] == pytest.approx(last - made["ratio"][first])
    res = authors | {"ours": o}
    n = sm.numbers(res)
    assert (
        "its activation ratio falls" in n["ours_result"]
        and f"fits inside its bounds with a limit A0 = {100 * o['fit'].params['A0']:.2f} %" in n["ours_result"]
    )
    assert f"After the decay it is {100 * 0.093:.2f} %" in n["ours_result"] and "from 3." in n["ours_result"]
    assert "Our own run: reproduced: " in n["fig11_verdict"] and n["fig11_what"].startswith("left")
    assert len(sm.fig11(res).axes) == 2
    by_basis = {c["basis"]: c for c in sm.claims(res)}
    assert by_basis["our runs"]["verdict"] == "partly holds" and by_basis["our runs"]["id"] == 18


def test_twin_compared_at_its_last_tokens_per_parameter_by_hand(tmp_path, authors):
    made = write_run(tmp_path, sm.RUN, law, after=0.093)
    twin = write_run(tmp_path, sm.TWIN, lambda t: np.full(len(t), 0.11))
    o = analyse(tmp_path)
    tw = o["twin_result"]
    end = twin["tokens"][-1] / twin["params"]
    j = int(np.argmin(np.abs(made["tokens"][made["stable"]] / made["params"] - end)))
    first_t = int(np.searchsorted(twin["tokens"] / twin["params"], ml.START_RATIO))
    sigma, sigma_t = o["trend"]["noise"], ml.checkpoint_noise(twin["ratio"][first_t:])
    assert tw["end"] == pytest.approx(end) and tw["diff"] == pytest.approx(made["ratio"][j] - twin["ratio"][-1])
    assert tw["hi"] - tw["diff"] == pytest.approx(ml.Z95 * np.hypot(sigma, sigma_t))
    n = sm.numbers(authors | {"ours": o})
    assert f"from {sm.TWIN} at that run's end ({100 * twin['ratio'][-1]:.2f} %, {end:.1f} tokens" in n["ours_result"]


def test_a_rising_run_differs_and_its_law_on_a_bound_is_a_word_not_a_number(tmp_path, authors):
    write_run(tmp_path, sm.RUN, lambda t: 0.10 + 0.01 * np.asarray(t, float) / 1e9, after=0.12)
    o = analyse(tmp_path)
    assert not o["identifiable"] and o["status"] != "inside bounds" and o["twin_result"] is None
    res = authors | {"ours": o}
    n = sm.numbers(res)
    assert "its activation ratio rises" in n["ours_result"] and "so no limit is quoted" in n["ours_result"]
    assert f"{sm.TWIN}, to compare it with, is not among our trained runs yet." in n["ours_result"]
    assert "Our own run: differs: " in n["fig11_verdict"] and "A0 =" not in n["ours_result"]
    assert {c["basis"]: c["verdict"] for c in sm.claims(res)}["our runs"] == "does not hold"
    assert len(sm.fig11(res).axes) == 2


def test_points_and_percent_formats_by_hand():
    assert sm._points(0.0123, -0.001, 0.0256) == "+1.23 points [-0.10, +2.56]"
    assert sm._pct(0.0648) == "6.48 %"
    assert sm._count(30_005_248) == "30.0M" and sm._count(23_552) == "23.6k"


def test_final_law_is_the_papers():
    assert paper.law_2p4b("final")["A0"] == pytest.approx(0.0648)


@pytest.mark.slow
def test_smoke_profile_trains_a_toy_run_with_a_decay_and_analyses_it():
    o = sm.recipe_run("smoke")
    assert o["present"] and o["run"] == sm.SMOKE_RUN and o["decay_frac"] == runner.RECIPE_DECAY_FRAC
    assert len(o["after"]) == 1 and len(o["stable"]) == 8 and o["stable"]["fitted"].all()
    assert o["after"]["tokens"].iloc[0] > o["stable"]["tokens"].max()
