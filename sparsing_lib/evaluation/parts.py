"""Finished parts of one downstream evaluation, kept on disk until the whole suite is written.

The suite of a 30M-parameter mini takes about ten minutes on an H200, longer than what is left of a timed GPU
call after training; written only at its end, a suite stopped by the call's deadline lost everything. The store
keeps each finished (task, setting) part and the CETT thresholds the parts used, so the next call on the same
model resumes where the last one stopped. Parts belong to one model: the store's folder is named after a hash
of its weights, and the parts of any other model (a rerun of the same run, which GPU kernels make slightly
different) are removed rather than mixed in.

Layout under the store's folder (``<out>/.parts`` by default; ``suite.run_suite`` never reads it itself):
``<fingerprint>/settings.json`` (name -> [method, value], and the CETT value behind each CETT setting) and one
``<task>|<setting>`` pair of files per part: ``.npz`` (per-item scores by metric) and ``.json`` (truncated
prompts, activation ratio, seconds, generated programs), the json written last, so a part without it is absent.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from torch import nn

from ..runs import write_json, write_npz

FOLDER = ".parts"


def fingerprint(model: nn.Module, salt: str = "") -> str:
    """A hash of every parameter's name, shape and float32 bytes, and of ``salt`` (what else decides the
    parts, such as the settings asked for and the items per task): equal exactly when all of them are."""
    h = hashlib.sha256(salt.encode())
    for name, p in model.named_parameters():
        h.update(f"{name}:{tuple(p.shape)}".encode())
        h.update(p.detach().float().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@dataclass
class Part:
    """One task under one setting: per-item scores by metric, truncated prompts, the activation ratio of
    its tokens, its seconds and the (item index, source) of the programs still to execute."""

    scores: dict[str, np.ndarray]
    truncated: int
    activation_ratio: float
    seconds: float
    programs: list[tuple[int, str]] = field(default_factory=list)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_.=%" else "_" for c in text)


class Parts:
    """The store of ``model``'s finished parts under ``folder``; the parts of other models (or of another
    ``salt``) are removed."""

    def __init__(self, folder: Path | str, model: nn.Module, salt: str = "") -> None:
        root = Path(folder)
        self.dir = root / fingerprint(model, salt)
        stale = [p for p in root.iterdir() if p != self.dir] if root.is_dir() else []
        for p in stale:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
        if stale:
            print(f"parts: removed {len(stale)} stale part folder(s) of another model under {root}")
        self.dir.mkdir(parents=True, exist_ok=True)

    def saved_settings(self) -> tuple[dict[str, tuple], dict[str, float]] | None:
        """The settings (name -> (method, value)) and CETT values an earlier call on this model saved."""
        path = self.dir / "settings.json"
        if not path.exists():
            return None
        saved = json.loads(path.read_text())
        return {k: tuple(v) for k, v in saved["settings"].items()}, saved["cett"]

    def save_settings(self, settings: Mapping[str, tuple], cett: Mapping[str, float]) -> None:
        """Keep the settings the parts use (thresholds as plain lists), so a resumed call scores with them."""
        plain = {k: [m, None if v is None else np.asarray(v).tolist()] for k, (m, v) in settings.items()}
        write_json(self.dir / "settings.json", dict(settings=plain, cett=dict(cett)))

    def _paths(self, task: str, setting: str) -> tuple[Path, Path]:
        stem = self.dir / _safe(f"{task}|{setting}")
        return stem.with_suffix(".npz"), stem.with_suffix(".json")

    def load(self, task: str, setting: str) -> Part | None:
        """The stored part, or None if it was never finished."""
        npz, meta = self._paths(task, setting)
        if not meta.exists():
            return None
        info = json.loads(meta.read_text())
        with np.load(npz) as z:
            scores = {k: z[k] for k in z.files}
        return Part(
            scores, info["truncated"], info["activation_ratio"], info["seconds"], list(map(tuple, info["programs"]))
        )

    def save(self, task: str, setting: str, part: Part) -> None:
        """Store a finished part: its scores first, its json (the marker of a whole part) last."""
        npz, meta = self._paths(task, setting)
        write_npz(npz, **part.scores)
        write_json(
            meta,
            dict(
                truncated=part.truncated,
                activation_ratio=part.activation_ratio,
                seconds=part.seconds,
                programs=[list(p) for p in part.programs],
            ),
        )

    def clear(self) -> None:
        """Remove the store once the whole suite is written."""
        shutil.rmtree(self.dir.parent, ignore_errors=True)
