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
``eval_items.npz``: per-item scores, key ``"<task>|<setting>|<metric>"`` (``item_key``), items in the same order
for every setting of a task, so that differences between settings can be bootstrapped in pairs. Packed into five
arrays, because a sweep commits one such file per run and a zip entry per key cost more than the scores: ``keys``
(the keys, sorted), ``sizes`` (items per key), ``bits`` (``np.packbits`` of the concatenated scores of the keys
whose scores are all 0 or 1: accuracies, pass@1) and ``floats`` (float32, the other keys' scores, e.g. F1), with
``binary`` saying which key is which. ``read`` returns a dict of float32 arrays either way, and still reads the
earlier layout of one array per key.
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


def pack_items(items: dict) -> dict[str, np.ndarray]:
    """The five arrays ``eval_items.npz`` holds for ``items`` (key -> per-item scores); see the module docstring."""
    keys = sorted(items)
    arrays = [np.asarray(items[k], dtype=np.float32).ravel() for k in keys]
    binary = np.array([bool(np.isin(a, (0.0, 1.0)).all()) for a in arrays], dtype=bool)
    ones = [a for a, b in zip(arrays, binary) if b]
    rest = [a for a, b in zip(arrays, binary) if not b]
    return {
        "keys": np.array(keys, dtype=str),
        "sizes": np.array([len(a) for a in arrays], dtype=np.int64),
        "binary": binary,
        "bits": np.packbits(np.concatenate(ones).astype(bool)) if ones else np.zeros(0, np.uint8),
        "floats": np.concatenate(rest) if rest else np.zeros(0, np.float32),
    }


def unpack_items(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``pack_items`` undone: key -> float32 per-item scores. A file of the earlier layout (one array per key)
    is returned as it is, in float32."""
    if "keys" not in arrays:
        return {k: v.astype(np.float32) for k, v in arrays.items()}
    sizes, binary = arrays["sizes"], arrays["binary"].astype(bool)
    bits = np.unpackbits(arrays["bits"], count=int(sizes[binary].sum())).astype(np.float32)
    bit_parts = np.split(bits, np.cumsum(sizes[binary])[:-1]) if binary.any() else []
    float_parts = (
        np.split(arrays["floats"].astype(np.float32), np.cumsum(sizes[~binary])[:-1]) if (~binary).any() else []
    )
    ones, rest = iter(bit_parts), iter(float_parts)
    return {str(k): next(ones) if b else next(rest) for k, b in zip(arrays["keys"], binary)}


def write(folder: Path | str, result: SuiteResult) -> None:
    """Write eval.csv, eval_items.npz and eval.json into ``folder`` (atomically, file by file)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    missing = set(COLUMNS) - set(result.scores.columns)
    if missing:
        raise ValueError(f"scores lack the columns {sorted(missing)} of the eval.csv format")
    write_csv(folder / "eval.csv", result.scores[list(COLUMNS)].to_dict("records"))
    write_npz(folder / "eval_items.npz", **pack_items(result.items))
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
    items = unpack_items(load_arrays(folder, "eval_items")) if (folder / "eval_items.npz").exists() else {}
    meta = json.loads((folder / "eval.json").read_text()) if (folder / "eval.json").exists() else {}
    return SuiteResult(scores, items, meta)
