"""Redo the Fig. 2 sweep of the committed SmolLM2 run with the denser keep fractions (the first sweep, at
0.6/1.0/1.6 x the activation ratio, left Top-k and FAT-eps unranked near 70% active), on the same sweep tokens,
and complete meta.json (see data/pretrained/README.md)."""

import json
import os
import sys
import time
from pathlib import Path

import torch

from sparsing_lib import measure_cli, pretrained
from sparsing_lib.figures import pretrained as section
from sparsing_lib.metrics import ThresholdSet, model_identity
from sparsing_lib.profiles import provenance

folder = Path(sys.argv[1])
meta = json.loads((folder / "meta.json").read_text())
t0, load_avg = time.perf_counter(), os.getloadavg()[0]
prov = provenance("python data/pretrained/rerun_sweep.py data/pretrained")
model, tok, source = pretrained.load(None)
sets = section.token_sets(tok, 1536)
ids = torch.cat(list(sets.values()))
step = max(1, ids.shape[0] // max(1, 768 // ids.shape[1]))
assert ids[::step].numel() == meta["sweep_tokens"]
points = measure_cli.sweep(model, ids[::step], meta["cett"], meta["activation_ratio"])
points.to_csv(folder / "pareto.csv", index=False)
ident = model_identity(model)
meta |= dict(
    model=ident,
    non_embedding_params=section.non_embedding_params(model),
    git_revision_at_end=meta["git_revision"],
    git_revision="c1756cfe6f0f5b5135bd07304053ce824afa05db",
    git_revision_source="git: the commit the calibration run started from (its code read git only at the end)",
    sweep=dict(
        prov,
        seconds=round(time.perf_counter() - t0, 1),
        load_average_at_start=round(load_avg, 2),
        note="pareto.csv redone on the same sweep tokens with four keep fractions per method",
    ),
)
(folder / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
ts = ThresholdSet.load(folder / "thresholds.json")
ts.model = ident
ts.save(folder / "thresholds.json")
print(points, meta)
