"""The evaluation-results format: one owner for ``eval.csv`` and ``eval_items.npz``.

The suite (``evaluation.suite``) writes them into a run folder (or any folder); the downstream chapter reads
them through this module, so the format changes in one place.

``eval.csv``: one row per (task, setting, metric), columns ``COLUMNS``:
    task, group       the benchmark and its group (commonsense | reading | complex | tiny)
    setting           "dense", "cett-ppl-1%", "cett-ppl-5%", "cett-ppl-10%", or a sweep point such as
                      "topk_token=0.2", "fat=0.05", "cett=0.1", "zero"
    method, value     the sparsification rule behind the setting (metrics.METHODS or "dense") and its
                      parameter (NaN where none)
    metric, score     e.g. acc 0.4321 (a fraction, not a percentage)
    interval          the 95 % interval of the score as JSON "[low, high]" (Wilson for 0/1 metrics,
                      percentile bootstrap over items otherwise)
    items             items scored; ``truncated``: prompts cut from the left to fit the context
    activation_ratio  mean fraction of active FFN neurons over the tokens the task ran (NaN if not measured)
    chance, shots     the first metric's random-guess level, and the number of in-context examples
``eval_items.npz``: per-item scores, key ``"<task>|<setting>|<metric>"``, items in the same order for every
setting of a task, so that differences between settings can be bootstrapped in pairs. Stored as booleans where
every score is 0 or 1 (accuracies, pass@1: a tenth of the float32 file, which matters for the size of a sweep's
run folders) and float32 otherwise (F1); ``read`` returns float32 either way.
``eval.json`` (optional): provenance and the thresholds each setting used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..runs import load_arrays, write_csv, write_json, write_npz

COLUMNS = (
    "task",
    "group",
    "setting",
    "method",
    "value",
    "metric",
    "score",
    "interval",
    "items",
    "truncated",
    "activation_ratio",
    "chance",
    "shots",
)


@dataclass
class SuiteResult:
    """Scores (one row per task, setting, metric), per-item scores by ``item_key``, and provenance."""

    scores: pd.DataFrame
    items: dict[str, np.ndarray] = field(repr=False)
    meta: dict = field(default_factory=dict)


def item_key(task: str, setting: str, metric: str) -> str:
    """The ``eval_items.npz`` key of one task's per-item scores under one setting and metric."""
    return f"{task}|{setting}|{metric}"


def interval(text: str) -> tuple[float, float]:
    """Parse an ``interval`` cell back into (low, high)."""
    low, high = json.loads(text)
    return float(low), float(high)


def _compact(scores) -> np.ndarray:
    """Per-item scores as booleans when all are 0 or 1 (exactly representable), else float32."""
    a = np.asarray(scores, dtype=np.float32)
    return a.astype(bool) if np.isin(a, (0.0, 1.0)).all() else a


def write(folder: Path | str, result: SuiteResult) -> None:
    """Write eval.csv, eval_items.npz and eval.json into ``folder`` (atomically, file by file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    missing = set(COLUMNS) - set(result.scores.columns)
    if missing:
        raise ValueError(f"scores lack the columns {sorted(missing)} of the eval.csv format")
    write_csv(folder / "eval.csv", result.scores[list(COLUMNS)].to_dict("records"))
    write_npz(folder / "eval_items.npz", **{k: _compact(v) for k, v in result.items.items()})
    write_json(folder / "eval.json", result.meta)


def read(folder: Path | str) -> SuiteResult:
    """Read what ``write`` wrote; a folder without eval.csv raises FileNotFoundError naming it."""
    folder = Path(folder)
    path = folder / "eval.csv"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: this folder holds no downstream evaluation")
    scores = pd.read_csv(path)
    missing = set(COLUMNS) - set(scores.columns)
    if missing:
        raise ValueError(f"{path} lacks the columns {sorted(missing)}: written by an older format")
    items = load_arrays(folder, "eval_items") if (folder / "eval_items.npz").exists() else {}
    items = {k: v.astype(np.float32) for k, v in items.items()}
    meta = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").exists() else {}
    return SuiteResult(scores, items, meta)
