import pytest

from sparsing_lib.evaluation import scoring as S


def test_normalisation_and_f1_against_hand_counts():
    assert S.normalize_answer("The  Cat, sat!") == "cat sat"
    # pred {cat, sat, down} vs ref {cat, sat, on, mat}: 2 shared, P = 2/3, R = 2/4, F1 = 4/7
    assert S.token_f1("the cat sat down", "cat sat on a mat") == pytest.approx(4 / 7)
    assert S.token_f1("", "") == 1.0 and S.token_f1("x", "") == 0.0
    f1, em = S.f1_em("The Eiffel Tower.", ["eiffel tower", "Paris"])
    assert (f1, em) == (1.0, 1.0)
    f1, em = S.f1_em("in Paris France", ["Paris", "eiffel"])
    assert f1 == pytest.approx(0.5) and em == 0.0  # P = 1/3, R = 1 -> 0.5


def test_last_number_and_number_match():
    assert S.last_number("3 apples and 1,250.50 dollars.") == "1250.50"
    assert S.last_number("-7 degrees") == "-7"
    assert S.last_number("none") is None
    assert S.number_match("so the answer is 72.", ["#### 72"]) == 1.0
    assert S.number_match("answer 72.0", ["72"]) == 1.0
    assert S.number_match("answer 71", ["72"]) == 0.0
    assert S.number_match("no idea", ["72"]) == 0.0


def test_exact_and_dispatch():
    assert S.exact_match("  (A) ", ["(A)"]) == 1.0 and S.exact_match("(B)", ["(A)"]) == 0.0
    assert S.score("f1_em", "cat", ["cat"]) == {"f1": 1.0, "em": 1.0}
    assert S.score("number", "42", ["42"]) == {"acc": 1.0}
    with pytest.raises(ValueError, match="not one of"):
        S.score("bleu", "a", ["a"])
