"""The run-folder format: one owner that names, writes and reads a training run's folder.

A run ``<model>-<activation>`` lives in ``<runs>/<run>/``. Every write is atomic (temporary file + rename), so
an interrupted run never leaves a half-written file behind. The trainer and the probes write through this
module and the chapters and benchmarks read through it, so the format changes in one place: here.

Format 2 (``"format": 2`` in config.json; ``FORMAT``), file by file:

* ``config.json``: the recipe (model, train, probe settings, corpus identity, seed, ...) and ``format``.
* ``metrics.csv``: losses along training. ``env.json``: hardware, revision, status (written when the run stops).
* after the end-of-run probes (``probes``): ``sparsity.csv`` (one row per probed checkpoint: CETT-PPL-1%
  ``activation_ratio``, ``zero_ratio``, ``layer_i`` / ``zero_layer_i``, ``ppl``, ``dense_ppl``, ``loss``),
  ``pareto.csv`` (the last checkpoints' Top-k / FAT-eps / CETT sweeps) and ``cett.json``.
* ``neuron_frequency.npz`` (dense runs): ``steps`` int64 [k], ``domains`` str [d], ``frequency`` float16
  [k, d, layer, neuron], the share of a domain's probe tokens on which each FFN neuron is active under the
  CETT-PPL-1% thresholds, at k = ``KEPT_CHECKPOINTS`` checkpoints (the first, middle and last probed).
* ``vocab_ratios.npz`` (dense runs): ``steps`` int64 [k] (as above), ``mean`` float16 [k, vocab], the
  CETT-PPL-1% activation ratio (active share of FFN neurons, averaged over layers) of every vocabulary id
  averaged over all its occurrences as input token in the probe tokens (NaN where it never occurs),
  ``count`` int32 [vocab] its occurrences (the same tokens at every checkpoint), and ``sources`` str [s] /
  ``source_tokens`` int64 [s]: where the probe tokens came from (an equal share of each validation domain,
  then the start of the training split where the validation split is too small: ``probes.vocab_probe_windows``)
  and how many from each.
* ``eval.csv`` / ``eval_items.npz`` / ``eval.json``: the downstream evaluation (``evaluation.results``).

An MoE run has no .npz files and no cett.json. Format 1 (no ``format`` key) kept all probed checkpoints'
frequencies and a per-position ``token_ratios.npz`` instead of ``vocab_ratios.npz``;
``python -m sparsing_lib.upgrade_runs`` converts such folders.
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
FORMAT = 2  # the run-folder format this module writes and the probe readers need; see the docstring
KEPT_CHECKPOINTS = 3  # checkpoints whose .npz probes a run keeps: the first, middle and last probed
PROBE_ARRAYS = ("neuron_frequency", "vocab_ratios")  # the .npz files whose layout the format fixes


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


def run_format(folder: Path) -> int:
    """The format of a run folder: its config.json's ``format`` key, 1 where it has none (the first format)."""
    return int(json.loads((Path(folder) / "config.json").read_text()).get("format", 1))


def load_arrays(folder: Path, name: str) -> dict[str, np.ndarray]:
    """The arrays of a run folder's ``<name>.npz`` (e.g. ``neuron_frequency``, ``vocab_ratios``), read into
    memory so the file is closed at once; kept out of ``load_run`` because only the chapters on neuron
    specialisation read them. A probe file of a folder older than ``FORMAT`` is refused with one message:
    its arrays have another layout, and reading them as the new one would be silently wrong."""
    folder = Path(folder)
    if name in PROBE_ARRAYS and (folder / "config.json").exists() and (old := run_format(folder)) < FORMAT:
        raise ValueError(
            f"{folder} is a run folder of format {old}; {name}.npz needs format {FORMAT} "
            f"(see sparsing_lib.runs); convert it with: python -m sparsing_lib.upgrade_runs {folder.parent}"
        )
    path = folder / f"{name}.npz"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist (an MoE run or an unprobed run has no .npz files)")
    with np.load(path, allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def kept_checkpoints(n: int, k: int = KEPT_CHECKPOINTS) -> list[int]:
    """Indices of the ``k`` of ``n`` probed checkpoints whose .npz probes a run keeps: evenly spaced, the
    first and the last always among them (all ``n`` when ``n <= k``)."""
    if n < 1 or k < 1:
        raise ValueError(f"need at least one checkpoint and one kept, got n={n}, k={k}")
    return sorted({round(x) for x in np.linspace(0, n - 1, min(n, k))})


def load_runs(folder: Path) -> dict[str, dict]:
    """Every run folder under ``folder`` that has begun training (has metrics.csv), by run name, in name order."""
    return {d.name: load_run(d) for d in sorted(Path(folder).iterdir()) if (d / "metrics.csv").exists()}


def write_vocab_ratios(folder: Path, steps, means: list, count, sources: list[str], source_tokens: list[int]) -> None:
    """Write ``vocab_ratios.npz`` (format 2): per-checkpoint float16 means per vocabulary id, the int32 count of
    occurrences, and which token sources (with how many tokens each) the averages came from."""
    write_npz(
        Path(folder) / "vocab_ratios.npz",
        steps=np.asarray(steps, dtype=np.int64),
        mean=np.stack(means).astype(np.float16),
        count=np.asarray(count).astype(np.int32),
        sources=np.array(sources),
        source_tokens=np.array(source_tokens, dtype=np.int64),
    )
