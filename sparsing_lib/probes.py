"""End-of-run measurements on a training run's saved checkpoints: the sparsity probes of a dense run and
the expert-count probes of an MoE run.

They run once training is done, on the ``step_XXXXXX.pt`` weights that ``train.train`` saved over the
stable phase, and write their results into the run folder through ``runs`` (sparsity.csv, pareto.csv and,
for a dense run, cett.json, neuron_frequency.npz and token_ratios.npz).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from . import metrics
from .runs import write_csv, write_json, write_npz
from .train import checkpoint_path, val_loss, windows


def checkpoint_files(ckpt_dir: Path) -> list[tuple[int, Path]]:
    """The saved ``step_XXXXXX.pt`` weights in ``ckpt_dir`` as sorted (step, path) pairs."""
    pattern = checkpoint_path("", 0).name.replace("000000", "*")
    return sorted((int(p.stem.split("_")[1]), p) for p in Path(ckpt_dir).glob(pattern))


def load_checkpoint(build: Callable[[], PreTrainedModel], path: Path, device: torch.device) -> PreTrainedModel:
    """A model from ``build()`` with the weights saved at ``path``, on ``device`` in eval mode."""
    model = build()
    model.load_state_dict(torch.load(path, map_location="cpu"))
    return model.to(device).eval()


@dataclass
class ProbeConfig:
    """What the end-of-run sparsity probes measure on each stable-phase checkpoint."""

    p: float = 0.01  # CETT-PPL-p%
    joint_last: int = 5  # one CETT searched jointly over the last checkpoints (the paper's stabiliser)
    tokens: int = 2**16  # validation tokens for CETT, PPL and ratios (the caller's val_ids hold them)
    domain_tokens: int = 2**14  # per-domain tokens for neuron frequencies
    token_ratio_tokens: int = 2**14  # per-token ratios kept (float16)
    # Fig. 2 curves, measured on the last ``curve_last`` checkpoints only (the other checkpoints get the
    # CETT-PPL-p% point, the dense reading, frequencies and token ratios). FAT-eps runs geometrically up to 2
    # because a ReLU model's PPL barely moves up to eps = 0.3, so its 1% point needs eps of order 1.
    curve_last: int = 1
    topk_values: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2, 0.3, 0.5])
    fat_values: list[float] = field(default_factory=lambda: [0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0])
    cett_values: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5])
    batch_size: int = 64  # sequences per forward pass (also bounds the activations held per layer)


def probe_checkpoints(
    build: Callable[[], PreTrainedModel],
    ckpt_dir: Path,
    out_dir: Path,
    val_ids: np.ndarray,
    val_by_domain: dict[str, np.ndarray],
    seq_len: int,
    tokens_per_step: int,
    cfg: ProbeConfig = ProbeConfig(),
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Measure every checkpoint in ``ckpt_dir``; write sparsity.csv, pareto.csv and two .npz files to ``out_dir``.

    CETT-PPL-p%: one CETT value is searched jointly over the last ``cfg.joint_last`` checkpoints with
    ``metrics.cett_ppl`` and applied to every checkpoint through ``metrics.cett_thresholds``.
    Also per checkpoint: the dense (zero-threshold) reading, per-layer ratios, per-domain neuron activation
    frequencies and per-token activation ratios under the CETT thresholds. The last ``cfg.curve_last``
    checkpoints also get Top-k, FAT-ε and CETT sweeps (pareto.csv, Fig. 2's curves).
    """
    device = torch.device(device)
    ckpts = checkpoint_files(ckpt_dir)
    if not ckpts:
        raise ValueError(f"no checkpoints in {ckpt_dir}")
    ids = windows(val_ids, seq_len)
    dom_ids = {d: windows(v, seq_len, cfg.domain_tokens) for d, v in val_by_domain.items()}

    max_tokens = cfg.batch_size * seq_len  # few, large forward passes: the minis are launch-bound
    last = [load_checkpoint(build, p, device) for _, p in ckpts[-cfg.joint_last :]]
    search = metrics.cett_ppl(last, ids, p=cfg.p, max_tokens=max_tokens)
    cett = float(search.cett)
    del last
    rows, pareto_rows, freqs, token_ratios = [], [], [], []
    curve_steps = {s for s, _ in ckpts[len(ckpts) - cfg.curve_last :]} if cfg.curve_last > 0 else set()
    for step, path in tqdm(ckpts, desc="probe", disable=not progress):
        model = load_checkpoint(build, path, device)
        dense = metrics.evaluate(model, ids, batch_size=cfg.batch_size)
        thr = metrics.cett_thresholds(model, ids, cett, max_tokens=max_tokens)
        ev = metrics.evaluate(model, ids, thresholds=thr, batch_size=cfg.batch_size)
        row = dict(
            step=step,
            tokens=step * tokens_per_step,
            cett=cett,
            activation_ratio=ev.activation_ratio,
            ppl=ev.ppl,
            dense_ppl=dense.ppl,
            ppl_ratio=ev.ppl / dense.ppl,
            loss=dense.loss,
            zero_ratio=dense.activation_ratio,
        )
        row |= {f"layer_{i}": r for i, r in enumerate(ev.layer_ratios)}
        row |= {f"zero_layer_{i}": r for i, r in enumerate(dense.layer_ratios)}
        rows.append(row)
        sweeps = (("topk_token", cfg.topk_values), ("fat", cfg.fat_values), ("cett", cfg.cett_values))
        for method, values in sweeps if step in curve_steps else ():
            df = metrics.pareto(model, ids, method, values, max_tokens=max_tokens, dense=dense)
            pareto_rows += [dict(step=step, **r) for r in df.to_dict("records")]
        freqs.append(
            np.stack(
                [
                    metrics.evaluate(model, d, thresholds=thr, batch_size=cfg.batch_size).neuron_frequency
                    for d in dom_ids.values()
                ]
            ).astype(np.float16)
        )
        token_ratios.append(np.asarray(ev.token_ratios[: cfg.token_ratio_tokens], dtype=np.float16))
        del model
    out_dir = Path(out_dir)
    write_csv(out_dir / "sparsity.csv", rows)
    write_csv(out_dir / "pareto.csv", pareto_rows)
    steps = np.array([s for s, _ in ckpts])
    write_npz(out_dir / "neuron_frequency.npz", steps=steps, domains=np.array(list(dom_ids)), frequency=np.stack(freqs))
    write_npz(out_dir / "token_ratios.npz", steps=steps, token_ratios=np.stack(token_ratios))
    write_json(
        out_dir / "cett.json",
        dict(
            cett=cett,
            p=cfg.p,
            joint_steps=[s for s, _ in ckpts[-cfg.joint_last :]],
            joint_mean_ppl_ratio=float(search.mean_ppl_ratio),
            probe=asdict(cfg),
        ),
    )
    return pd.DataFrame(rows)


def set_top_k(model: PreTrainedModel, k: int) -> None:
    """Route every token of a GraniteMoe model to ``k`` experts from now on."""
    n = model.config.num_local_experts
    if not 1 <= k <= n:
        raise ValueError(f"top-k must be between 1 and the {n} experts, got {k}")
    for layer in model.model.layers:
        layer.block_sparse_moe.router.top_k = k


def probe_moe_checkpoints(
    build: Callable[[], PreTrainedModel],
    ckpt_dir: Path,
    out_dir: Path,
    val_ids: np.ndarray,
    seq_len: int,
    tokens_per_step: int,
    batch_size: int = 64,
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> pd.DataFrame:
    """Fig. 12's readings of an MoE run: PPL at the trained top-k for every checkpoint (sparsity.csv), and
    for the last one PPL against the number of experts a token is routed to, k = 1 .. E/2 (pareto.csv).

    An MoE's activation ratio is k / E: every neuron of a routed expert counts as active, whatever its
    activation value (the paper varies MoE sparsity by the number of activated experts)."""
    device = torch.device(device)
    ckpts = checkpoint_files(ckpt_dir)
    if not ckpts:
        raise ValueError(f"no checkpoints in {ckpt_dir}")
    ids = windows(val_ids, seq_len)
    rows, pareto_rows = [], []
    for i, (step, path) in enumerate(tqdm(ckpts, desc="probe", disable=not progress)):
        model = load_checkpoint(build, path, device)
        n, k = model.config.num_local_experts, model.config.num_experts_per_tok
        loss = val_loss(model, ids, batch_size, device)
        rows.append(
            dict(
                step=step, tokens=step * tokens_per_step, top_k=k, activation_ratio=k / n, loss=loss, ppl=math.exp(loss)
            )
        )
        for j in range(1, n // 2 + 1) if i == len(ckpts) - 1 else ():
            set_top_k(model, j)
            ppl = math.exp(val_loss(model, ids, batch_size, device))
            pareto_rows.append(
                dict(
                    step=step,
                    method="experts",
                    value=j,
                    activation_ratio=j / n,
                    ppl=ppl,
                    ppl_ratio=ppl / rows[-1]["ppl"],
                )
            )
        del model
    write_csv(Path(out_dir) / "sparsity.csv", rows)
    write_csv(Path(out_dir) / "pareto.csv", pareto_rows)
    return pd.DataFrame(rows)
