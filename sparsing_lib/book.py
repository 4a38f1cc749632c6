"""The chapters' side of the library: parameter checks, ``glue``, tables and the executed-notebook tidy-up.

The library never imports this module; chapters import it. A chapter's contract with its reader is one
``profile`` parameter: ``replay`` redraws from committed results, ``smoke`` recomputes at toy size on a
CPU, ``full`` recomputes at the book's size and saves with provenance. ``check_params`` also refuses a
parameter name the chapter does not declare, so that a misspelt ``-p profle smoke`` cannot silently run
the replay profile.
"""

from __future__ import annotations

import argparse
import json
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .checks import check_profile

_IPYTHON_NAMES = {"In", "Out"}  # values IPython itself puts in a notebook's namespace
REVISION_PLACEHOLDER = "REV = 'main'"  # the Colab cell's line that the build replaces with the built commit


def check_params(namespace: dict) -> dict:
    """Check a chapter's parameters and return them as a dict.

    The declared parameters are the annotated names of the ``parameters`` cell (``profile: str = ...``);
    papermill's injected cell assigns without annotations. Called right after those two cells, any other
    plain value in the namespace is an injected name the chapter does not know."""
    declared = dict(namespace.get("__annotations__", {}))
    unknown = sorted(
        name
        for name, value in namespace.items()
        if not name.startswith("_")
        and name not in declared
        and name not in _IPYTHON_NAMES
        and not callable(value)
        and not isinstance(value, types.ModuleType)
    )
    if unknown:
        raise ValueError(
            f"unknown parameter {', '.join(repr(u) for u in unknown)}; this chapter takes: {', '.join(declared)}"
        )
    if "profile" in declared:
        check_profile(namespace["profile"])
    return {name: namespace[name] for name in declared}


def glue(name: str, value: Any, display: bool = False) -> Any:
    """Record ``value`` for the book's ``{glue}`` roles; outside a notebook just return it."""
    try:
        from myst_nb import glue as _glue
    except ImportError:  # library used without the book toolchain
        return value
    _glue(name, value, display=display)
    return value


def glue_all(values: dict[str, Any]) -> None:
    """``glue`` every entry of a dict of numbers a chapter's prose quotes (already formatted as text).

    Returns nothing, so that as a cell's last line it prints nothing on the page."""
    for name, value in values.items():
        glue(name, value)


def glue_figure(name: str, fig) -> None:
    """Glue a matplotlib figure for a captioned ``{glue:figure}`` directive, and close it so that it is not
    also shown a second time, uncaptioned, under the cell that drew it. A chapter without results yet may glue
    a note (IPython Markdown) under the same name instead, so that its page still builds."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    glue(name, fig, display=False)
    if isinstance(fig, Figure):
        plt.close(fig)


_TABLE_STYLES = [
    {"selector": "th, td", "props": "padding: 0.25em 0.6em;"},
    {"selector": "th", "props": "font-weight: 600; background-color: #f3f4f6;"},
    {"selector": "caption", "props": "caption-side: top; text-align: left; font-style: italic; padding: 0.3em 0;"},
]


def table(df: pd.DataFrame, caption: str | None = None, formats: dict | str | None = None, index: bool = False):
    """A pandas Styler a reader can use: padded cells, a caption, "–" for missing values, no index by default.

    Wide tables scroll inside their cell (the book's CSS); missing values are never coloured."""
    style = df.style.set_table_styles(_TABLE_STYLES).format(formats, na_rep="–")
    numeric = [c for c in df.columns if pd.api.types.is_numeric_dtype(df[c])]
    style = style.set_properties(subset=numeric, **{"text-align": "right"})
    style = style.set_properties(subset=[c for c in df.columns if c not in numeric], **{"text-align": "left"})
    if not index:
        style = style.hide(axis="index")
    if caption:
        style = style.set_caption(caption)
    return style


def tidy_executed(path: Path | str, revision: str | None = None) -> None:
    """Prepare a papermill-executed chapter for the HTML build.

    Papermill's injected-parameters cell is removed from the page (it repeats the parameters cell), and the
    Colab cell's revision line is set to the commit the page was built from, so that a downloaded notebook
    installs the library that drew it."""
    path = Path(path)
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if "injected-parameters" in tags and "remove-cell" not in tags:
            tags.append("remove-cell")
        if revision and cell["cell_type"] == "code":
            src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            cell["source"] = src.replace(REVISION_PLACEHOLDER, f"REV = {revision!r}")
    path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m sparsing_lib.book tidy NOTEBOOK [--revision REV]`` (the Makefile calls it)."""
    parser = argparse.ArgumentParser(prog="python -m sparsing_lib.book")
    sub = parser.add_subparsers(dest="command", required=True)
    tidy = sub.add_parser("tidy", help="hide the injected parameters cell and pin the Colab cell's revision")
    tidy.add_argument("notebook", type=Path)
    tidy.add_argument("--revision", default=None)
    args = parser.parse_args(argv)
    tidy_executed(args.notebook, args.revision)


if __name__ == "__main__":
    main()
