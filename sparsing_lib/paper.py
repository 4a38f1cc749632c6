"""The paper's released measurements and printed numbers.

``released_curves`` loads the activation-ratio-vs-tokens points that the authors published in
``Raincleared-Song/SparsingLawData`` (the data behind Fig. 4, Table 2 and an interim Fig. 11). The files
are third-party and never committed here: they come from a directory (argument or ``$SPARSINGLAW_DATA``)
or are downloaded at a fixed commit into the user cache, and every file is checked against its SHA-256.

``table1`` … ``table6`` and ``law_2p4b`` read the paper's printed numbers, transcribed under ``data/paper/``.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pandas as pd

from .checks import check_choice
from .paths import DATA

ENV_VAR = "SPARSINGLAW_DATA"
REPO = "Raincleared-Song/SparsingLawData"
COMMIT = "1cab4439cd22e2de9006d5fd4d798790cf89b305"
BASE_URL = f"https://raw.githubusercontent.com/{REPO}/{COMMIT}/data/"
SHA256 = {
    "0.1b_relu.txt": "5c4b6c3b016f3b6e8896cf8d14c2cad0bc132ca02c8d78bbb3eff1613a3bce88",
    "0.1b_silu.txt": "2a9ddd5cdc855dd4319fc71dcb35577abbf7cc72ee3161a40d10e6c313b23ac8",
    "0.2b_relu.txt": "16bf28f3866b0bde01d866d9795d63c116ad7e01e1ba117744f77c9c7a932155",
    "0.2b_silu.txt": "4cabcac2a369a279f310ef05e105573a8c5bb6cf14e5dd751e638c641640b54c",
    "0.4b_relu.txt": "fa3659e2aa81edf67751c802179b6f3fd5162e399dd8ea49121c75f9c97915eb",
    "0.4b_silu.txt": "3ef56a193533c95396a677c5056b51ee65cbc000770f753d833810c13d7648f8",
    "0.8b_relu.txt": "15752017548e3131b7f3cb26e7eab48a4d678e4c54a1e5bc805a4b4a948540a8",
    "0.8b_silu.txt": "4507e8ff6126443f59b9095cc54b8195d93e52af54173232bbd1362791d15be2",
    "1.2b_relu.txt": "5255980b5a3632492faa5a9f7d3a020fd1c19d0e35975d3534d426fbd982b052",
    "1.2b_silu.txt": "8108d896e2501a322922ecaa34f75faa4c975d5161db5bc2f69a9787dca66caf",
    "2.4b_relu.txt": "24c4ca4728aeb57922fa5622889466de54c80c441e292d5ccc6cba9d8ed05460",
}
SCALES = ("0.1B", "0.2B", "0.4B", "0.8B", "1.2B", "2.4B")
PAPER_DIR = DATA / "paper"


class ReleasedDataError(RuntimeError):
    """The released curves could not be found, downloaded or verified."""


def _help(detail: str) -> ReleasedDataError:
    return ReleasedDataError(
        f"{detail}.\nThe authors' measured curves (11 small text files) are not part of this book. "
        "Get them either way:\n"
        f"  1. Network: with internet access they are downloaded automatically from the authors' repository "
        f"https://github.com/{REPO} at the pinned commit {COMMIT[:7]}, and every file is checked against its "
        f"SHA-256 before use: leave {ENV_VAR} unset and run again once online.\n"
        f"  2. Local folder: download or clone that repository yourself and set the environment variable "
        f"{ENV_VAR} to its data/ folder (e.g. export {ENV_VAR}=~/SparsingLawData/data), or pass "
        "released_curves(path=...)."
    )


def _download() -> Path:
    import pooch

    fetcher = pooch.create(
        path=pooch.os_cache("sparsing_lib") / f"sparsinglawdata-{COMMIT[:7]}",
        base_url=BASE_URL,
        registry={name: f"sha256:{digest}" for name, digest in SHA256.items()},
    )
    try:
        for name in SHA256:
            fetcher.fetch(name)
    except Exception as err:  # network errors, HTTP errors, pooch's hash mismatch
        raise _help(f"could not download the released curves ({type(err).__name__}; no network?)") from err
    return Path(fetcher.abspath)


def data_dir(path: str | os.PathLike | None = None) -> Path:
    """The directory of released curves: ``path``, else ``$SPARSINGLAW_DATA``, else a verified download."""
    if path is None:
        path = os.environ.get(ENV_VAR) or None
    if path is None:
        return _download()
    path = Path(path).expanduser()
    if not path.is_dir():
        raise _help(f"released-data directory {str(path)!r} does not exist")
    return path


def _read(path: Path) -> dict:
    if not path.is_file():
        raise _help(f"missing file {path.name!r} in {str(path.parent)!r}")
    raw = path.read_bytes()
    digest = hashlib.sha256(raw).hexdigest()
    if digest != SHA256[path.name]:
        raise _help(
            f"{str(path)!r} is corrupted: SHA-256 {digest[:12]}… differs from the released {SHA256[path.name][:12]}…"
        )
    try:
        content = json.loads(raw)
        tokens, ratio = content["token_passed"], content["activation_ratio"]
    except (ValueError, KeyError, TypeError) as err:  # unreachable for verified files; kept for clarity
        raise _help(f"{str(path)!r} is not the expected JSON ({err})") from err
    if len(tokens) != len(ratio):
        raise _help(f"{str(path)!r} has {len(tokens)} token counts but {len(ratio)} ratios")
    return content


def released_curves(path: str | os.PathLike | None = None) -> pd.DataFrame:
    """All released points, one row per checkpoint: ``scale, activation, tokens, activation_ratio``.

    ``scale`` is "0.1B" … "2.4B", ``activation`` "relu" or "silu", ``tokens`` the count of training tokens
    passed, ``activation_ratio`` a fraction (CETT-PPL-1%, pre-decay checkpoints). The 2.4B curve is the
    authors' interim run (to 291B tokens), not the ~800B-token run behind the paper's final 2.4B law.
    """
    root = data_dir(path)
    frames = []
    for name in SHA256:
        content = _read(root / name)
        scale, act = name.removesuffix(".txt").split("_")
        frames.append(
            pd.DataFrame(
                {
                    "scale": scale.upper(),
                    "activation": act,
                    "tokens": pd.Series(content["token_passed"], dtype="int64"),
                    "activation_ratio": pd.Series(content["activation_ratio"], dtype="float64"),
                }
            )
        )
    curves = pd.concat(frames, ignore_index=True)
    curves["scale"] = pd.Categorical(curves["scale"], categories=SCALES, ordered=True)
    return curves.sort_values(["activation", "scale", "tokens"], ignore_index=True)


def _printed(name: str) -> pd.DataFrame:
    return pd.read_csv(PAPER_DIR / f"{name}.csv", comment="#")


# Table 1 (v4) prints C.R. Δ CETT-PPL-10% for 0.8B ReLU as -0.2; its own source rows (v1 Table 1, Table 4) give
# 55.6 - 56.8 = -1.2, and the printed Avg. (-0.45) is the mean with the typo. Kept as printed; see ``table1``.
TABLE1_TYPO = {"group": "C.R.", "setting": "Δ CETT-PPL-10%", "model": "0.8B ReLU", "printed": -0.2, "from_table4": -1.2}


def table1() -> pd.DataFrame:
    """Table 1 (§4.1, v4) as printed: per task group (C.R., R.C.) the dense score and the Δ of CETT-PPL-1/5/10%
    against it, one column per model ("0.1B ReLU" … "1.2B SiLU") and the printed average over the ten.

    One cell is a typo kept as printed (``TABLE1_TYPO``): the Δ the paper's own Table 4 implies is -1.2, not -0.2."""
    return _printed("table1")


def table4() -> pd.DataFrame:
    """Table 4 (App. K): commonsense-reasoning scores (%) per scale, activation and setting, with the printed Avg."""
    return _printed("table4")


def table5() -> pd.DataFrame:
    """Table 5 (App. K): reading-comprehension scores (%); Avg. is the mean of BoolQ, LAMBADA, TyDiQA F1 and acc."""
    return _printed("table5")


def table6() -> pd.DataFrame:
    """Table 6 (App. K): scores (%) on the complex benchmarks (AGIEval … BBH), with the printed Avg. of six."""
    return _printed("table6")


def table2() -> pd.DataFrame:
    """Table 2 (App. G, v4): printed law coefficients per (activation, scale); ``b`` is NaN for SiLU."""
    return _printed("table2")


def table3() -> pd.DataFrame:
    """Table 3 (App. I, v4): non-embedding parameters and batch size per scale."""
    return _printed("table3")


def warmup() -> pd.DataFrame:
    """Warm-up iterations per scale (0.1B–1.2B) from the authors' released training configurations; the paper
    does not print them."""
    return _printed("warmup")


def law_2p4b(fit: str = "final") -> dict[str, float]:
    """The 2.4B ReLU law (logspace form) as ``alpha, b, c, A0``.

    ``fit="final"``: the v4 Fig. 11 legend / Table 2 row (~800B tokens); ``"interim"``: the authors' earlier
    fit to the released interim points (to 291B tokens), from their data repository's scripts.
    """
    laws = pd.read_csv(PAPER_DIR / "law_2p4b.csv", comment="#").set_index("fit")
    check_choice("fit", fit, laws.index)
    return {k: float(laws.loc[fit, k]) for k in ("alpha", "b", "c", "A0")}


def n_params(scale: str) -> float:
    """Non-embedding parameter count of a scale, from Table 3."""
    t3 = table3().set_index("scale")
    if scale not in t3.index:
        raise ValueError(f"scale={scale!r} is not in Table 3; choose one of: {', '.join(t3.index)}")
    return float(t3.loc[scale, "non_embedding_params"])
