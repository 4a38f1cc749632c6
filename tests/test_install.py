"""A non-editable install replays a chapter from another directory, with the data named by SPARSING_DATA.

This is how Colab, Binder and a reader's own environment use the library: no checkout beside the
installed package, so nothing may assume one."""

import json
import os
import subprocess
import sys

import pytest

from sparsing_lib.paths import ROOT

CHAPTER = ROOT / "book" / "moe.ipynb"  # reads data/runs in replay


@pytest.mark.slow
def test_installed_copy_replays_a_chapter_from_elsewhere(tmp_path):
    site, work = tmp_path / "site", tmp_path / "work"
    work.mkdir()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--target",
            str(site),
            str(ROOT),
        ],
        check=True,
        cwd=tmp_path,
    )
    assert (site / "sparsing_lib" / "figures" / "family.py").exists(), "subpackages are missing from the wheel"
    env = {**os.environ, "PYTHONPATH": str(site), "SPARSING_DATA": str(ROOT / "data")}
    probe = subprocess.run(
        [sys.executable, "-c", "import sparsing_lib.paths as p; print(p.__file__); print(p.DATA)"],
        env=env,
        cwd=work,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert probe[0].startswith(str(site)), f"imported {probe[0]}, not the installed copy"
    assert probe[1] == str(ROOT / "data")
    out = work / "out.ipynb"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "papermill",
            str(CHAPTER),
            str(out),
            "--cwd",
            str(work),
            "--no-progress-bar",
            "--log-level",
            "ERROR",
        ],
        env=env,
        cwd=work,
        check=True,
        capture_output=True,
    )
    text = json.dumps(json.loads(out.read_text())["cells"])
    assert "moe-192x4-e16-relu (done" in text, "the replayed chapter did not read the committed runs"


def test_missing_data_folder_says_how_to_get_it(tmp_path):
    env = {**os.environ, "SPARSING_DATA": str(tmp_path / "nowhere")}
    res = subprocess.run(
        [sys.executable, "-c", "from sparsing_lib.paths import data_file; data_file('runs')"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert res.returncode != 0
    assert "set SPARSING_DATA" in res.stderr and "nowhere" in res.stderr
