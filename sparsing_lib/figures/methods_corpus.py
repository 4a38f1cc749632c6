"""The training-corpus appendix: what the corpus is made of, read from the committed manifest and slice index.

The corpus itself is built by ``sparsing_lib.corpus`` (``make corpus``) into a git-ignored folder; what is
committed is its manifest (one row per source: package, licence, tokens), the tokenizer and a small smoke
slice. This module only reads those files, so the appendix can be drawn without rebuilding anything (a
rebuild downloads packages and takes a quarter of an hour on two cores).
"""

from __future__ import annotations

import json

import pandas as pd

from ..checks import check_profile
from ..paths import data_file

DOMAIN_ORDER = ("prose", "reference", "technical")


def manifest() -> pd.DataFrame:
    """The committed manifest of the full build: one row per source, with its token counts."""
    return pd.read_csv(data_file("corpus", "manifest.csv"))


def vocab_size() -> int:
    """Size of the committed tokenizer's vocabulary (BPE merges' vocabulary plus the end-of-text token if it
    is listed separately), read from ``data/tokenizer.json`` so the prose never types it."""
    tok = json.loads(data_file("tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    extra = [t for t in tok.get("added_tokens", []) if t["content"] not in vocab]
    return len(vocab) + len(extra)


def smoke_index() -> dict:
    """The committed smoke slice's index (token counts per split), the corpus the smoke profiles train on."""
    return json.loads(data_file("corpus", "smoke", "index.json").read_text())


def results(profile: str = "replay") -> dict:
    """The manifest, the tokenizer size and the smoke slice's index. Every profile reads the same committed
    files: rebuilding the corpus is ``make corpus``, not a chapter profile."""
    check_profile(profile)
    return {"manifest": manifest(), "vocab_size": vocab_size(), "smoke": smoke_index()}


def by_domain(man: pd.DataFrame) -> pd.DataFrame:
    """Sources, documents, clean bytes and tokens per domain, with a total row; ``share`` is of all tokens."""
    grouped = man.groupby("domain").agg(
        sources=("source", "size"),
        docs=("docs", "sum"),
        bytes=("bytes", "sum"),
        tokens=("tokens", "sum"),
        train_tokens=("train_tokens_kept", "sum"),
        val_tokens=("val_tokens", "sum"),
    )
    grouped = grouped.reindex(
        [d for d in DOMAIN_ORDER if d in grouped.index] + sorted(set(grouped.index) - set(DOMAIN_ORDER))
    )
    total = grouped.sum().rename("total")
    out = pd.concat([grouped, total.to_frame().T])
    out["share"] = out["tokens"] / total["tokens"]
    return out


def public_domain_share(man: pd.DataFrame) -> float:
    """Fraction of all tokens that come from sources marked public domain in the manifest."""
    pd_flag = man["public_domain"].astype(str).str.lower() == "true"
    return float(man.loc[pd_flag, "tokens"].sum() / man["tokens"].sum())


def domain_table(res: dict) -> pd.DataFrame:
    """The corpus by domain, with readable column names and token counts in millions."""
    d = by_domain(res["manifest"])
    return pd.DataFrame(
        {
            "domain": d.index,
            "sources": d["sources"].astype(int).to_numpy(),
            "documents": d["docs"].astype(int).to_numpy(),
            "clean text (MB)": (d["bytes"] / 1e6).to_numpy(),
            "tokens (M)": (d["tokens"] / 1e6).to_numpy(),
            "training tokens (M)": (d["train_tokens"] / 1e6).to_numpy(),
            "validation tokens (M)": (d["val_tokens"] / 1e6).to_numpy(),
            "share of tokens": d["share"].to_numpy(),
        }
    )


def sources_table(res: dict) -> pd.DataFrame:
    """One row per source: where it comes from (registry, package, version), its licence and its tokens."""
    m = res["manifest"]
    return pd.DataFrame(
        {
            "source": m["source"],
            "domain": m["domain"],
            "package": m["registry"] + ": " + m["package"] + " " + m["version"].astype(str),
            "licence": m["licence"],
            "public domain": m["public_domain"].map({True: "yes", False: "no", "True": "yes", "False": "no"}),
            "documents": m["docs"],
            "duplicates removed": m["duplicate_docs"],
            "tokens (M)": m["tokens"] / 1e6,
        }
    ).sort_values(["domain", "tokens (M)"], ascending=[True, False], ignore_index=True)


def numbers(res: dict) -> dict[str, str]:
    """The formatted numbers the corpus prose quotes."""
    m = res["manifest"]
    d = by_domain(m)
    total = d.loc["total"]
    smoke = res["smoke"]["files"]
    out = {
        "corpus_sources": f"{len(m)}",
        "corpus_docs": f"{int(total['docs']):,}",
        "corpus_mb": f"{total['bytes'] / 1e6:.1f}",
        "corpus_tokens": f"{total['tokens'] / 1e6:.2f}",
        "corpus_train_tokens": f"{total['train_tokens'] / 1e6:.2f}",
        "corpus_val_tokens": f"{total['val_tokens'] / 1e6:.3f}",
        "corpus_dups": f"{int(m['duplicate_docs'].sum())}",
        "corpus_public_domain": f"{public_domain_share(m):.0%}",
        "corpus_n_licences": f"{m['licence'].nunique()}",
        "corpus_vocab": f"{res['vocab_size']:,}",
        "corpus_largest": f"{m.loc[m['tokens'].idxmax(), 'source']}",
        "corpus_largest_share": f"{m['tokens'].max() / m['tokens'].sum():.0%}",
        "smoke_train_tokens": f"{smoke['train']['tokens']:,}",
        "smoke_val_tokens": " / ".join(f"{v['tokens']:,}" for v in smoke["val"].values()),
    }
    for dom in DOMAIN_ORDER:
        if dom in d.index:
            out[f"corpus_{dom}_tokens"] = f"{d.loc[dom, 'tokens'] / 1e6:.1f}"
            out[f"corpus_{dom}_share"] = f"{d.loc[dom, 'share']:.0%}"
    return out
