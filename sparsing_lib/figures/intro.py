"""The landing page: the paper's claims with our verdicts, and the scorecard of every figure and table.

Both tables are editorial summaries kept in ``data/`` (``claims.csv``, ``scorecard.csv``): each row links to
the section whose code computes the evidence, so a reader can check every verdict there."""

from __future__ import annotations

import pandas as pd

from ..paths import data_file

_PREFIX = "sparsing_lib.figures."
VERDICTS = ("holds", "partly holds", "does not hold", "untested")
STATUSES = ("reproduced", "partly reproduced", "differs", "not yet reproduced", "no data released", "not applicable")


def _link(page: str, anchor: str, text: str) -> str:
    return f'<a href="{page}.html{"#" + anchor if anchor else ""}">{text}</a>' if page else text


def claims() -> pd.DataFrame:
    """The paper's checkable claims (its §7 list, in our words), each with our verdict and a link to its section."""
    df = pd.read_csv(data_file("claims.csv"), keep_default_na=False)
    unknown = set(df["verdict"]) - set(VERDICTS)
    if unknown:
        raise ValueError(f"claims.csv has verdicts {sorted(unknown)}; use one of {VERDICTS}")
    return pd.DataFrame(
        {
            "#": df["id"],
            "the paper says": df["claim"],
            "verdict": df["verdict"],
            "evidence from": df["basis"],
            "why": df["note"],
            "section": [_link(p, a, t) for p, a, t in zip(df["section"], df["anchor"], df["section_title"])],
        }
    )


def scorecard() -> pd.DataFrame:
    """Every figure and table of the paper: its status from the authors' data and from our runs, where it is
    reproduced, and the library function that draws it."""
    df = pd.read_csv(data_file("scorecard.csv"), keep_default_na=False)
    return pd.DataFrame(
        {
            "paper item": [_link(p, a, i) for p, a, i in zip(df["section"], df["anchor"], df["item"])],
            "from the authors' data": df["from_authors_data"],
            "from our runs": df["from_our_runs"],
            "what we find": df["note"],
            "drawn by (in sparsing_lib.figures)": [
                "<br>".join(f"<code>{f.strip().removeprefix(_PREFIX)}</code>" for f in fs.split(";") if f)
                for fs in df["function"]
            ],
        }
    )


def numbers() -> dict[str, str]:
    """Counts the landing page quotes: claims per verdict, items reproduced at least in part per source."""
    c = pd.read_csv(data_file("claims.csv"), keep_default_na=False)["verdict"].value_counts()
    s = pd.read_csv(data_file("scorecard.csv"), keep_default_na=False)
    done = ("reproduced", "partly reproduced", "differs")
    return {
        "n_claims": str(int(c.sum())),
        **{f"n_{v.replace(' ', '_')}": str(int(c.get(v, 0))) for v in VERDICTS},
        "n_items": str(len(s)),
        "n_items_authors": str(int(s["from_authors_data"].isin(done).sum())),
        "n_items_ours": str(int(s["from_our_runs"].isin(done).sum())),
    }
