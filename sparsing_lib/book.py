"""Shared conventions for the book's chapters: paths, profiles and parameter checks."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any, Iterable

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "data"
PROFILES = ("replay", "smoke", "full")


def check_choice(name: str, value: Any, valid: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``valid``; otherwise raise one clear ValueError."""
    valid = tuple(valid)
    if value not in valid:
        listed = ", ".join(repr(v) for v in valid)
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {listed}")
    return value


def check_profile(profile: str) -> str:
    """Validate a chapter's ``profile`` parameter (replay | smoke | full)."""
    return check_choice("profile", profile, PROFILES)


def git_revision(short: bool = False) -> str:
    """The code's git revision (``$SPARSING_GIT_REV`` on machines that get the tree without .git), or "unknown"."""
    if os.environ.get("SPARSING_GIT_REV"):
        return os.environ["SPARSING_GIT_REV"]
    cmd = ["git", "rev-parse", *(["--short"] if short else []), "HEAD"]
    try:
        return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip() or "unknown"
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def cpu_hardware() -> str:
    """One line naming this machine's CPU architecture, core count and Python version, for provenance."""
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}"


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Record ``value`` for the book's ``{glue}`` roles; outside a notebook just return it."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # library used without the book toolchain
        return value
    _glue(name, value, display=display)
    return value
