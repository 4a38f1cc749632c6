"""Corpus builder on a tiny synthetic source tree, text cleaners, and the committed smoke slice."""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import sys
import tarfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from sparsing_lib import corpus as C
from sparsing_lib.corpus import build as B
from sparsing_lib.corpus import extract as E
from sparsing_lib.corpus import sources as S

WORDS = (
    "the sea whale ship captain water wind night star light river stone king law court "
    "function value return list index module error file system memory thread process"
).split()
SHARED_DOC = " ".join(["This document is copied into two sources and must survive only once."] * 6)
SHARED_PARA = "A boilerplate paragraph that repeats in many documents of the technical source."


def x_plain(root: Path) -> list[tuple[str, str]]:
    """Synthetic extractor: every docs/*.txt file holds documents separated by a line '===='."""
    out = []
    for p in sorted(root.glob("docs/*.txt")):
        out += [(f"{p.stem}/{i}", d) for i, d in enumerate(p.read_text().split("\n====\n"))]
    return out


def x_broken(root: Path) -> list[tuple[str, str]]:
    raise RuntimeError("extractor failed half-way")


def _doc(rng: np.random.Generator, n_par: int) -> str:
    paras = [" ".join(rng.choice(WORDS, size=rng.integers(12, 40))).capitalize() + "." for _ in range(n_par)]
    return "\n\n".join(paras)


def _make_sources(cache: Path) -> tuple[S.Source, ...]:
    """Three synthetic sources (one per domain) packed as sdists under ``cache/dl``, sha256 pinned."""
    rng = np.random.default_rng(0)
    (cache / "dl").mkdir(parents=True, exist_ok=True)
    sources = []
    for k, domain in enumerate(C.DOMAINS):
        docs = [_doc(rng, int(rng.integers(3, 9))) for _ in range(60)]
        docs[5] = SHARED_DOC  # exact duplicate across sources
        if domain == "technical":
            docs = [d + "\n\n" + SHARED_PARA for d in docs]  # repeated paragraph
        src = S.Source(f"src{k}", domain, "pip", f"synthetic-{domain}", "1.0", "", "public domain", x_plain, True)
        payload = "\n====\n".join(docs).encode()
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w:gz") as tf:
            info = tarfile.TarInfo("docs/part.txt")
            info.size, info.mtime = len(payload), 0
            tf.addfile(info, io.BytesIO(payload))
        path = cache / "dl" / B.artifact_name(src)
        path.write_bytes(buf.getvalue())
        sources.append(replace(src, sha256=hashlib.sha256(buf.getvalue()).hexdigest()))
    return tuple(sources)


def _build(tmp: Path, cache: Path, sources, name: str = "out", **kw) -> tuple[Path, dict]:
    out = tmp / name
    kw = {"vocab_size": 300, "fetch": False, "workers": 1, **kw}
    return out, B.build(out, cache, sources, **kw)


def _text(ids: np.ndarray, tok_path: Path) -> list[str]:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tok_path))
    docs, start = [], 0
    for end in np.flatnonzero(ids == C.EOT_ID):
        docs.append(tok.decode(ids[start:end].tolist()))
        start = end + 1
    return docs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("corpus")
    cache = tmp / "cache"
    sources = _make_sources(cache)
    out, index = _build(tmp, cache, sources)
    return tmp, cache, sources, out, index


def test_dedup_and_val_disjoint(built):
    _, _, _, out, index = built
    train = _text(C.load_tokens("train", out), out / "tokenizer.json")
    val = [d for v in C.load_val_by_domain(out).values() for d in _text(v, out / "tokenizer.json")]
    everything = "\n\n".join(train + val)
    assert everything.count(SHARED_DOC) == 1
    assert everything.count(SHARED_PARA) == 1
    train_paras = {p for d in train for p in d.split("\n\n") if len(p) >= B.MIN_DEDUP_PARAGRAPH}
    val_paras = {p for d in val for p in d.split("\n\n") if len(p) >= B.MIN_DEDUP_PARAGRAPH}
    assert val_paras and not (train_paras & val_paras)
    assert set(index["domains"]) == set(C.DOMAINS)
    assert all(index["files"]["val"][d]["tokens"] > 0 for d in C.DOMAINS)


def test_manifest_fields_and_counts(built):
    _, _, sources, out, index = built
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert [r["source"] for r in rows] == [s.name for s in sources]
    for col in ("package", "version", "licence", "bytes", "tokens", "sha256", "domain"):
        assert all(r[col] for r in rows), col
    assert all(r["sha256"] == s.sha256 for r, s in zip(rows, sources))
    n_docs = int(C.load_tokens("train", out).size)
    kept = sum(int(r["train_tokens_kept"]) for r in rows)
    assert kept + index["train_docs"]["docs"] == n_docs  # plus one EOT per document
    assert sum(int(r["tokens"]) for r in rows) == sum(int(r["train_tokens"]) + int(r["val_tokens"]) for r in rows)
    docs = np.load(out / "train_docs.npz")
    train = C.load_tokens("train", out)
    assert np.all(train[docs["starts"][1:] - 1] == C.EOT_ID) and train[-1] == C.EOT_ID


def test_build_is_deterministic(built):
    tmp, cache, sources, out, _ = built
    out2, _ = _build(tmp, cache, sources, name="again")
    for f in ["train.u16.xz", "tokenizer.json", "manifest.csv", "index.json"] + [f"val_{d}.u16.xz" for d in C.DOMAINS]:
        assert (out / f).read_bytes() == (out2 / f).read_bytes(), f


def test_subsample_keeps_mixture_and_val(built):
    tmp, cache, sources, out, index = built
    full = index["files"]["train"]["bytes"]
    small_out, small = _build(
        tmp, cache, sources, name="small", max_train_bytes=full // 2, tokenizer=out / "tokenizer.json"
    )
    assert small["files"]["train"]["bytes"] <= full // 2
    assert small["train_subsample_fraction"] < 1
    assert small["files"]["val"] == index["files"]["val"]  # val fixed before subsetting
    rows = list(csv.DictReader(open(small_out / "manifest.csv")))
    shares = [int(r["train_tokens_kept"]) / int(r["train_tokens"]) for r in rows]
    assert max(shares) - min(shares) < 0.15


def test_missing_and_changed_sources_are_named(tmp_path):
    cache = tmp_path / "cache"
    sources = list(_make_sources(cache))
    missing = replace(sources[0], name="gone", package="no-such-package")
    changed = replace(sources[1], sha256="0" * 64)
    with pytest.raises(B.SourceError) as e:
        _build(tmp_path, cache, [missing, changed, sources[2]])
    assert "no-such-package" in str(e.value) and "synthetic-reference" in str(e.value)
    assert "changed upstream" in str(e.value)
    assert not (tmp_path / "out").exists()


def test_failed_build_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"
    sources = list(_make_sources(cache))
    out, _ = _build(tmp_path, cache, sources, name="out")
    before = (out / "train.u16.xz").read_bytes()
    broken = replace(sources[0], extract=x_broken)
    with pytest.raises(RuntimeError, match="half-way"):
        _build(tmp_path, cache, [broken] + sources[1:], name="out")
    assert (out / "train.u16.xz").read_bytes() == before  # old build untouched
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]


def test_html_and_dictionary_cleaning():
    page = (
        "<html><head><title>x</title><script>var a=1;</script></head><body><nav>Home | Next</nav>"
        "<div class='sphinxsidebar'><p>Sidebar</p></div><h1>Title</h1><p>First &amp; second\n line.</p>"
        "<pre>x = 1\n    y = 2</pre><ul><li>item</li></ul></body></html>"
    )
    assert E.html_text(page) == "Title\n\nFirst & second line.\n\nx = 1\n    y = 2\n\nitem"
    entry = 'Abuse \\A*buse"\\, v. t.\n   1. To put to a wrong use.\n      [1913 Webster]\n\n   Syn: {Misuse}.'
    assert E.dict_clean(entry) == "Abuse , v. t. 1. To put to a wrong use.\n\nSyn: Misuse."
    assert (
        E.brown_text("\tThe/at jury/nn said/vbd ``/`` no/at ''/'' ,/, it's/pps+bez fine/jj ./.")
        == 'The jury said "no", it\'s fine.'
    )
    assert E.split_long("a" * 10 + "\n\n" + "b" * 10, limit=12) == ["a" * 10, "b" * 10]


def test_documents_normalise_cut_and_drop_short():
    para = "w" * 10_000
    long = "\n\n".join([para] * 3)  # 30,004 chars > MAX_DOC_CHARS: cut once 12,000 chars are reached
    docs = E.documents([("a", "x" * 250 + "\r\n\n\n\n  "), ("b", "too short"), ("c", long)])
    assert docs == [("a#0", "x" * 250), ("c#0", para + "\n\n" + para), ("c#1", para)]


def _python(code_or_args: list[str]) -> subprocess.CompletedProcess:
    """Run this checkout's library in a fresh interpreter (so imports start from nothing)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([sys.executable, *code_or_args], capture_output=True, text=True, env=env, cwd=root)


def test_command_line_help():
    r = _python(["-m", "sparsing_lib.corpus", "--help"])
    assert r.returncode == 0, r.stderr
    assert "python -m sparsing_lib.corpus" in r.stdout and "build" in r.stdout
    r = _python(["-m", "sparsing_lib.corpus", "build", "--help"])
    assert r.returncode == 0 and "--out" in r.stdout and "--publish" in r.stdout


def test_loaders_do_not_import_the_build():
    code = (
        "import sys; import sparsing_lib.corpus as c; "
        "assert callable(c.load_tokens) and c.EOT_ID == 0; "
        "print(sorted(m for m in sys.modules if m.startswith('sparsing_lib.corpus')))"
    )
    r = _python(["-c", code])
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "['sparsing_lib.corpus']"


def test_tokenizer_training_is_deterministic():
    rng = np.random.default_rng(1)
    texts = [_doc(rng, 4) for _ in range(200)]
    a, b = B.train_tokenizer(texts, 300), B.train_tokenizer(texts, 300)
    assert a.to_str() == b.to_str() and a.token_to_id(C.EOT) == C.EOT_ID


@pytest.mark.skipif(not (C.SMOKE_DIR / "index.json").exists(), reason="smoke slice not built yet")
def test_committed_smoke_slice_and_tokenizer():
    train, val = C.load_tokens("train", root="smoke"), C.load_val_by_domain(root="smoke")
    tok = C.load_tokenizer()
    assert train.dtype == np.uint16 and train.size > 50_000 and train[-1] == C.EOT_ID
    assert set(val) == set(C.DOMAINS) and all(v.size > 1000 for v in val.values())
    assert int(train.max()) < len(tok) and tok.eos_token_id == C.EOT_ID
    assert C.load_tokens("val", root="smoke").size == sum(v.size for v in val.values())
    text = "The whale swam under the ship."
    assert tok.decode(tok(text)["input_ids"]) == text
    with pytest.raises(ValueError, match="split"):
        C.load_tokens("test", root="smoke")


def test_stale_apt_lists_get_a_hint(tmp_path, monkeypatch):
    """apt names a pinned security update 'not found' until its lists are refreshed: the error says so."""
    stale = subprocess.CompletedProcess([], 100, "", "E: Version '5.36.0-7+deb12u4' for 'perl-doc' was not found")
    monkeypatch.setattr(B.subprocess, "run", lambda *a, **k: stale)
    src = S.Source("perl", "docs", "apt", "perl-doc", "5.36.0-7+deb12u4", "", "GPL", x_plain, True)
    with pytest.raises(B.SourceError, match=r"perl-doc==5\.36\.0-7\+deb12u4: .*apt-get update"):
        B._download(src, tmp_path / "perl.deb")
    pip = replace(src, registry="pip", package="no-such-package")
    with pytest.raises(B.SourceError) as e:
        B._download(pip, tmp_path / "x.tar.gz")
    assert "apt-get update" not in str(e.value)
