"""The run-folder format: one owner that names, writes and reads a training run's folder.

A run lives in ``<runs>/<run>/``, named by the grammar ``<model>-<activation>[-s<seed>][-f<k>]`` (``GRAMMAR``):
``-s<seed>`` trains from seed ``seed`` >= 1 (seed 0, the default, has no suffix) and ``-f<k>`` on the first
1/k of the training split, k >= 2, for as many tokens as the run without it (so more passes over less data);
e.g. ``mini-160x3-relu-s1-f8``. A run with either suffix is a variant (``run_variant``): its folder name keeps
it apart from the seed-0, whole-split run of the same model and activation, and ``load_runs`` leaves variants
out unless asked, so a chapter sees one run per model and activation; it also leaves out runs that break the
stability rule (``stability``), which the training-dynamics chapter reports. Every write is atomic (temporary
file + rename), so an interrupted run never leaves a half-written file behind. The trainer and the probes write
through this module and the chapters and benchmarks read through it, so the format changes in one place: here.

Format 2 (``"format": 2`` in config.json; ``FORMAT``), file by file:

* ``config.json``: the recipe (model, train, probe settings, corpus identity, ...), ``format``, and the
  ``seed`` and ``train_fraction`` (1/k) the run's name gives.
* ``metrics.csv``: losses along training. ``env.json``: hardware, revision, status (written when the run stops).
* after the end-of-run probes (``probes``): ``sparsity.csv`` (one row per probed checkpoint: CETT-PPL-1%
  ``activation_ratio``, ``zero_ratio``, ``layer_i`` / ``zero_layer_i``, ``ppl``, ``dense_ppl``, ``loss``; a run
  with a decay phase has one row after it, its last step, beyond ``TrainConfig.stable_end``),
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
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from .models import ACTIVATIONS, get_spec
from .stability import run_stability

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


GRAMMAR = "<model>-<activation>[-s<seed>][-f<k>]"  # run names; see the module docstring
# seed and k are written without leading zeros and only where they differ from the default (0 and 1), so that
# every run has exactly one name
_NAME = re.compile(
    rf"(?P<model>.+)-(?P<act>{'|'.join(ACTIVATIONS)})(?:-s(?P<seed>[1-9][0-9]*))?(?:-f(?P<k>[1-9][0-9]+|[2-9]))?"
)


@dataclass(frozen=True)
class Variant:
    """What a run's name says beyond its model and activation: the seed of its weights and data order, and
    ``split`` = k where it trains on the first 1/k of the training split."""

    seed: int = 0
    split: int = 1

    @property
    def fraction(self) -> float:
        """The share of the training split the run trains on (config.json's ``train_fraction``)."""
        return 1 / self.split

    @property
    def is_variant(self) -> bool:
        """Whether the run differs from the seed-0, whole-split run of its model and activation."""
        return self.seed != 0 or self.split != 1


def _variant(m: re.Match) -> Variant:
    return Variant(int(m["seed"] or 0), int(m["k"] or 1))


def _match(run: str) -> re.Match:
    m = _NAME.fullmatch(run)
    if m is None:
        raise ValueError(
            f"run {run!r} does not follow the run-name grammar {GRAMMAR}: activation one of "
            f"{', '.join(ACTIVATIONS)}, seed an integer >= 1 (seed 0 has no suffix), k an integer >= 2, "
            "suffixes in that order, no leading zeros"
        )
    get_spec(m["model"])
    return m


def parse_run(run: str) -> tuple[str, str]:
    """Model name and activation of a run named by ``GRAMMAR`` (its variant suffixes checked, not returned)."""
    m = _match(run)
    return m["model"], m["act"]


def run_variant(run: str) -> Variant:
    """The seed and training-split share a run's name gives (``GRAMMAR``); ``Variant()`` for a plain run."""
    return _variant(_match(run))


def run_name(model: str, activation: str, variant: Variant = Variant()) -> str:
    """The one name ``GRAMMAR`` gives a run: the inverse of ``parse_run`` and ``run_variant``."""
    name = f"{model}-{activation}" + (f"-s{variant.seed}" if variant.seed else "")
    name += f"-f{variant.split}" if variant.split != 1 else ""
    parse_run(name)  # a seed or split the grammar cannot write is refused here, with the grammar's message
    return name


def plain_name(run: str) -> str | None:
    """The seed-0, whole-split name of ``run`` (None for a pilot or a name outside ``GRAMMAR``): the run a
    variant is another training of."""
    try:
        return run_name(*parse_run(run))
    except ValueError:
        return None


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


def load_runs(folder: Path, variants: bool = False, unstable: bool = False) -> dict[str, dict]:
    """Every run folder under ``folder`` that has begun training (has metrics.csv), by run name, in name order.
    Variants (another seed or a share of the split, ``run_variant``) only with ``variants=True``: the chapters
    compare one run per model and activation, and a variant beside its plain twin would count twice. Runs that
    break the stability rule only with ``unstable=True`` (see ``run_folders``). A folder whose name is not a run
    name (a pilot, say) is loaded as before."""
    every = {d.name: load_run(d) for d in run_folders(folder, variants=True, unstable=True)}  # each read once
    return select_runs(every, variants, unstable)


def select_runs(runs: dict[str, dict], variants: bool = False, unstable: bool = False) -> dict[str, dict]:
    """Of runs already loaded (by name), those a chapter sees: the choice ``load_runs`` and ``run_folders`` make,
    for a caller that holds every run (the training-dynamics chapter lists them all) without reading them again."""
    return {
        n: r
        for n, r in runs.items()
        if (variants or not _is_variant(n)) and (unstable or not run_stability(r).excluded)
    }


def run_folders(
    folder: Path, variants: bool = False, marker: str = "metrics.csv", unstable: bool = False
) -> list[Path]:
    """The folders under ``folder`` that hold ``marker``, in name order, variants only with ``variants=True`` (as
    ``load_runs``): one place decides which runs a chapter sees. A missing ``folder`` holds none.

    A run that breaks the stability rule (``stability.run_stability``: its validation loss rose more than
    ``STABLE_RISE`` above its running minimum after its own warm-up, or it diverged) is left out unless
    ``unstable=True``: a run that degraded would bend every law fitted through it. The training-dynamics chapter
    lists every run with its verdict, so none is dropped silently. A folder without metrics.csv (a run not yet
    begun, found by another ``marker``) and a run with no validation loss after warm-up cannot be judged and
    are kept."""
    folder = Path(folder)
    if not folder.exists():
        return []
    found = [d for d in sorted(folder.iterdir()) if (d / marker).exists() and (variants or not _is_variant(d.name))]
    return [d for d in found if unstable or not _breaks_rule(d)]


def _breaks_rule(folder: Path) -> bool:
    return (folder / "metrics.csv").exists() and run_stability(load_run(folder)).excluded


def _is_variant(name: str) -> bool:
    m = _NAME.fullmatch(name)
    return m is not None and _variant(m).is_variant


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
