"""The run-folder format: one owner that names, writes and reads a training run's folder.

A run ``<model>-<activation>`` lives in ``<runs>/<run>/``: config.json (recipe), metrics.csv (losses along
training), env.json (hardware, revision, status; written when the run stops), and after the end-of-run
probes sparsity.csv, pareto.csv, cett.json, neuron_frequency.npz and token_ratios.npz (an MoE run has no
.npz files and no cett.json). The trainer and the probes write through this module and the chapters and
benchmarks read through it, so the format changes in one place. Every write is atomic (temporary file +
rename), so an interrupted run never leaves a half-written file behind.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from .models import ACTIVATIONS, get_spec

FINISHED = ("done", "diverged")


def load_run(folder: Path) -> dict:
    """A run folder's files: config, metrics and env (empty until the run ends), plus sparsity, pareto and
    cett once its checkpoints are probed."""
    folder = Path(folder)
    out = dict(
        config=json.loads((folder / "config.json").read_text()),
        metrics=pd.read_csv(folder / "metrics.csv"),
        env=json.loads((folder / "env.json").read_text()) if (folder / "env.json").exists() else {},
    )
    for name in ("sparsity", "pareto"):
        if (folder / f"{name}.csv").exists():
            out[name] = pd.read_csv(folder / f"{name}.csv")
    if (folder / "cett.json").exists():
        out["cett"] = json.loads((folder / "cett.json").read_text())
    return out


def parse_run(run: str) -> tuple[str, str]:
    """Split ``<model>-<activation>`` into its model name and activation."""
    model, _, act = run.rpartition("-")
    if act not in ACTIVATIONS:
        raise ValueError(f"run {run!r} does not end in one of: {', '.join(ACTIVATIONS)}")
    get_spec(model)
    return model, act


def _atomic_write(path: Path, text: str | bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(text.encode() if isinstance(text, str) else text)
    os.replace(tmp, path)


def write_json(path: Path, obj: dict) -> None:
    """Write ``obj`` as indented JSON atomically (temporary file + rename)."""
    _atomic_write(Path(path), json.dumps(obj, indent=1, default=str) + "\n")


def write_npz(path: Path, **arrays: np.ndarray) -> None:
    """Write named arrays as a compressed .npz atomically."""
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    _atomic_write(path, buf.getvalue())


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write a list of dict rows as CSV atomically."""
    buf = io.StringIO()
    pd.DataFrame(rows).to_csv(buf, index=False)
    _atomic_write(Path(path), buf.getvalue())


def load_arrays(folder: Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of a run folder's ``<name>.npz`` (e.g. ``neuron_frequency``, ``token_ratios``), read into
    memory so the file is closed at once; kept out of ``load_run`` because they are large and only the
    chapters on neuron specialisation read them."""
    path = Path(folder) / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (an MoE run or an unprobed run has no .npz files)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def load_runs(folder: Path) -> dict[str, dict]:
    """Every run folder under ``folder`` that has begun training (has metrics.csv), by run name, in name order."""
    return {d.name: load_run(d) for d in sorted(Path(folder).iterdir()) if (d / "metrics.csv").exists()}
