"""Argument checks shared by the library and the chapters: one clear error naming the valid choices."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PROFILES = ("replay", "smoke", "full")


def check_choice(name: str, value: Any, valid: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``valid``; otherwise raise one clear ValueError."""
    valid = tuple(valid)
    if value not in valid:
        listed = ", ".join(repr(v) for v in valid)
        raise ValueError(f"{name}={value!r} is not valid; choose one of: {listed}")
    return value


def check_profile(profile: str) -> str:
    """Validate a chapter's ``profile`` parameter: replay (committed results), smoke (toy size, CPU), full."""
    return check_choice("profile", profile, PROFILES)


def check_range(name: str, value: Any, lo: float, hi: float, kind: type = float) -> Any:
    """Return ``value`` if it is a ``kind`` number within [lo, hi]; otherwise raise one clear ValueError."""
    ok = not isinstance(value, bool) and (isinstance(value, kind) or (kind is float and isinstance(value, int)))
    if not ok or not lo <= value <= hi:
        raise ValueError(f"{name}={value!r} is not valid; use a {kind.__name__} in [{lo}, {hi}]")
    return value
