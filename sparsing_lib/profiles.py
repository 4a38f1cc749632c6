"""The profile contract every chapter follows, in one place.

``replay`` loads committed results from ``data/``; ``smoke`` recomputes the whole pipeline at toy size on
a CPU (minutes) and saves nothing; ``full`` recomputes at the book's size (on a GPU where the chapter
trains or measures models) and saves the result with its provenance, so that the next replay draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from .checks import check_profile
from .paths import cpu_hardware, git_state

T = TypeVar("T")


def provenance(command: str, seconds: float | None = None, hardware: str | None = None) -> dict:
    """What a saved result needs to be reproduced: the command, the code's revision (with a dirty flag and
    its source), the hardware, the duration and the date."""
    git = git_state()
    return {
        "command": command,
        "git_revision": git["revision"],
        "git_dirty": git["dirty"],
        "git_revision_source": git["source"],
        "hardware": hardware or cpu_hardware(),
        "seconds": None if seconds is None else round(seconds, 1),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
    }


def by_profile(
    profile: str,
    replay: Callable[[], T],
    recompute: Callable[[str], T],
    save: Callable[[T], None],
) -> T:
    """Run a chapter's pipeline under ``profile``: ``replay()``, or ``recompute(profile)`` (then ``save`` it
    when the profile is ``full``)."""
    if check_profile(profile) == "replay":
        return replay()
    result = recompute(profile)
    if profile == "full":
        save(result)
    return result
