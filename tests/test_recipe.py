"""The family's recipe: the paper's batch and warm-up rules, fitted from the committed paper files."""

import numpy as np
import pytest

from sparsing_lib import recipe
from sparsing_lib import run as runner
from sparsing_lib.models import MINI
from sparsing_lib.train import TrainConfig


def test_rules_are_fitted_to_the_papers_batches_and_warmups():
    r = recipe.paper_rules()
    # warm-up tokens per parameter of the five released scales, by hand from data/paper: 0.1B 1325·327000/1.08e8
    # = 4.012, 0.2B 4.003, 0.4B 3.652, 0.8B 2576·1.18e6/7.60e8 = 3.9996, 1.2B 1.998; the median is 0.8B's
    assert r.warmup_per_param == pytest.approx(2576 * 1.18e6 / 7.60e8)
    # the log-log fit through Table 3: 0.327M tokens at 0.108B, 2.10M at 2.44B (slope ln 6.42 / ln 22.6 = 0.595)
    assert 0.55 < r.beta < 0.65 and r.batch_tokens(1.08e8) == pytest.approx(3.27e5, rel=0.1)
    assert r.batch_tokens(2.44e9) == pytest.approx(2.10e6, rel=0.1)


def test_apply_rounds_to_whole_sequences_and_keeps_the_rest():
    rules = recipe.Rules(b0=2048.0, beta=0.5, warmup_per_param=4.0)
    base = TrainConfig(tokens=10**6, seq_len=256, lr=0.02)
    cfg = recipe.apply_rules(base, 4 * 10**8, rules, min_batch=1)  # 2048 · 2 = 4096 tokens = 16 sequences of 256
    assert (cfg.batch_size, cfg.warmup_tokens, cfg.lr, cfg.tokens) == (16, 1.6e9, 0.02, 10**6)
    assert recipe.apply_rules(base, 10, rules, min_batch=1).batch_size == 1  # never below one sequence
    assert recipe.apply_rules(base, 4 * 10**8, rules).batch_size == recipe.MIN_BATCH == 64  # the floor
    assert recipe.apply_rules(base, 4 * 10**12, rules).batch_size == 1600  # 2048 · 200 / 256: above the floor
    with pytest.raises(ValueError, match="positive"):
        recipe.apply_rules(base, 0, rules)


def test_every_full_run_gets_the_rules_batch_grows_and_warmup_is_four_tokens_per_parameter():
    scales = sorted((s for s in MINI.values() if s.kind in ("scale", "large")), key=lambda s: s.non_embedding_params)
    cfgs = [runner.train_config(s.name, "full") for s in scales]
    batches = [c.batch_size for c in cfgs]
    assert np.all(np.diff(batches) >= 0) and batches[-1] > batches[0]
    for s, c in zip(scales, cfgs):
        assert c.warmup_tokens == pytest.approx(recipe.paper_rules().warmup_per_param * s.non_embedding_params, abs=1)
        assert c.causal_attention and c.loss_chunk > 0 and c.lr == 0.01
    # the rule alone would give the smallest scales fewer than 64 sequences; the floor keeps the first recipe's 64
    assert round(recipe.paper_rules().batch_tokens(scales[0].non_embedding_params) / 1024) < 64
    assert cfgs[0].batch_size == 64 < cfgs[-1].batch_size
