"""Run checkpoints as Hugging Face models: rebuild one from its run folder, or export it as a model folder.

A run checkpoint (``<ckpt>/<run>/step_XXXXXX.pt``) is a bare state dict; the run folder's ``config.json`` says
which model it belongs to. Exported, it becomes an ordinary ``save_pretrained`` folder (safetensors shards and
our tokenizer) that ``AutoModelForCausalLM`` reads, so that a trained mini can be kept, moved in pieces no
larger than a transfer limit, evaluated later without retraining, or measured like any other model::

    python -m sparsing_lib.checkpoints --ckpt .scratch/ckpt/mini-336x7-relu/step_013868.pt \
        --run data/runs/mini-336x7-relu --out models/mini-336x7-relu --dtype float16 --shard-size 15MB
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import parametrize

from . import models
from .runs import load_run

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def load_checkpoint(ckpt: Path | str, run: Path | str, device: str = "cpu") -> tuple[nn.Module, object]:
    """(model in eval mode, our tokenizer) from a run checkpoint and the run folder whose config.json built it;
    the model's context is set to the run's training length (RoPE does not depend on it)."""
    from .corpus import load_tokenizer

    cfg = load_run(Path(run))["config"]
    model = models.build_model(models.get_spec(cfg["model"]["name"]), cfg["activation"], cfg["vocab_size"])
    model.load_state_dict(torch.load(Path(ckpt), map_location="cpu"))
    model.config.max_position_embeddings = cfg["train"]["seq_len"]
    return model.to(device).eval(), load_tokenizer()


def export(
    ckpt: Path | str, run: Path | str, out: Path | str, dtype: str = "float16", shard_size: str = "15MB"
) -> Path:
    """Write the checkpoint as a ``save_pretrained`` folder (weights in ``dtype``, safetensors shards of at most
    ``shard_size``) with our tokenizer beside it; returns the folder. float16 keeps 11 bits of each weight, more
    than the bfloat16 that autocast gives every matrix product at evaluation time."""
    if dtype not in DTYPES:
        raise ValueError(f"dtype {dtype!r} is not one of {', '.join(DTYPES)}")
    model, tokenizer = load_checkpoint(ckpt, run)
    for module in list(model.modules()):  # MoE experts follow autocast through a parametrization: bake it in
        for name in list(getattr(module, "parametrizations", {})):
            parametrize.remove_parametrizations(module, name, leave_parametrized=True)
    out = Path(out)
    model.to(DTYPES[dtype]).save_pretrained(out, max_shard_size=shard_size)
    tokenizer.save_pretrained(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Export a run checkpoint as a Hugging Face model folder.")
    ap.add_argument("--ckpt", required=True, help="the checkpoint, .../step_XXXXXX.pt")
    ap.add_argument("--run", required=True, help="its run folder (config.json)")
    ap.add_argument("--out", required=True, help="the model folder to write")
    ap.add_argument("--dtype", default="float16", choices=list(DTYPES))
    ap.add_argument("--shard-size", default="15MB", help="largest safetensors shard, e.g. 15MB")
    args = ap.parse_args(argv)
    try:
        folder = export(args.ckpt, args.run, args.out, args.dtype, args.shard_size)
    except (FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    print(f"wrote {folder} ({size:.1f} MiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
