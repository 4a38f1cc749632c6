"""Convert run folders of format 1 to format 2 (``runs`` documents both) offline, without their checkpoints:
``python -m sparsing_lib.upgrade_runs data/runs``.

What the data allow, per dense run: the neuron frequencies are cut to the kept checkpoints
(``runs.kept_checkpoints``); the per-vocabulary ratios are the per-position ratios of ``token_ratios.npz``
averaged per vocabulary id with the token ids of those positions (``probe_token_ids.npz`` beside the runs,
rebuilt from the corpus build they trained on), so they cover only the tokens of those positions, not the
million probe tokens a format-2 run measures. A run whose positions the ids do not match (another corpus
build, probe size or window) gets no ``vocab_ratios.npz``. Every converted config.json records what was done
under ``format_upgrade``; ``token_ratios.npz`` is deleted, and ``probe_token_ids.npz`` once no run needs it.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from .probes import VocabAccumulator
from .runs import FORMAT, kept_checkpoints, load_arrays, run_format, write_json, write_npz, write_vocab_ratios

IDS_FILE = "probe_token_ids.npz"


def position_sources(config: dict, domains: list[str], n: int) -> tuple[list[str], list[int]]:
    """The validation domains the first ``n`` format-1 probe positions came from, and how many from each: the
    runner took an equal whole number of windows from the start of each domain (``run.mix``), in order."""
    seq = config["train"]["seq_len"]
    per = max(1, config["probe"]["tokens"] // (seq * len(domains))) * seq
    take = [min(per, max(0, n - i * per)) for i in range(len(domains))]
    return [d for d, t in zip(domains, take) if t], [t for t in take if t]


def upgrade_run(folder: Path, ids: dict[str, np.ndarray] | None) -> dict:
    """Convert one format-1 run folder in place; returns the ``format_upgrade`` record written to its config.
    ``ids``: the arrays of ``probe_token_ids.npz`` (``ids``, ``train_sha256``), or None."""
    config = json.loads((folder / "config.json").read_text())
    record: dict = {"from": run_format(folder), "by": "sparsing_lib.upgrade_runs"}
    if (folder / "neuron_frequency.npz").exists():
        with np.load(folder / "neuron_frequency.npz") as z:
            nf = {k: z[k] for k in z.files}
        keep = kept_checkpoints(len(nf["steps"]))
        steps = nf["steps"][keep].astype(np.int64)
        write_npz(folder / "neuron_frequency.npz", steps=steps, domains=nf["domains"], frequency=nf["frequency"][keep])
        record["kept_steps"] = steps.tolist()
        record["dropped_frequency_checkpoints"] = len(nf["steps"]) - len(keep)
        tr_path = folder / "token_ratios.npz"
        with np.load(tr_path) as z:
            ratios = z["token_ratios"][keep].astype(np.float64)  # [kept, position]
        n = ratios.shape[1]
        sha = config.get("corpus_identity", {}).get("train_sha256")
        if ids is not None and len(ids["ids"]) == n and str(ids["train_sha256"]) == sha:
            means = []
            for row in ratios:
                acc = VocabAccumulator(config["vocab_size"])
                acc.add(torch.from_numpy(row), torch.from_numpy(ids["ids"].astype(np.int64)))
                mean, count = acc.result()
                means.append(mean.astype(np.float16))
            sources, tokens = position_sources(config, [str(d) for d in nf["domains"]], n)
            write_vocab_ratios(folder, steps, means, count, sources, tokens)
            record["vocab_ratios"] = (
                f"averaged per vocabulary id from the {n:,} per-position ratios of token_ratios.npz with the ids of "
                f"{IDS_FILE}; covers only those positions ({', '.join(sources)} validation), "
                f"{int((count > 0).sum()):,} distinct ids"
            )
        else:
            record["vocab_ratios"] = f"not written: {IDS_FILE} does not match these {n:,} positions"
        tr_path.unlink()
    write_json(folder / "config.json", config | {"format": FORMAT, "format_upgrade": record})
    return record


def upgrade(folder: Path) -> dict[str, dict]:
    """Convert every format-1 run folder under ``folder``; returns the record of each converted run."""
    folder = Path(folder)
    ids_path = folder / IDS_FILE
    ids = load_arrays(folder, IDS_FILE.removesuffix(".npz")) if ids_path.exists() else None
    done = {
        d.name: upgrade_run(d, ids)
        for d in sorted(folder.iterdir())
        if (d / "config.json").exists() and run_format(d) < FORMAT
    }
    if ids_path.exists() and not list(folder.glob("*/token_ratios.npz")):
        ids_path.unlink()
    return done


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path, help="a folder of run folders, e.g. data/runs")
    for name, rec in upgrade(ap.parse_args(argv).folder).items():
        print(name, json.dumps(rec))


if __name__ == "__main__":
    main()
