"""Shared fixtures: where the authors' released curves are (never committed to this repository)."""

import os
from pathlib import Path

import pytest

from sparsing_lib.paths import ROOT


@pytest.fixture(scope="session")
def released_dir() -> Path:
    """$SPARSINGLAW_DATA, else ../shared/sparsinglaw_data beside the checkout; skip when neither exists."""
    path = Path(os.environ.get("SPARSINGLAW_DATA") or ROOT.parent / "shared" / "sparsinglaw_data")
    if not path.is_dir():
        pytest.skip(
            f"released curves not found at {path}: set SPARSINGLAW_DATA to a copy of "
            "Raincleared-Song/SparsingLawData@1cab443/data"
        )
    return path


@pytest.fixture(scope="session")
def curves(released_dir):
    from sparsing_lib.paper import released_curves

    return released_curves(released_dir)
