import numpy as np
import pytest
import torch
from tokenizers import Tokenizer, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from sparsing_lib import metrics
from sparsing_lib.corpus import load_tokenizer
from sparsing_lib.evaluation import engine as E
from sparsing_lib.evaluation.decoding import cut_at_stop
from sparsing_lib.evaluation.items import Choice
from sparsing_lib.models import tiny_llama

PAIRS = [
    ("The cat sat on the", " mat"),
    ("Question: what is it?\nAnswer:", " a long answer of several words"),
    ("", "Hello world"),
    ("x", " y"),
    ("Trailing space ", "moves"),
]


@pytest.fixture(scope="module")
def setup():
    tok = load_tokenizer()
    return tiny_llama(len(tok), hidden_size=32, intermediate_size=64, max_position_embeddings=32), tok


def _reference(model, ctx, cont):
    """Unpadded float64 log-likelihood of cont after ctx, and whether it is the greedy continuation."""
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        logp = model(input_ids=ids).logits[0, len(ctx) - 1 : -1].double().log_softmax(-1)
    tok = torch.tensor(cont)
    return logp[torch.arange(len(cont)), tok].sum().item(), bool((logp.argmax(-1) == tok).all())


def test_batched_loglikelihood_equals_unpadded_reference(setup):
    model, tok = setup
    got = E.loglikelihood(model, tok, PAIRS, batch_size=3)
    for k, (ctx, cont) in enumerate(E.encode_pairs(tok, PAIRS)):
        lp, greedy = _reference(model, ctx, cont)
        assert got.logprob[k] == pytest.approx(lp, rel=1e-4)
        assert got.is_greedy[k] == greedy and got.n_tokens[k] == len(cont)
    again = E.loglikelihood(model, tok, PAIRS, batch_size=64, max_tokens=40)  # other batches, same numbers
    np.testing.assert_allclose(again.logprob, got.logprob, rtol=1e-5)


def test_encoding_follows_lm_eval(setup):
    _, tok = setup
    enc = E.encode_pairs(tok, PAIRS)
    assert enc[2][0] == [tok.bos_token_id]  # empty context: BOS (our EOT) first
    assert tok.decode(enc[4][1]) == " moves"  # the context's trailing space joins the continuation
    ctx, cont = enc[0]
    assert ctx + cont == tok("The cat sat on the mat")["input_ids"]


def test_long_sequences_are_cut_from_the_left_and_counted(setup):
    model, tok = setup
    long = ("word " * 40).strip()
    got = E.loglikelihood(model, tok, [(long, " end"), ("short", " end")])
    assert got.truncated.tolist() == [True, False]
    ctx, cont = E.encode_pairs(tok, [(long, " end")])[0]
    lp, _ = _reference(model, (ctx + cont)[-33 : -len(cont)], cont)  # 32 positions predict 32 tokens
    assert got.logprob[0] == pytest.approx(lp, rel=1e-4)


def test_choice_scores_against_hand_numbers(setup, monkeypatch):
    model, tok = setup
    lls = np.array([-4.0, -6.0, -9.0, -10.0])  # item 0: options 3 and 9 chars; item 1: 3 and 12 chars
    monkeypatch.setattr(E, "loglikelihood", lambda *a, **k: E.LogLikelihoods(lls, lls > 0, lls, lls > 0))
    items = [Choice("a", "q", (" ab", " abcdefgh"), 1), Choice("b", "q", (" ab", " abcdefghijk"), 0)]
    scores, _ = E.choice_scores(model, tok, items)
    # acc: argmax -4 vs -6 -> 0 (wrong), -9 vs -10 -> 0 (right); per char: -4/3 < -6/9 -> 1, -9/3 < -10/12 -> 1
    assert scores["acc"].tolist() == [0.0, 1.0] and scores["acc_norm"].tolist() == [1.0, 0.0]


def test_generation_batched_equals_single_and_stops(setup):
    model, tok = setup
    prompts = ["Once upon a time", "The", "A much longer prompt with many words in it"]
    batch = E.generate(model, tok, prompts, (), 6)
    for p, text in zip(prompts, batch.text):
        assert E.generate(model, tok, [p], (), 6).text == [text]
    cut = E.generate(model, tok, prompts, (batch.text[0][2:5],), 6).text[0]
    assert cut == batch.text[0][:2]
    assert E.generate(model, tok, ["word " * 30, "hi"], (), 6).truncated.tolist() == [True, False]
    assert cut_at_stop("a\nb\n\nc", ("\n\n", "b")) == "a\n"


def test_sparsify_sees_only_real_tokens(setup):
    model, tok = setup
    with metrics.sparsify(model, "topk_token", 0.5) as stats:
        E.loglikelihood(model, tok, PAIRS, batch_size=8)
    seqs = [(c + k)[-33:][:-1] for c, k in E.encode_pairs(tok, PAIRS)]
    assert stats.tokens[0] == sum(len(s) for s in seqs)
    assert stats.activation_ratio == pytest.approx(0.5, abs=0.02)


def test_tokenizer_without_end_of_text_is_refused(setup):
    model, _ = setup
    bare = Tokenizer(models.WordLevel({"a": 0, "b": 1, "[UNK]": 2}, unk_token="[UNK]"))
    bare.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=bare, unk_token="[UNK]")
    with pytest.raises(ValueError, match="no end-of-text token"):
        E.loglikelihood(model, tok, [("a", " b")])


def test_shared_inputs_run_once_and_score_alike(setup):
    """MMLU-style: one prompt, four one-token answers -> one row of the forward pass, four scores."""
    model, tok = setup
    pairs = [("Answer:", f" {x}") for x in "ABCD"] + [("Other prompt", " A")]
    with metrics.sparsify(model, "dense") as stats:
        got = E.loglikelihood(model, tok, pairs)
    assert stats.tokens[0] == len(tok("Answer:")["input_ids"]) + len(tok("Other prompt")["input_ids"])
    for k, (ctx, cont) in enumerate(E.encode_pairs(tok, pairs)):
        assert got.logprob[k] == pytest.approx(_reference(model, ctx, cont)[0], rel=1e-4)
