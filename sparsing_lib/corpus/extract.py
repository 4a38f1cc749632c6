"""Text extraction and cleaning: an unpacked registry package -> (document id, plain text) pairs.

Each ``x_*`` extractor knows one package layout (a dictd database, a SWORD module, Sphinx sources, HTML
pages, POD, ...) and calls the per-format cleaners here. ``documents`` applies the cleaning shared by all
sources (normalisation, cutting long documents, dropping short ones). The build caches the output of
this module per package file, keyed on a hash of this file, so every piece of code the extracted
documents depend on lives here.
"""

from __future__ import annotations

import gzip
import html.parser
import json
import re
import struct
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

MAX_DOC_CHARS = 24_000  # longer documents are cut at paragraph boundaries into ~12k-char pieces
MIN_DOC_CHARS = 200  # shorter documents (after cleaning and dedup) are dropped


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


def documents(pairs: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """Normalised documents of one source, long ones cut into pieces ``<id>#<k>``, short pieces dropped.

    Applied to every extractor's output so that all sources share one notion of a document.
    """
    docs = []
    for doc_id, text in pairs:
        for i, piece in enumerate(split_long(normalize(text))):
            if len(piece) >= MIN_DOC_CHARS:
                docs.append((f"{doc_id}#{i}", piece))
    return docs
