"""Our scorer against lm-evaluation-harness (pinned in requirements-eval.txt) on the same requests.

A tiny random Llama with our committed tokenizer; PIQA-, ARC-, COPA- and WinoGrande-like (partial scoring)
multiple-choice items in those tasks' lm-eval prompt formats, and LAMBADA-like cloze items (two with the
model's own greedy continuation as target, so that ``is_greedy`` is true for some). One context is longer
than the model's 64 positions, so left truncation is compared too.
"""

import numpy as np
import pytest
import torch

lm_eval = pytest.importorskip("lm_eval")
from lm_eval.api.instance import Instance  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from transformers import LlamaForCausalLM, PreTrainedTokenizerFast  # noqa: E402

from sparsing_lib import paths  # noqa: E402
from sparsing_lib.evaluation import engine as E  # noqa: E402
from sparsing_lib.evaluation.items import Choice, Cloze  # noqa: E402
from sparsing_lib.models import tiny_llama  # noqa: E402

CONTEXT = 64

PIQA = [
    Choice(
        "p0",
        "Question: How do I dry wet shoes?\nAnswer:",
        (" Stuff them with newspaper.", " Put them in an oven at 500 degrees."),
        0,
    ),
    Choice(
        "p1",
        "Question: To keep bread fresh longer,\nAnswer:",
        (" store it in a sealed bag.", " leave it in the sun."),
        0,
    ),
    Choice(
        "p2",
        "Question: Remove a stripped screw\nAnswer:",
        (" press a rubber band between driver and screw and turn.", " hit it with a spoon."),
        0,
    ),
]
ARC = [
    Choice(
        "a0",
        "Question: Which gas do plants absorb from the air?\nAnswer:",
        (" oxygen", " carbon dioxide", " nitrogen", " helium"),
        1,
    ),
    Choice(
        "a1",
        "Question: What is the main source of energy for the water cycle?\nAnswer:",
        (" the Sun", " the Moon", " wind", " soil"),
        0,
    ),
    Choice(
        "a2",
        "Question: "
        + "A student measures the length of a shadow every hour. " * 6
        + "What does the change show?\nAnswer:",
        (" Earth rotates", " the Sun grows"),
        0,
    ),
]
COPA = [
    Choice(
        "c0", "The man broke his toe because", (" he dropped a hammer on his foot.", " he got a hole in his sock."), 0
    ),
    Choice(
        "c1",
        "I tipped the bottle therefore",
        (" the liquid in the bottle froze.", " the liquid in the bottle poured out."),
        1,
    ),
    Choice("c2", "The café was crowded because", (" a festival was on.", " it had closed for good."), 0),
]
# WinoGrande's partial scoring: each option completes the prefix; the shared rest of the sentence is scored.
WINO = [
    Choice(
        "w0",
        "",
        (" would not fit into the suitcase because it was too big.",) * 2,
        0,
        contexts=("The trophy", "The suitcase"),
    ),
    Choice(
        "w1",
        "",
        (" was grateful for the help.",) * 2,
        1,
        contexts=("Anna thanked Maria because Anna", "Anna thanked Maria because Maria"),
    ),
]
LAMBADA_TEXTS = [
    "She opened the door and saw her old friend standing in the rain. She smiled and said hello to",
    "The ship sailed for weeks until the crew finally saw land on the horizon, and everyone cheered for the",
    "He put the key in the lock, turned it slowly, and pushed open the heavy wooden",
    "After hours of searching the garden, the children finally found the lost",
]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tok = PreTrainedTokenizerFast(tokenizer_file=str(paths.data_file("tokenizer.json")), eos_token="<|endoftext|>")
    folder = tmp_path_factory.mktemp("tiny")
    tiny_llama(len(tok), max_position_embeddings=CONTEXT, tie_word_embeddings=False).save_pretrained(
        folder
    )  # round trip: what lm-eval would load from disk
    tok.save_pretrained(folder)
    model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).eval()
    tok = PreTrainedTokenizerFast.from_pretrained(folder)
    lm = HFLM(pretrained=model, tokenizer=tok, batch_size=4, max_length=CONTEXT, device="cpu")
    return model, tok, lm


def _harness(lm, pairs):
    reqs = [Instance("loglikelihood", {}, pair, i) for i, pair in enumerate(pairs)]
    out = lm.loglikelihood(reqs, disable_tqdm=True)
    return np.array([o[0] for o in out]), np.array([o[1] for o in out])


@pytest.mark.parametrize("items", [PIQA, ARC, COPA, WINO], ids=["piqa", "arc", "copa", "winogrande"])
def test_multiple_choice_matches_lm_eval(setup, items):
    model, tok, lm = setup
    scores, ll = E.choice_scores(model, tok, items, batch_size=3)
    want, want_greedy = _harness(lm, [pair for it in items for pair in it.pairs()])
    np.testing.assert_allclose(ll.logprob, want, rtol=1e-4)
    np.testing.assert_array_equal(ll.is_greedy, want_greedy)
    k, acc, norm = 0, [], []
    for it in items:  # lm-eval's multiple_choice process_results: argmax of lls, and of lls / len(choice)
        lls = want[k : k + len(it.continuations)]
        acc.append(float(np.argmax(lls) == it.gold))
        norm.append(float(np.argmax(lls / np.array([len(c) for c in it.continuations])) == it.gold))
        k += len(it.continuations)
    np.testing.assert_array_equal(scores["acc"], acc)
    np.testing.assert_array_equal(scores["acc_norm"], norm)


def test_truncation_is_counted_where_lm_eval_truncates(setup):
    model, tok, _ = setup
    _, ll = E.choice_scores(model, tok, ARC, batch_size=3)
    assert ll.truncated.tolist() == [False] * 8 + [True, True]


def test_lambada_cloze_matches_lm_eval(setup):
    model, tok, lm = setup
    greedy = E.generate(model, tok, LAMBADA_TEXTS[:2], (), 2).text  # the model's own continuation
    items = [Cloze(f"l{i}", t, " " + t.split()[-1]) for i, t in enumerate(LAMBADA_TEXTS[2:])]
    items = [Cloze(f"g{i}", t, g) for i, (t, g) in enumerate(zip(LAMBADA_TEXTS, greedy))] + [
        Cloze(it.id, it.context.rsplit(" ", 1)[0], it.target) for it in items
    ]
    scores, ll = E.cloze_scores(model, tok, items, batch_size=2)
    want, want_greedy = _harness(lm, [(it.context, it.target) for it in items])
    np.testing.assert_allclose(ll.logprob, want, rtol=1e-4)
    np.testing.assert_array_equal(ll.is_greedy, want_greedy)
    assert want_greedy.any() and scores["acc"].tolist() == want_greedy.astype(float).tolist()
    _, empty = E.choice_scores(model, tok, [Choice("b", "", ("The cat sleeps.", "The cat sleep."), 0)])
    np.testing.assert_allclose(
        empty.logprob, _harness(lm, [("", "The cat sleeps."), ("", "The cat sleep.")])[0], rtol=1e-4
    )
