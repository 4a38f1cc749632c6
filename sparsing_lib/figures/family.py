"""The variants of the mini family that a chapter is about, as a table a reader can use.

The width-depth and mixture-of-experts chapters show which models were trained for them before their
analysis exists, so that the plan is concrete: shapes, parameter counts and whether a run is committed."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..checks import check_choice
from ..models import config_table
from ..paths import DATA
from ..runs import load_runs

KINDS = ("scale", "width_depth", "moe")
_COLUMNS = {
    "name": "model",
    "d_model": "width d",
    "n_layers": "layers L",
    "width_depth": "width/depth d/L",
    "experts": "experts",
    "top_k": "routed per token",
    "non_embedding_params": "non-embedding parameters (M)",
}


def variants(kind: str, runs_dir: Path | None = None) -> pd.DataFrame:
    """The mini models of ``kind`` with their shapes, and the committed runs of each (status, tokens)."""
    check_choice("kind", kind, KINDS)
    table = config_table()
    table = table[table["kind"] == kind]
    table = table[[c for c in _COLUMNS if c in table and (kind == "moe" or c not in ("experts", "top_k"))]]
    table["non_embedding_params"] = table["non_embedding_params"] / 1e6
    committed: dict[str, list[str]] = {}
    for r in load_runs(runs_dir or DATA / "runs").values():
        status, tokens = r["env"].get("status", "not finished"), r["metrics"]["tokens"].iloc[-1] / 1e6
        committed.setdefault(r["config"]["model"]["name"], []).append(
            f"{r['config']['run']} ({status}, {tokens:.0f}M tokens)"
        )
    table["committed runs"] = ["; ".join(committed.get(n, [])) or "none" for n in table["name"]]
    return table.rename(columns=_COLUMNS).reset_index(drop=True)
