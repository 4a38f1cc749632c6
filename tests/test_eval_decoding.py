"""The decoding loop gives greedy decoding's texts (checked against transformers' generate) without host
synchronisations inside a step, under every sparsity setting."""

import collections
import random

import pytest
import torch
import transformers as tf

from sparsing_lib import metrics
from sparsing_lib.corpus import load_tokenizer
from sparsing_lib.evaluation import benchmark as B
from sparsing_lib.evaluation import decoding as D
from sparsing_lib.evaluation import engine as E
from sparsing_lib.models import build_model, get_spec, tiny_llama

NEW = 20
WORDS = "the cat sat on a mat and then it ran to the house where people live in peace".split()


@pytest.fixture(scope="module")
def tok():
    return load_tokenizer()


def _prompts(n: int, seed: int = 0, longest: int = 40) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, longest))) for _ in range(n)]


def _reference(model, tok, prompts, stops, new=NEW) -> tuple[list[str], list[list[int]]]:
    """One prompt at a time (no padding), transformers' greedy generate run to ``new`` tokens or EOS, cut at
    EOS and at the first stop string; also the new tokens themselves."""
    eos = E.eos_id(tok)
    texts, rows = [], []
    for p in prompts:
        ids = torch.tensor([tok(p)["input_ids"]])
        out = model.generate(
            input_ids=ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new,
            do_sample=False,
            use_cache=True,
            pad_token_id=eos,
            eos_token_id=eos,
        )
        row = out[0, ids.shape[1] :].tolist()
        rows.append(row)
        texts.append(D.cut_at_stop(tok.decode(row[: row.index(eos)] if eos in row else row), stops))
    return texts, rows


def _stops_from(texts: list[str]) -> tuple[str, ...]:
    """Short stop strings taken from the middle of some free-running completions, so that some rows stop."""
    return (texts[0][5:8], texts[3][10:12], texts[7][4:6], "\n")


@pytest.fixture(scope="module")
def llama_with_eos(tok):
    """The tiny Llama with EOS made likely: its output row copies (x1.5) the row of the token the model emits
    most often, so that some completions end in EOS, some in a stop string and some at the length limit."""
    model = tiny_llama(len(tok))
    _, rows = _reference(model, tok, _prompts(12), ())
    common = collections.Counter(t for r in rows for t in r).most_common(1)[0][0]
    with torch.no_grad():
        model.lm_head.weight[E.eos_id(tok)] = 1.5 * model.lm_head.weight[common]
    return model


def test_greedy_equals_generate_with_stops_eos_and_limit(tok, llama_with_eos, monkeypatch):
    model, prompts = llama_with_eos, _prompts(36)
    free, _ = _reference(model, tok, prompts, ())
    stops = _stops_from(free)
    want, rows = _reference(model, tok, prompts, stops)
    eos = E.eos_id(tok)
    ended = collections.Counter(
        "stop" if any(s in f for s in stops) else "eos" if eos in r else "limit" for f, r in zip(free, rows)
    )
    assert min(ended["stop"], ended["eos"], ended["limit"]) >= 2  # every way of ending is exercised
    drops = []
    select = tf.DynamicCache.batch_select_indices
    monkeypatch.setattr(tf.DynamicCache, "batch_select_indices", lambda c, i: (drops.append(len(i)), select(c, i)))
    for batch_size in (64, 7):  # one batch of every length; several batches
        got = E.generate(model, tok, prompts, stops, NEW, batch_size=batch_size)
        assert got.text == want
        assert (got.n_tokens <= NEW).all() and (got.n_tokens == NEW).sum() >= ended["limit"]
    assert drops  # finished rows were dropped from running batches


def test_second_architecture_gpt2(tok):
    torch.manual_seed(0)
    cfg = tf.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=2, n_positions=128)
    model = tf.GPT2LMHeadModel(cfg).eval()
    prompts = _prompts(12, seed=1)
    free, _ = _reference(model, tok, prompts, ())
    stops = (free[0][3:5], free[1][4:6])
    want, _ = _reference(model, tok, prompts, stops)
    assert E.generate(model, tok, prompts, stops, NEW).text == want


def test_granite_mini_without_config_cache_decodes_with_a_cache(tok):
    """Our minis are built with ``use_cache=False``: the loop still decodes one token per step, and under
    ``sparsify`` counts every real token once: the prompts, then each fed-back token."""
    model = build_model(get_spec("tiny-32x2"), "silu", len(tok)).eval()
    model.config.max_position_embeddings = 128
    prompts = _prompts(8, seed=2, longest=12)
    with metrics.sparsify(model, "topk_token", 0.5):
        want, _ = _reference(model, tok, prompts, (), new=6)
    widths = []
    handle = model.register_forward_pre_hook(lambda m, a, k: widths.append(k["input_ids"].shape[1]), with_kwargs=True)
    with metrics.sparsify(model, "topk_token", 0.5) as stats:
        got = E.generate(model, tok, prompts, (), 6, batch_size=64)
    handle.remove()
    assert got.text == want
    assert widths[1:] == [1] * 5  # prefill, then 5 cached steps (the 6th token is not fed back)
    assert (got.n_tokens == 6).all()  # no EOS: every row ran to the limit
    prompt_tokens = sum(len(tok(p)["input_ids"]) for p in prompts)
    assert stats.tokens[0] == prompt_tokens + 8 * 5
    assert stats.activation_ratio == pytest.approx(0.5, abs=0.02)


def test_sparse_generation_equals_generate_under_the_same_rule(tok, llama_with_eos):
    model, prompts = llama_with_eos, _prompts(16, seed=3)
    value = [0.05] * len(model.model.layers)
    with metrics.sparsify(model, "cett", value):
        free, _ = _reference(model, tok, prompts, ())
        stops = _stops_from(free)
        want, _ = _reference(model, tok, prompts, stops)
    with metrics.sparsify(model, "cett", value):
        assert E.generate(model, tok, prompts, stops, NEW).text == want
    with metrics.sparsify(model, "dense"):
        assert E.generate(model, tok, prompts, stops, NEW).text != want  # the rule did change the answers


@pytest.mark.parametrize("method,value", [("dense", None), ("cett", 0.05), ("topk_layer", 0.3), ("fat", 0.01)])
def test_decoding_steps_do_not_synchronise(tok, llama_with_eos, method, value):
    model = llama_with_eos
    value = [value] * len(model.model.layers) if method == "cett" else value
    with metrics.sparsify(model, method, value), B.count_syncs(model) as syncs:
        E.generate(model, tok, _prompts(10, seed=4), ("\n\n",), 12)
    steps = [k for width, k in syncs if width == 1]
    assert len(steps) >= 11 and steps == [0] * len(steps)
    assert syncs[0][1] >= 1  # the padded prefill selects its real tokens once (one nonzero)


def test_sync_counter_sees_reads_and_boolean_indexing():
    model = tiny_llama(64, hidden_size=16, intermediate_size=32)
    x = torch.arange(6.0)

    def forward(module, args, kwargs):  # host reads inside the forward
        float(x.sum()), x[x > 2], x.nonzero(), x[torch.tensor([0, 1])]

    handle = model.register_forward_pre_hook(forward, with_kwargs=True)
    with B.count_syncs(model) as syncs:
        model(input_ids=torch.zeros(1, 3, dtype=torch.long))
        model(input_ids=torch.zeros(1, 1, dtype=torch.long))
    handle.remove()
    assert syncs == [(3, 3), (1, 3)]  # item, boolean index, nonzero; an integer index is free


def test_check_steps_double_up_to_the_gap():
    assert D.check_steps(32) == [4, 8, 16, 32]
    assert D.check_steps(70) == [4, 8, 16, 32, 48, 64, 70]
    assert D.check_steps(3) == [3] and D.check_steps(4) == [4]


def test_stop_string_split_across_looks_is_found(tok):
    """Only the tokens since the last look (and enough before them) are decoded; a stop string whose characters
    arrive in two looks still ends the row, and the text is cut before it."""
    x, a, b = (tok(c, add_special_tokens=False)["input_ids"] for c in ("x", "a", "b"))
    rows = D._Rows(tok, 2, ("ab",), eos=E.eos_id(tok))
    assert rows.update([0, 1], [x + a, x]) == [0, 1]
    assert rows.update([0, 1], [b + x, a + x]) == [1]  # row 0 now reads "xabx"; row 1 "xax"
    assert rows.update([1], [[E.eos_id(tok)] + b]) == []  # EOS: the tokens after it are not kept
    assert rows.texts() == ["x", "xax"]
