"""Book-wide conventions: table of contents, twins, thin chapters, parameters, scorecard."""

import importlib
import json
import re
import subprocess

import pandas as pd
import pytest
import yaml

from sparsing_lib import book, profiles, style
from sparsing_lib.checks import PROFILES, check_choice, check_profile, check_range
from sparsing_lib.paths import DATA, ROOT, git_state

CHAPTERS = sorted((ROOT / "book").glob("*.md"))
PAPER_ITEMS = [f"Figure {i}" for i in range(1, 17)] + [f"Table {i}" for i in range(1, 7)]


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    parts = toc.get("parts", [{"chapters": toc.get("chapters", [])}])
    return [toc["root"]] + [c["file"] for p in parts for c in p["chapters"]]


def _code_cells(source) -> list[str]:
    return re.findall(r"```\{code-cell\}[^\n]*\n(.*?)```", source.read_text(), re.S)


def test_toc_points_at_existing_chapters_and_lists_every_chapter():
    listed = _toc_files()
    for name in listed:
        assert (ROOT / f"{name}.md").exists(), f"_toc.yml lists {name} but {name}.md is missing"
    assert {f"book/{c.stem}" for c in CHAPTERS} == set(listed), "a chapter is missing from _toc.yml"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.name)
def test_twin_exists_and_has_no_outputs(source):
    twin = source.with_suffix(".ipynb")
    assert twin.exists(), f"{twin.name} missing: run `make notebooks`"
    nb = json.loads(twin.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert not cell.get("outputs"), f"{twin.name} carries outputs"
            assert cell.get("execution_count") is None, f"{twin.name} carries execution counts"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.name)
def test_chapter_is_thin(source):
    """Prose, parameters, one library call per paper item and glue: no definitions, at most 100 code lines."""
    lines = [
        line
        for cell in _code_cells(source)
        for line in cell.splitlines()
        if line.strip() and not line.strip().startswith(("#", ":"))
    ]
    defs = [line for line in lines if re.match(r"\s*(async\s+)?(def|class)\s", line)]
    assert not defs, f"{source.name} defines {defs}: move it into sparsing_lib"
    assert len(lines) <= 100, f"{source.name} has {len(lines)} lines of code (at most 100)"


@pytest.mark.parametrize("source", CHAPTERS, ids=lambda p: p.name)
def test_one_parameters_cell_and_the_colab_cell(source):
    nb = json.loads(source.with_suffix(".ipynb").read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{source.name}: expected one cell tagged 'parameters', found {len(cells)}"
    assert 'profile: str = "replay"' in "".join(cells[0]["source"])
    assert sum(book.REVISION_PLACEHOLDER in "".join(c["source"]) for c in nb["cells"]) == 1, (
        f"{source.name}: the Colab cell (with {book.REVISION_PLACEHOLDER!r}) is missing"
    )
    assert "book.check_params(globals())" in source.read_text(), f"{source.name} does not check its parameters"


def test_check_params_refuses_unknown_names_and_lists_the_valid_ones():
    ns = {"__annotations__": {"profile": str, "p": float}, "profile": "smoke", "p": 0.01, "In": [], "book": book}
    assert book.check_params(dict(ns)) == {"profile": "smoke", "p": 0.01}
    with pytest.raises(ValueError, match=r"unknown parameter 'profle'; this chapter takes: profile, p"):
        book.check_params({**ns, "profle": "smoke"})
    with pytest.raises(ValueError, match="profile='fast' is not valid"):
        book.check_params({**ns, "profile": "fast"})


def test_tidy_hides_the_injected_cell_and_pins_the_revision(tmp_path):
    nb = {
        "cells": [
            {"cell_type": "code", "metadata": {"tags": []}, "source": f"if x:\n    {book.REVISION_PLACEHOLDER}\n"},
            {"cell_type": "code", "metadata": {"tags": ["injected-parameters"]}, "source": 'profile = "smoke"\n'},
        ]
    }
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    book.tidy_executed(path, "abc1234")
    cells = json.loads(path.read_text())["cells"]
    assert "REV = 'abc1234'" in cells[0]["source"] and "main" not in cells[0]["source"]
    assert cells[1]["metadata"]["tags"] == ["injected-parameters", "remove-cell"]


def test_table_shows_missing_values_as_a_dash_and_hides_the_index():
    html = book.table(pd.DataFrame({"a value": [1.5, None]}), caption="Cap", formats="{:.1f}").to_html()
    assert "–" in html and "1.5" in html and "Cap" in html and "nan" not in html.lower()


def test_check_profile_and_check_choice_and_check_range():
    for p in PROFILES:
        assert check_profile(p) == p
    with pytest.raises(ValueError, match="profile='fast' is not valid; choose one of: 'replay', 'smoke', 'full'"):
        check_profile("fast")
    with pytest.raises(ValueError, match="form='cubic'.*'a', 'b'"):
        check_choice("form", "cubic", ["a", "b"])
    assert check_range("frac", 0.7, 0.3, 0.9) == 0.7 and check_range("frac", 1, 0, 2) == 1
    for bad in (0.95, True, "0.5"):
        with pytest.raises(ValueError, match="frac=.* is not valid; use a float in"):
            check_range("frac", bad, 0.3, 0.9)


def test_by_profile_replays_recomputes_and_saves_only_full():
    saved = []
    run = lambda profile: profiles.by_profile(profile, lambda: "old", lambda p: f"new-{p}", saved.append)  # noqa: E731
    assert run("replay") == "old" and run("smoke") == "new-smoke" and saved == []
    assert run("full") == "new-full" and saved == ["new-full"]
    meta = profiles.provenance("make book", seconds=1.234)
    assert meta["command"] == "make book" and meta["seconds"] == 1.2 and meta["git_revision"]


def test_git_state_reads_git_and_flags_a_dirty_tree():
    state = git_state()
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert state["source"] == "git" and state["revision"] == head
    assert isinstance(state["dirty"], bool)


def test_series_style_gives_distinct_colours_and_markers_for_many_series():
    names = [f"run-{i}" for i in range(11)]
    st = style.series_style(names)
    assert len({tuple(v["color"]) for v in st.values()}) == 11
    assert len({v["marker"] for v in st.values()}) == 11


def _scorecard() -> pd.DataFrame:
    return pd.read_csv(DATA / "scorecard.csv", keep_default_na=False)


def test_scorecard_covers_every_paper_item_with_two_statuses():
    card = _scorecard()
    assert list(card["item"]) == PAPER_ITEMS
    statuses = {
        "reproduced",
        "partly reproduced",
        "differs",
        "not yet reproduced",
        "no data released",
        "not applicable",
    }
    assert set(card["from_authors_data"]) <= statuses and set(card["from_our_runs"]) <= statuses
    pages = {name.split("/")[-1] for name in _toc_files()}
    assert set(card["section"]) <= pages, "the scorecard names a chapter that is not in the book"


def test_scorecard_functions_exist():
    card = _scorecard()
    done = {"reproduced", "partly reproduced", "differs"}
    for row in card.itertuples():
        if {row.from_authors_data, row.from_our_runs} & done:
            assert row.function, f"{row.item} is reproduced but names no library function"
    for item, path in zip(*card[["item", "function"]].T.values):
        for dotted in filter(None, path.split(";")):
            module, _, name = dotted.strip().rpartition(".")
            assert hasattr(importlib.import_module(module), name), f"{item}: {dotted} does not exist"


def test_a_typed_in_revision_wins_over_a_stale_git_and_says_so(monkeypatch):
    head = git_state()["revision"]
    monkeypatch.setenv("SPARSING_GIT_REV", "abc1234")
    state = git_state()
    assert state["revision"] == "abc1234" and state["dirty"] is None
    assert state["source"].startswith("SPARSING_GIT_REV (typed in; this machine's git reports " + head[:7])
    monkeypatch.setenv("SPARSING_GIT_REV", head)  # agreeing with git: git's answer, with its dirty flag
    assert git_state()["source"] == "git"
