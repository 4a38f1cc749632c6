"""Released-curve loader (hash checks, clear errors) and the transcribed paper tables."""

import shutil

import numpy as np
import pytest

from sparsing_lib import paper


def test_released_curves_shape_and_content(curves):
    assert list(curves.columns) == ["scale", "activation", "tokens", "activation_ratio"]
    sizes = curves.groupby(["activation", "scale"], observed=True).size()
    assert len(sizes) == 11 and sizes[("relu", "0.1B")] == 28 and sizes[("relu", "1.2B")] == 42
    assert curves.activation_ratio.between(0.05, 0.45).all()
    # within each curve tokens increase; the last 0.1B ReLU point is the inventory's 41.63B / 7.09 %
    assert (
        curves.groupby(["activation", "scale"], observed=True).tokens.apply(lambda t: t.is_monotonic_increasing).all()
    )
    last = curves[(curves.activation == "relu") & (curves.scale == "0.1B")].iloc[-1]
    assert last.tokens == 41633519229 and abs(last.activation_ratio - 0.0709) < 1e-4


def test_env_var_is_used_and_empty_counts_as_unset(released_dir, monkeypatch):
    monkeypatch.setenv(paper.ENV_VAR, str(released_dir))
    assert paper.data_dir() == released_dir
    monkeypatch.setenv(paper.ENV_VAR, "")
    monkeypatch.setattr(paper, "_download", lambda: "downloaded")
    assert paper.data_dir() == "downloaded"


def test_missing_directory_names_it():
    with pytest.raises(paper.ReleasedDataError, match=r"(?s)'/nonexistent/x' does not exist.*SPARSINGLAW_DATA"):
        paper.released_curves("/nonexistent/x")


def test_missing_file_is_named(released_dir, tmp_path):
    for f in released_dir.glob("*.txt"):
        shutil.copy(f, tmp_path)
    (tmp_path / "0.8b_silu.txt").unlink()
    with pytest.raises(paper.ReleasedDataError, match="(?s)missing file '0.8b_silu.txt'.*SPARSINGLAW_DATA"):
        paper.released_curves(tmp_path)


@pytest.mark.parametrize("damage", ["truncate", "one_digit"])
def test_corrupted_file_fails_the_hash(released_dir, tmp_path, damage):
    for f in released_dir.glob("*.txt"):
        shutil.copy(f, tmp_path)
    target = tmp_path / "0.2b_relu.txt"
    text = target.read_text()
    target.write_text(text[: len(text) // 2] if damage == "truncate" else text.replace("0.0", "0.1", 1))
    with pytest.raises(paper.ReleasedDataError, match="0.2b_relu.txt' is corrupted: SHA-256"):
        paper.released_curves(tmp_path)


def test_download_failure_is_one_clear_error(monkeypatch, tmp_path):
    import pooch

    def no_network(self, fname, *args, **kwargs):
        raise ConnectionError("offline")

    monkeypatch.delenv(paper.ENV_VAR, raising=False)
    monkeypatch.setattr(pooch, "os_cache", lambda name: tmp_path)
    monkeypatch.setattr(pooch.Pooch, "fetch", no_network)
    with pytest.raises(paper.ReleasedDataError, match="(?s)could not download .*SPARSINGLAW_DATA"):
        paper.released_curves()


def test_hash_registry_matches_shared_sums(released_dir):
    sums = dict(line.split()[::-1] for line in (released_dir / "SHA256SUMS").read_text().splitlines())
    assert sums == paper.SHA256


def test_table2_and_table3():
    t2 = paper.table2()
    assert len(t2) == 11 and set(t2.paper_version) == {"v4"}
    relu = t2[t2.activation == "relu"].set_index("scale")
    silu = t2[t2.activation == "silu"].set_index("scale")
    assert relu.loc["0.1B", "A0"] == 0.0614 and silu.loc["1.2B", "A0"] == 0.382
    assert silu.b.isna().all() and relu.b.notna().all()
    # Table 2 lists limits, and the paper's prose states the corresponding sparsities (e.g. 93.52 % for 2.4B)
    assert np.isclose(1 - relu.loc["2.4B", "A0"], 0.9352)
    t3 = paper.table3()
    assert list(t3.scale) == list(paper.SCALES)
    assert paper.n_params("0.8B") == 7.60e8
    with pytest.raises(ValueError, match="scale='3B' is not in Table 3"):
        paper.n_params("3B")


def test_law_2p4b_matches_table2_and_fig11():
    final = paper.law_2p4b()
    row = paper.table2().query("activation == 'relu' and scale == '2.4B'").iloc[0]
    assert final == {k: row[k] for k in ("alpha", "b", "c", "A0")}
    assert paper.law_2p4b("interim")["A0"] == 0.0712
    with pytest.raises(ValueError, match="fit='draft' is not valid"):
        paper.law_2p4b("draft")
