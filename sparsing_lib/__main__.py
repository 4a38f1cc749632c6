"""Command line: measure the activation sparsity of one's own model.

    python -m sparsing_lib measure --model DIR_OR_HUB_ID [--text FILE] [--tokens N] [--p 0.01] [--out t.json]
    python -m sparsing_lib sparse-eval --model DIR_OR_HUB_ID --thresholds t.json [--text FILE] [--tokens N]

``--model`` also takes a ``.gguf`` file, or ``smollm2`` for the pinned SmolLM2 of the ``pretrained`` extra.
Without ``--text`` the text is Python's own documentation (shipped with CPython). Bad input stops the
command with one message and exit status 2, before anything is written.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from . import measure_cli
from .pretrained import MissingExtra, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m sparsing_lib", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, helptext in (
        ("measure", "find CETT-PPL-p% thresholds on a text and print the per-layer activation ratios"),
        ("sparse-eval", "PPL and activation ratio of a model run with saved thresholds"),
    ):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("--model", required=True, help="save_pretrained folder, Hub id, .gguf file, or 'smollm2'")
        p.add_argument("--text", type=Path, help="UTF-8 text file (default: Python's documentation)")
        p.add_argument("--tokens", type=int, default=2048, help="tokens of the text to use (default 2048)")
        p.add_argument("--seq-len", type=int, default=measure_cli.SEQ_LEN, help="tokens per window")
        p.add_argument("--device", default="cpu", help="cpu (default), cuda or cuda:N")
        p.add_argument("--quiet", action="store_true", help="no progress bars")
        if name == "measure":
            p.add_argument("--p", type=float, default=0.01, help="PPL increase allowed (0.01 = 1%%)")
            p.add_argument("--out", type=Path, help="write the thresholds here (ThresholdSet JSON)")
        else:
            p.add_argument("--thresholds", type=Path, required=True, help="ThresholdSet JSON from `measure`")
    return parser


def _device(name: str) -> str:
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {name}: no CUDA device is visible; use --device cpu")
    torch.device(name)  # raises on a malformed name
    return name


def _text(path: Path | None) -> str:
    if path is None:
        return measure_cli.python_docs_text()
    if not path.is_file():
        raise FileNotFoundError(f"no text file at {path}")
    return path.read_text(encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "measure":
            if not 0 < args.p < 1:
                raise ValueError(f"--p {args.p}: give the allowed PPL increase as a fraction in (0, 1), e.g. 0.01")
            if args.out is not None and not args.out.parent.is_dir():
                raise FileNotFoundError(f"--out {args.out}: the folder {args.out.parent} does not exist")
        else:
            thresholds = measure_cli.load_thresholds(args.thresholds)
        text = _text(args.text)
        model, tokenizer, _ = load(None if args.model == "smollm2" else args.model, _device(args.device))
        ids = measure_cli.text_windows(tokenizer, text, args.tokens, args.seq_len)
        if args.command == "measure":
            measure_cli.measure(model, ids, args.p, args.out, progress=not args.quiet)
        else:
            measure_cli.check_thresholds(thresholds, model, str(args.thresholds))
            measure_cli.sparse_eval(model, ids, thresholds, progress=not args.quiet)
    except (ValueError, FileNotFoundError, MissingExtra, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
