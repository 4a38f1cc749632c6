"""The book's offline training corpus: loaders for a build's token ids and the committed tokenizer.

A build (``python -m sparsing_lib.corpus build --out .corpus``, code in ``build``) holds xz-compressed
little-endian uint16 token ids, each document followed by ``EOT_ID``: ``train.u16.xz``, one
``val_<domain>.u16.xz`` per domain, and ``index.json`` describing them. The committed smoke slice under
``data/corpus/smoke`` has the same format. This module only reads; it never imports the build (and so
none of its fetching or tokenizer-training dependencies).
"""

from __future__ import annotations

import json
import lzma
import os
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..checks import check_choice
from ..paths import DATA, ROOT

EOT = "<|endoftext|>"
EOT_ID = 0
DOMAINS = ("prose", "reference", "technical")
TOKENIZER_PATH = DATA / "tokenizer.json"
SMOKE_DIR = DATA / "corpus" / "smoke"

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerFast


def corpus_root(root: Path | str | None = None) -> Path:
    """Folder of a corpus build: None -> $SPARSING_CORPUS or <repo>/.corpus; "smoke" -> the committed slice."""
    if root is None:
        return Path(os.environ.get("SPARSING_CORPUS", ROOT / ".corpus"))
    return SMOKE_DIR if str(root) == "smoke" else Path(root)


def _index(root: Path) -> dict:
    path = root / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"no corpus at {root} (run: python -m sparsing_lib.corpus build --out {root})")
    return json.loads(path.read_text())


def _load_xz(root: Path, meta: dict) -> np.ndarray:
    ids = np.frombuffer(lzma.decompress((root / meta["file"]).read_bytes()), dtype="<u2")
    if ids.size != meta["tokens"]:
        raise ValueError(f"{root / meta['file']} holds {ids.size} tokens, index says {meta['tokens']}")
    return ids.astype(np.uint16, copy=False)


def load_tokens(split: str, root: Path | str | None = None) -> np.ndarray:
    """Token ids (uint16) of ``split`` ("train" or "val"; val = all domains concatenated, sorted by name)."""
    check_choice("split", split, ("train", "val"))
    r = corpus_root(root)
    idx = _index(r)
    if split == "train":
        return _load_xz(r, idx["files"]["train"])
    return np.concatenate([_load_xz(r, idx["files"]["val"][d]) for d in sorted(idx["files"]["val"])])


def load_val_by_domain(root: Path | str | None = None) -> dict[str, np.ndarray]:
    """Validation token ids per domain label."""
    r = corpus_root(root)
    idx = _index(r)
    return {d: _load_xz(r, m) for d, m in sorted(idx["files"]["val"].items())}


def load_tokenizer(path: Path | str = TOKENIZER_PATH) -> PreTrainedTokenizerFast:
    """The committed byte-level BPE as a ``transformers.PreTrainedTokenizerFast`` (EOT = eos = pad)."""
    from transformers import PreTrainedTokenizerFast

    if not Path(path).exists():
        raise FileNotFoundError(f"no tokenizer at {path}")
    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), eos_token=EOT, bos_token=EOT, pad_token=EOT, unk_token=None
    )
