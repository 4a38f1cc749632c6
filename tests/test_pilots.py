"""Pilot study: the stability rule on hand-made curves, each pilot's single change, and the pilot grid."""

import numpy as np
import pandas as pd
import pytest

from sparsing_lib import pilots
from sparsing_lib import run as runner
from sparsing_lib.models import get_spec
from sparsing_lib.pilots import PILOT_BASE, PILOTS
from sparsing_lib.stability import stable


def curve(vals, steps=None):
    steps = steps or list(range(10, 10 * len(vals) + 1, 10))
    return pd.DataFrame(dict(step=steps, val_loss=vals))


def test_stable_rule_on_hand_made_curves():
    assert stable(curve([5.0, 4.0, 3.5, 3.4, 3.3]), 10) == (True, 0.0)
    ok, rise = stable(curve([5.0, 4.0, 4.04, 3.9, 3.94]), 10)  # rises of 0.04 above 4.0 and 3.9
    assert ok and rise == pytest.approx(0.04)
    ok, rise = stable(curve([4.02, 3.9, 4.1, 4.42]), 10)  # the degraded pilot's kind of curve
    assert not ok and rise == pytest.approx(0.52)
    # a spike before the end of warm-up (step 20) does not count: the running minimum starts there
    ok, rise = stable(curve([3.0, 6.0, 4.0, 3.9]), 20)
    assert ok and rise == pytest.approx(0.0)
    assert stable(curve([4.0, 3.9, float("nan"), 3.95]), 10) == (True, pytest.approx(0.05))  # unmeasured rows skipped
    assert stable(curve([4.0, float("inf")]), 10) == (False, float("inf"))
    with pytest.raises(ValueError, match="no validation loss at or after step 50"):
        stable(curve([4.0, 3.9]), 50)


def test_each_448_pilot_changes_one_thing_from_the_degraded_recipe():
    spec = get_spec("mini-448x8")
    base_spec, base = pilots.apply(PILOTS["p448-base"], spec, PILOT_BASE)
    assert (base_spec.head_dim, base.lr, base.batch_size, base.warmup_steps) == (64, 0.01, 64, 85)
    assert base.tokens == PILOT_TOKENS and base.tokens > 287e6 * 0.7  # well past the 62M where the rise began
    for name, pilot in PILOTS.items():
        if pilot.model != "mini-448x8" or name == "p448-base":
            continue
        s, c = pilots.apply(pilot, spec, PILOT_BASE)
        changed = [
            k
            for k, a, b in [
                ("head_dim", s.head_dim, 64),
                ("lr", c.lr, 0.01),
                ("batch", c.batch_size, 64),
                ("warmup_tokens", c.warmup_tokens, base.warmup_tokens),
            ]
            if a != b
        ]
        assert len(changed) == 1, (name, changed)
    s, c = pilots.apply(PILOTS["p448-head32"], spec, PILOT_BASE)
    assert s.n_heads == 14
    s, c = pilots.apply(PILOTS["p448-batch4x"], spec, PILOT_BASE)
    assert c.tokens_per_step == 4 * 65536 and c.steps == 800 and c.warmup_tokens == base.warmup_tokens


PILOT_TOKENS = pilots.PILOT_TOKENS


def test_pilot_grid_and_new_scales_span_30x_at_the_papers_width_depth():
    assert runner.GRIDS["pilots"] == list(PILOTS) and 4 <= sum(p.model == "mini-448x8" for p in PILOTS.values()) <= 8
    big, small = get_spec("mini-512x10"), get_spec("mini-160x3")
    assert big.non_embedding_params == 30_146_560 and get_spec("mini-448x8").non_embedding_params == 18_464_768
    assert big.non_embedding_params / small.non_embedding_params > 30
    assert 48 <= big.width_depth <= 56 and 48 <= get_spec("mini-448x8").width_depth <= 56
    assert runner.GRIDS["large"] == ["mini-448x8-relu", "mini-448x8-silu", "mini-512x10-relu", "mini-512x10-silu"]
    spec, act, cfg, variant = runner.recipe("p512-expected", "full")
    assert (spec.name, act, cfg.batch_size, cfg.warmup_tokens) == ("mini-512x10", "relu", 256, 40 * 2**20)
    assert (cfg.seed, variant.fraction) == (0, 1.0)
    full = runner.train_config("mini-512x10", "full")  # the family's recipe, not the pilot's (tests/test_recipe.py)
    # 30 tokens per parameter at the larger scales (run.LARGE_TOKENS_PER_PARAM), not the current scales' 100
    assert 30 * big.non_embedding_params <= full.steps * full.tokens_per_step < 31 * big.non_embedding_params


def test_pilot_table_reads_runs_and_judges_them(tmp_path):
    for name, vals in (("p448-base", [4.3, 4.02, 4.2, 4.42]), ("p448-lr005", [4.3, 4.0, 3.9, 3.8])):
        d = tmp_path / name
        d.mkdir()
        steps = [85, 300, 600, 900]
        pd.DataFrame(dict(step=steps, tokens=np.array(steps) * 65536, train_loss=vals, val_loss=vals)).to_csv(
            d / "metrics.csv"
        )
        train = {k: v for k, v in vars(PILOT_BASE).items()}
        (d / "config.json").write_text(pd.Series(dict(train=train)).to_json())
    t = pilots.pilot_table(tmp_path).set_index("pilot")
    assert list(t.index) == ["p448-base", "p448-lr005"]
    assert not t.loc["p448-base", "stable"] and t.loc["p448-base", "max_rise"] == pytest.approx(0.40)
    assert t.loc["p448-lr005", "stable"] and t.loc["p448-lr005", "last_val_loss"] == 3.8
    assert t.loc["p448-base", "status"] == "running"


def test_the_large_scales_own_parameter_count_matches_the_spec():
    from sparsing_lib.models import build_model

    for name, heads in (("mini-448x8", 7), ("mini-512x10", 8)):
        spec = get_spec(name)
        m = build_model(spec, "relu", vocab_size=50)
        counted = sum(p.numel() for n, p in m.named_parameters() if p.ndim >= 2 and "embed" not in n)
        assert counted == spec.non_embedding_params and m.config.num_attention_heads == heads == spec.n_heads
