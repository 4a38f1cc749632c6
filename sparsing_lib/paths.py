"""Where the committed results live and which code produced a result: the provenance leaf of the library.

Every module that reads or writes ``data/`` asks this one. A checkout finds its own ``data/`` folder; an
installed copy (``pip install .``, Colab) has none beside it, so ``SPARSING_DATA`` names the folder instead.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]  # the checkout, when the library is used from one
DATA = Path(os.environ["SPARSING_DATA"]).expanduser() if os.environ.get("SPARSING_DATA") else ROOT / "data"

# Dense bf16 matrix rate of the NVIDIA H200 (8192^3 bf16 products measured at 769-798 TFLOP/s), the denominator
# of every MFU in the book; data/benchmarks/throughput_README.md says where the rate was measured and why it is
# preferred to the 737 TFLOP/s our search benchmark saw on smaller 4096^3 products.
H200_BF16_FLOPS = 790e12


def data_file(*parts: str) -> Path:
    """A path under the data folder, with an error that says how to point the library at the data."""
    path = DATA.joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(
            f"{path} does not exist. The book's committed results live in the repository's data/ folder; "
            "clone the repository, or set SPARSING_DATA to the path of a copy of that folder."
        )
    return path


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def git_state() -> dict:
    """The code's revision, read from git with a flag for uncommitted changes.

    A machine that receives a copy of the tree (the GPU machine) may have no ``.git``, or a stale one; there
    the caller types the revision into ``SPARSING_GIT_REV``. It is used when git cannot answer, or when
    git's HEAD disagrees with it (a stale copy), and is marked as typed in, never as read from git."""
    typed = os.environ.get("SPARSING_GIT_REV")
    try:
        rev = _git("rev-parse", "HEAD")
        dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.CalledProcessError):
        if typed:
            return {"revision": typed, "dirty": None, "source": "SPARSING_GIT_REV (typed in, not checked)"}
        return {"revision": "unknown", "dirty": None, "source": "unknown"}
    if typed and not rev.startswith(typed):
        note = f"typed in; this machine's git reports {rev[:7]}{' with changes' if dirty else ''}"
        return {"revision": typed, "dirty": None, "source": f"SPARSING_GIT_REV ({note})"}
    return {"revision": rev, "dirty": dirty, "source": "git"}


def git_revision(short: bool = False) -> str:
    """The revision alone, shortened to 7 characters on request, with ``+dirty`` if the tree had changes."""
    state = git_state()
    rev = state["revision"][:7] if short and state["source"] == "git" else state["revision"]
    return rev + ("+dirty" if state["dirty"] else "")


def cpu_hardware() -> str:
    """One line naming this machine's CPU architecture, core count and Python version, for provenance."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def device_hardware(device: str = "cpu") -> str:
    """What ran a measurement on ``device``: the GPU's name for a CUDA device, else ``cpu_hardware()``."""
    if str(device).startswith("cuda"):
        import torch  # this module stays importable without torch

        return torch.cuda.get_device_name(torch.device(device))
    return cpu_hardware()
