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


def test_downstream_tables_match_the_inventory_by_hand():
    t1 = paper.table1().set_index(["group", "setting"])
    assert t1.loc[("C.R.", "Dense"), "0.1B ReLU"] == 49.6 and t1.loc[("R.C.", "Δ CETT-PPL-10%"), "0.4B SiLU"] == -6.5
    assert t1.loc[("C.R.", "Dense"), "Avg."] == 54.78 and t1.loc[("R.C.", "Δ CETT-PPL-5%"), "Avg."] == -2.21
    t4, t5, t6 = paper.table4(), paper.table5(), paper.table6()
    assert len(t4) == len(t5) == len(t6) == 40
    row = t5[(t5.scale == "0.2B") & (t5.activation == "silu") & (t5.setting == "CETT-PPL-10%")].iloc[0]
    assert (row["BoolQ acc"], row["TyDiQA acc"], row["Avg."]) == (54.5, 20.9, 34.4)
    row = t6[(t6.scale == "1.2B") & (t6.activation == "relu") & (t6.setting == "CETT-PPL-1%")].iloc[0]
    assert (row["HumanEval pass@1"], row["MMLU acc"], row["Avg."]) == (9.8, 33.9, 19.3)
    assert t4.loc[(t4.scale == "0.8B") & (t4.activation == "silu") & (t4.setting == "Dense"), "COPA"].item() == 72.0


def test_table1_is_table4_and_table5_averages_except_the_printed_typo():
    t1 = paper.table1().set_index(["group", "setting"])
    for group, table in (("C.R.", paper.table4()), ("R.C.", paper.table5())):
        for (scale, act), rows in table.groupby(["scale", "activation"]):
            avg = rows.set_index("setting")["Avg."]
            model = f"{scale} {'ReLU' if act == 'relu' else 'SiLU'}"
            assert t1.loc[(group, "Dense"), model] == avg["Dense"]
            for p in ("1%", "5%", "10%"):
                printed, implied = t1.loc[(group, f"Δ CETT-PPL-{p}"), model], avg[f"CETT-PPL-{p}"] - avg["Dense"]
                typo = paper.TABLE1_TYPO
                if (group, f"Δ CETT-PPL-{p}", model) == (typo["group"], typo["setting"], typo["model"]):
                    assert (printed, round(implied, 1)) == (typo["printed"], typo["from_table4"])
                else:
                    assert abs(printed - implied) < 0.051, (group, p, model)
