"""The claims table is generated from the chapters' own verdicts, and the committed copy is current."""

import pandas as pd

from sparsing_lib.figures import claims
from sparsing_lib.paths import DATA


def test_combine_keeps_agreement_and_calls_disagreement_partial():
    ours = {"verdict": "holds", "basis": "our runs", "note": "a"}
    theirs = {"verdict": "does not hold", "basis": "authors' data", "note": "b"}
    untested = {"verdict": "untested", "basis": "our runs", "note": "c"}
    assert claims._combine([ours]) == ("holds", "our runs", "a")
    assert claims._combine([ours, theirs]) == ("partly holds", "both", "our runs: a; authors' data: b")
    verdict, basis, note = claims._combine([theirs, untested])  # an untested judge neither votes nor hides
    assert (verdict, basis) == ("does not hold", "authors' data") and note.endswith("our runs: c")
    assert claims._combine([untested]) == ("untested", "our runs", "c")


def test_every_claim_is_listed_once_and_links_to_a_chapter():
    ids = [c.id for c in claims.CLAIMS]
    assert ids == sorted(set(ids))
    assert all(c.section and c.claim for c in claims.CLAIMS)


def test_committed_claims_table_is_what_the_chapters_compute(monkeypatch, released_dir):
    monkeypatch.setenv("SPARSINGLAW_DATA", str(released_dir))
    fresh = claims.judge("replay")
    committed = pd.read_csv(DATA / "claims.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(
        fresh.astype(str), committed.astype(str), obj="data/claims.csv (run python -m sparsing_lib.figures.claims)"
    )
