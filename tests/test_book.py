"""Book-wide conventions: twins, parameters cells, table of contents, scorecard."""

import json

import pandas as pd
import pytest
import yaml

from sparsing_lib.checks import PROFILES, check_choice, check_profile
from sparsing_lib.paths import DATA, ROOT

CHAPTERS = sorted((ROOT / "book").glob("*.md"))


def _toc_files() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [toc["root"]] + [c["file"] for c in toc.get("chapters", [])]


def test_toc_points_at_existing_chapters():
    for name in _toc_files():
        assert (ROOT / f"{name}.md").exists(), f"_toc.yml lists {name} but {name}.md is missing"


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
def test_one_parameters_cell_with_replay_default(source):
    nb = json.loads(source.with_suffix(".ipynb").read_text())
    cells = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"{source.name}: expected one cell tagged 'parameters', found {len(cells)}"
    src = "".join(cells[0]["source"])
    assert 'profile: str = "replay"' in src


def test_check_profile_accepts_known_and_rejects_unknown():
    for p in PROFILES:
        assert check_profile(p) == p
    with pytest.raises(ValueError, match="profile='fast' is not valid; choose one of: 'replay', 'smoke', 'full'"):
        check_profile("fast")


def test_check_choice_message_lists_values():
    with pytest.raises(ValueError, match="form='cubic'.*'a', 'b'"):
        check_choice("form", "cubic", ["a", "b"])


def test_scorecard_rows_are_well_formed():
    card = pd.read_csv(DATA / "scorecard.csv", keep_default_na=False)
    assert list(card.columns) == ["item", "kind", "chapter", "status", "verdict"]
    assert card["item"].is_unique
    assert set(card["status"]) <= {"reproduced", "partly reproduced", "differs", "planned", "not planned"}
    chapters = {name.split("/")[-1] for name in _toc_files()}
    for ch in card["chapter"]:
        assert ch == "" or ch in chapters, f"scorecard names unknown chapter {ch!r}"
