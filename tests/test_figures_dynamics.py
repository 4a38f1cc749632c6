"""The dynamics chapter's library: epochs, the limit-loss fit, the family and runs tables, the verdicts."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from sparsing_lib import run
from sparsing_lib.convergence import run_settling
from sparsing_lib.figures import dynamics, limit_loss


def test_epochs_is_tokens_over_split_size():
    metrics = pd.DataFrame({"tokens": [100, 250]})
    assert dynamics.epochs(metrics, 100) == pytest.approx(2.5)


def test_fit_limit_loss_recovers_a_known_limit():
    tokens = np.linspace(10e6, 300e6, 25)
    loss = 3.0 + 2.0 * (tokens / 1e6) ** -0.5  # E = 3, B = 2, beta = 0.5 by construction
    fit = limit_loss.fit_limit_loss(tokens, loss, n_boot=20)
    assert fit["limit"] == pytest.approx(3.0, abs=1e-4)
    assert fit["beta"] == pytest.approx(0.5, abs=1e-3)
    assert fit["lo"] <= 3.0 + 1e-4 and fit["hi"] >= 3.0 - 1e-4
    assert fit["n_points"] == 25 and fit["n_boot"] == 20


def _fake_runs(limits=None):
    """Two scales x two activations on a fake 100M-token split; loss = E + 2 D^-0.5 with E per run."""
    limits = limits or {
        "mini-160x3-relu": 3.5,
        "mini-160x3-silu": 3.49,
        "mini-192x4-relu": 3.3,
        "mini-192x4-silu": 3.29,
    }
    tokens = np.linspace(5e6, 200e6, 20)
    runs = {}
    for name, e in limits.items():
        m = pd.DataFrame({"tokens": tokens, "train_loss": e + 2 * (tokens / 1e6) ** -0.5 - 0.05})
        m["val_loss"] = e + 2 * (tokens / 1e6) ** -0.5
        runs[name] = dict(
            metrics=m,
            config=dict(
                activation=name.rsplit("-", 1)[1],
                corpus="full",
                vocab_size=12288,
                corpus_identity=dict(train_tokens=100_000_000),
            ),
            env=dict(status="done", gpu=None, cpu_count=2),
            sparsity=pd.DataFrame({"tokens": tokens[:3]}),
        )
    return runs


def _fake_res():
    runs = _fake_runs()
    man = pd.DataFrame(
        {
            "source": ["a", "b"],
            "domain": ["prose", "technical"],
            "docs": [3, 4],
            "bytes": [10, 20],
            "tokens": [60_000_000, 40_000_000],
            "train_tokens_kept": [59_000_000, 39_000_000],
            "val_tokens": [1_000_000, 1_000_000],
            "public_domain": [True, False],
        }
    )
    return {
        "all_runs": runs,
        "runs": runs,
        "limits": dynamics.limit_losses(runs, n_boot=10),
        "limits_late": dynamics.limit_losses(runs, 0.3, n_boot=0),
        "settling": run_settling(runs),
        "settle_frac": 0.1,
        "manifest": man,
    }


def test_limit_losses_one_row_per_scale_run_with_its_limit():
    lim = dynamics.limit_losses(_fake_runs(), n_boot=0).set_index("run")
    assert lim.loc["mini-192x4-relu", "limit"] == pytest.approx(3.3, abs=1e-3)
    assert lim.loc["mini-160x3-silu", "params"] == 883200
    assert lim.loc["mini-160x3-relu", "n_points"] == 18  # the points at 5M and 15.3M come before 10% of 200M


def test_a_limit_on_the_fits_bound_is_left_empty():
    """A loss still falling as a straight line in log D has no finite limit the data determine: the power law
    fits it only with E pushed to its lower bound 0, which must not be read as a limit of 0 nats."""
    tokens = np.linspace(10e6, 300e6, 25)
    falling = 4.0 - 0.1 * np.log(tokens / 1e6)
    fit = limit_loss.fit_limit_loss(tokens, falling, n_boot=10)
    assert fit["status"] == "on a bound" and fit["limit"] < limit_loss.BOUND_TOL
    assert limit_loss.fit_limit_loss(tokens, 3.0 + 2.0 * (tokens / 1e6) ** -0.5, n_boot=10)["status"] == "determined"
    runs = _fake_runs()
    runs["mini-160x3-silu"]["metrics"]["val_loss"] = 4.0 - 0.1 * np.log(
        runs["mini-160x3-silu"]["metrics"]["tokens"] / 1e6
    )
    lim = dynamics.limit_losses(runs, n_boot=10).set_index("run")
    assert lim.loc["mini-160x3-silu", "status"] == "on a bound"
    assert lim.loc["mini-160x3-silu", ["limit", "lo", "hi"]].isna().all()
    assert lim.loc["mini-160x3-relu", "status"] == "determined" and np.isfinite(lim.loc["mini-160x3-relu", "limit"])
    dynamics.fig14(_fake_res() | {"limits": lim.reset_index()})  # draws with an empty limit


def test_runs_table_counts_epochs_checkpoints_and_hardware():
    table = dynamics.runs_table(_fake_res()).set_index("run")
    row = table.loc["mini-160x3-relu"]
    assert row["epochs"] == pytest.approx(2.0)
    assert row["tokens (M)"] == pytest.approx(200.0)
    assert row["checkpoints probed"] == 3
    assert row["hardware"] == "CPU (2 cores)"
    assert row["status"] == "done"


def test_runs_table_counts_passes_over_the_share_of_the_split_a_run_used():
    res = _fake_res()
    res["all_runs"] = dict(res["all_runs"])
    res["all_runs"]["mini-160x3-relu"] = dict(res["all_runs"]["mini-160x3-relu"])
    res["all_runs"]["mini-160x3-relu"]["config"] = dict(
        res["all_runs"]["mini-160x3-relu"]["config"], train_tokens_used=12_500_000
    )  # trained on 1/8 of the 100M-token split: 200M tokens are 16 passes over it, not 2
    table = dynamics.runs_table(res).set_index("run")
    assert table.loc["mini-160x3-relu", "epochs"] == pytest.approx(16.0)
    assert table.loc["mini-192x4-relu", "epochs"] == pytest.approx(2.0)


def test_table3_puts_the_paper_beside_the_mini_family():
    t = dynamics.table3()
    paper = t[t["family"] == "paper"]
    assert list(paper["model"]) == ["0.1B", "0.2B", "0.4B", "0.8B", "1.2B", "2.4B"]
    mini = t[t["family"] == "mini (ours)"].set_index("model")
    assert len(mini) == 14
    assert mini.loc["mini-160x3", "batch (tokens)"] == run.train_config("mini-160x3", "full").tokens_per_step
    assert mini.loc["mini-160x3", "training tokens (M)"] == pytest.approx(2**27 / 1e6, rel=1e-4)  # 2^27, whole steps
    assert mini.loc["wd-96x16", "tokens per parameter"] == pytest.approx(50, rel=1e-3)


def test_numbers_and_verdicts_follow_the_fake_losses():
    n = dynamics.numbers(_fake_res())
    assert n["n_runs"] == "4" and n["n_done"] == "4"
    assert n["epochs_range"] == "2.0–2.0"
    assert n["n_scales"] == "2" and n["scale_wd_range"] == "48–53"  # 192/4 and 160/3, from the model registry
    assert n["relu_minus_silu"] == "+0.010 to +0.010"
    assert "falls with every step in scale for ReLU and SiLU" in n["fig13_verdict"]
    assert n["limit_overlap"].endswith("of 2")
    assert n["corpus_domains"] == "prose 60%, technical 40%"
    assert n["corpus_public_domain"] == "60%"
    # the fake runs record no batch or warm-up, so none matches the current recipe: all are "earlier"
    assert n["current_recipe_count"] == "0 of the 4" and n["earlier_recipe_runs"].count("mini-") == 4
    assert n["current_recipe_check"] == "no run of the current recipe has been trained yet"


def test_figures_draw():
    res = _fake_res()
    assert isinstance(dynamics.fig13(res), Figure)
    assert isinstance(dynamics.fig14(res), Figure)


def test_results_rejects_unknown_grid_and_profile():
    with pytest.raises(ValueError, match="grid='every'"):
        dynamics.results("replay", grid="every")
    with pytest.raises(ValueError, match="profile='fast'"):
        dynamics.results("fast")


@pytest.mark.slow
def test_smoke_profile_trains_the_smoke_grid_and_fits():
    res = dynamics.results("smoke")
    assert sorted(res["runs"]) == ["tiny-32x2-relu", "tiny-32x2-silu"]
    table = dynamics.runs_table(res)
    assert (table["status"] == "done").all()
    assert dynamics.numbers(res)["corpus_in_run"] == "the committed smoke slice"


def _settling_res(later=("relu", "silu"), relu_gap=0.01, overlap=True):
    """Fake settling rows (two scales x two activations) and limit fits: the activation ratio settles at 0.6
    (loss at 0.2) for the activations in ``later``, at 0.05 otherwise; intervals +-0.02."""
    rows, lims = [], []
    for model in ("mini-160x3", "mini-192x4"):
        for act in ("relu", "silu"):
            a = 0.6 if act in later else 0.05
            rows.append(
                dict(
                    run=f"{model}-{act}",
                    activation=act,
                    val_loss_settle=0.2,
                    val_loss_settle_lo=0.18,
                    val_loss_settle_hi=0.22,
                    activation_ratio_settle=a,
                    activation_ratio_settle_lo=a - 0.02,
                    activation_ratio_settle_hi=a + 0.02,
                    val_loss_remaining=0.01,
                    activation_ratio_remaining=0.03,
                    val_loss_remaining_lo=0.0,
                    val_loss_remaining_hi=0.02,
                    activation_ratio_remaining_lo=0.02,
                    activation_ratio_remaining_hi=0.04,
                    order="later" if a > 0.5 else "earlier",
                )
            )
            e = 3.0 + (relu_gap if act == "relu" else 0.0)
            w = 0.1 if overlap else 0.001
            lims.append(
                dict(run=f"{model}-{act}", model=model, activation=act, last_loss=e + 0.2, limit=e, lo=e - w, hi=e + w)
            )
    return {"settling": pd.DataFrame(rows), "settle_frac": 0.1, "limits": pd.DataFrame(lims)}


def test_claim_16_branches():
    (_, c16) = dynamics.claims(_settling_res())
    assert c16["id"] == 16 and c16["verdict"] == "holds" and c16["basis"] == "our runs"
    (_, c16) = dynamics.claims(_settling_res(later=("silu",)))
    assert c16["verdict"] == "partly holds" and "0 of 2 ReLU runs and 2 of 2 SiLU runs" in c16["note"]
    (_, c16) = dynamics.claims(_settling_res(later=()))
    assert c16["verdict"] == "does not hold"
    res = _settling_res()
    res["settling"] = pd.DataFrame()
    assert dynamics.claims(res)[1]["verdict"] == "untested"


def test_claim_8_loss_side_holds_partly_holds_or_not():
    (c8, _) = dynamics.claims(_settling_res())  # gaps of 0.01 nats, every limit interval overlapping
    assert c8["id"] == 8 and c8["verdict"] == "holds"
    assert "downstream scores: judged in the downstream chapter" in c8["note"]
    assert "overlap at 2 of 2 scales" in c8["note"] and "differ by 0.010–0.010 nats" in c8["note"]
    (c8, _) = dynamics.claims(_settling_res(relu_gap=0.08))  # 0.08 nats apart, intervals of ±0.1 still overlap
    assert c8["verdict"] == "partly holds"
    (c8, _) = dynamics.claims(_settling_res(relu_gap=0.01, overlap=False))  # close, but intervals of ±0.001 apart
    assert c8["verdict"] == "partly holds"
    (c8, _) = dynamics.claims(_settling_res(relu_gap=0.2, overlap=False))
    assert c8["verdict"] == "does not hold"
    res = _settling_res()
    res["limits"] = res["limits"][res["limits"]["activation"] == "relu"]
    assert dynamics.claims(res)[0]["verdict"] == "untested"


def test_settling_table_figure_and_numbers_on_the_committed_runs_shape():
    res = _settling_res(later=("silu",))
    t = dynamics.settling_display(res)
    assert list(t["activation ratio settles"]) == ["earlier", "later", "earlier", "later"]
    assert t.iloc[1]["activation ratio settles at"] == "0.60 (0.58–0.62)"
    assert isinstance(dynamics.fig_settling(res), Figure)
    n = dynamics._settling_numbers(res)
    assert n["n_later"] == "2" and n["n_settling"] == "4" and n["activation_ratio_settle_silu"] == "0.60–0.60"


def test_runs_table_and_sentence_report_an_unstable_run_left_out_of_the_analyses():
    res = _fake_res()
    train = {"tokens": 200_000_000, "batch_size": 64, "seq_len": 1024, "betas": [0.9, 0.95]}  # warm-up 31 steps
    for r in res["runs"].values():
        r["config"]["train"] = train
        r["metrics"]["step"] = np.arange(1, 21) * 100
    n = dynamics.numbers(res)
    assert n["stability"] == "all 4 runs are stable by the rule: the largest rise is 0.000 nats"
    bad = res["runs"]["mini-192x4-silu"] | {"metrics": res["runs"]["mini-192x4-silu"]["metrics"].copy()}
    bad["metrics"].loc[19, "val_loss"] += 0.2  # the last loss 0.2 above the one before, itself the running minimum
    res["all_runs"] = res["runs"] | {"mini-192x4-silu": bad}
    table = dynamics.runs_table(res).set_index("run")
    assert table.loc["mini-192x4-silu", "stability"] == "unstable: left out of the analyses"
    rise = 0.2 + 2 * (200**-0.5 - (5 + 195 * 18 / 19) ** -0.5)  # over the previous point, E + 2 D^-0.5
    assert table.loc["mini-192x4-silu", "largest rise after warm-up (nats)"] == pytest.approx(rise)
    assert table.loc["mini-160x3-relu", "stability"] == "stable"
    assert dynamics.numbers(res)["stability"].startswith(
        "1 of 4 judged runs breaks the rule and is left out of every analysis: mini-192x4-silu (largest rise 0.19"
    )
