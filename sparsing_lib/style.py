"""One look for every figure of the book: scale lists, labels, colours, markers and resolution.

Each series gets its own colour *and* marker, so that seven or more scales stay apart in print and for
colour-blind readers; figure functions ask ``series_style`` instead of choosing colours themselves."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import matplotlib as mpl
import seaborn as sns

PAPER_SCALES = ("0.1B", "0.2B", "0.4B", "0.8B", "1.2B", "2.4B")
ACT_LABEL = {"relu": "ReLU", "silu": "SiLU"}
METHOD_LABEL = {
    "cett": "CETT",
    "topk_token": "Top-k (per token)",
    "topk_layer": "Top-k (per layer)",
    "fat": "FAT-ε",
    "zero": "zero threshold",
    "experts": "routed experts",
}
MARKERS = ("o", "s", "D", "^", "v", "P", "X", "h", "<", ">", "p", "*")
PAPER_LINE = {"color": "saddlebrown", "lw": 1.2, "ls": "--"}  # the laws as printed in the paper
DPI = 150


def series_style(names: Sequence[str], palette: str = "colorblind") -> dict[str, dict]:
    """A distinct ``color`` and ``marker`` for each name, in order (for plot keyword arguments)."""
    names = list(dict.fromkeys(names))
    # the colour-blind palette has ten colours; past ten, evenly spaced hues keep every series distinct
    colours = sns.color_palette(palette) if len(names) <= 10 else sns.color_palette("husl", len(names))
    return {n: {"color": colours[i % len(colours)], "marker": MARKERS[i % len(MARKERS)]} for i, n in enumerate(names)}


def word_list(words: Iterable[str]) -> str:
    """Words as the book's prose lists them: "a", "a and b", "a, b and c" ("" for none)."""
    words = list(words)
    return ", ".join(words[:-1]) + f" and {words[-1]}" if len(words) > 1 else "".join(words)


def use() -> None:
    """Set the book's matplotlib defaults: 150 dpi, seaborn's ticks style, legible font sizes."""
    sns.set_theme(style="ticks", context="notebook", font_scale=0.9)
    mpl.rcParams.update({"figure.dpi": DPI, "savefig.dpi": DPI, "savefig.bbox": "tight", "legend.frameon": False})
