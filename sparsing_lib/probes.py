"""End-of-run measurements on a training run's saved checkpoints: the sparsity probes of a dense run and
the expert-count probes of an MoE run.

They run once training is done, on the ``step_XXXXXX.pt`` weights that ``train.train`` saved over the
stable phase (and, after a decay phase, at the run's last step), and write their results into the run folder
through ``runs`` (sparsity.csv, pareto.csv and, for a dense run, cett.json, neuron_frequency.npz and
vocab_ratios.npz; the format is documented in ``runs``).
The per-token probes run on the GPU when the model is there: a hook reads each token's active share of FFN
neurons and adds it to its vocabulary id's sum with one scatter-add per batch.
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
from .capture import Hooks, batches, ffn_layers
from .runs import KEPT_CHECKPOINTS, kept_checkpoints, write_csv, write_json, write_npz, write_vocab_ratios
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
    vocab_tokens: int = 2**20  # probe tokens for the per-vocabulary ratios (validation first, then training)
    kept_checkpoints: int = KEPT_CHECKPOINTS  # checkpoints that get the frequency and per-vocabulary probes
    # Fig. 2 curves, measured on the last ``curve_last`` checkpoints only (the other checkpoints get the
    # CETT-PPL-p% point and the dense reading; the kept ones frequencies and per-vocabulary ratios). FAT-eps
    # runs geometrically up to 2 because a ReLU model's PPL barely moves up to eps = 0.3, so its 1% point
    # needs eps of order 1.
    curve_last: int = 1
    topk_values: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.2, 0.3, 0.5])
    fat_values: list[float] = field(default_factory=lambda: [0.0, 0.01, 0.03, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0, 1.4, 2.0])
    cett_values: list[float] = field(default_factory=lambda: [0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5])
    batch_size: int = 64  # sequences per forward pass (also bounds the activations held per layer)


class VocabAccumulator:
    """Sum and count, per vocabulary id, of a per-token value (the activation ratio), on the device of the
    ids: one scatter-add and one bincount per batch, so a million tokens never leave the GPU."""

    def __init__(self, vocab: int, device: torch.device | str = "cpu"):
        self.vocab = vocab
        self.sums = torch.zeros(vocab, dtype=torch.float64, device=device)
        self.counts = torch.zeros(vocab, dtype=torch.int64, device=device)

    def add(self, values: torch.Tensor, ids: torch.Tensor) -> None:
        """Add ``values[j]`` to the sum of vocabulary id ``ids[j]`` (any shapes with as many elements)."""
        ids = ids.reshape(-1).long()
        if ids.numel() and (int(ids.min()) < 0 or int(ids.max()) >= self.vocab):
            raise ValueError(f"token ids must lie in [0, {self.vocab}), got {int(ids.min())}..{int(ids.max())}")
        self.sums.index_add_(0, ids, values.reshape(-1).to(torch.float64))
        self.counts += torch.bincount(ids, minlength=self.vocab)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """(mean per id, NaN where the id never occurred; occurrences per id) as float64 and int64 arrays."""
        counts = self.counts.cpu().numpy()
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.sums.cpu().numpy() / counts, counts


def vocab_probe_windows(
    val_by_domain: dict[str, np.ndarray], train_ids: np.ndarray | None, tokens: int, seq_len: int
) -> tuple[torch.Tensor, list[str], list[int]]:
    """The per-vocabulary probe's tokens as [n, seq_len] windows, with their sources and tokens per source.

    Each validation domain gives up to an equal share of ``tokens``; when the validation split is too small
    (the book's corpus holds 0.63M validation tokens) the rest comes from the start of the training split,
    which the model has seen: the sources are recorded so a reader can tell. Each source is cut into whole
    windows separately, so no window spans two sources."""
    share = max(seq_len, tokens // max(1, len(val_by_domain)))
    parts = {d: v[:share] for d, v in val_by_domain.items()}
    rest = tokens - sum(len(v) // seq_len * seq_len for v in parts.values())
    if rest >= seq_len and train_ids is not None:
        parts["train"] = train_ids[:rest]
    parts = {k: v for k, v in parts.items() if len(v) >= seq_len}
    if not parts:
        raise ValueError(f"no source holds a whole window of {seq_len} tokens")
    wins = [windows(v, seq_len) for v in parts.values()]
    return torch.cat(wins), list(parts), [w.numel() for w in wins]


@torch.no_grad()
def vocab_ratios(
    model: PreTrainedModel,
    ids: torch.Tensor,
    thresholds: list[float],
    batch_size: int = 64,
    progress: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Per vocabulary id: the activation ratio under ``thresholds`` (CETT; the active share of FFN neurons,
    averaged over layers) averaged over every position of the [n, seq_len] windows ``ids`` where it is the
    input token (NaN where it never is), and its number of occurrences; see ``VocabAccumulator``."""
    device = next(model.parameters()).device
    n_layers = len(ffn_layers(model))
    acc = VocabAccumulator(model.config.vocab_size, device)
    state: dict[str, torch.Tensor] = {}

    def watch(layer: int, a: torch.Tensor, s: torch.Tensor, y: torch.Tensor) -> None:
        share = a.ne(0).float().mean(1)
        state["sum"] = share if layer == 0 else state["sum"] + share
        if layer == n_layers - 1:
            acc.add(state["sum"] / n_layers, state["ids"])

    chunks = list(batches(ids, None, batch_size * ids.shape[-1]))
    with metrics.sparse(model, thresholds), Hooks(model, watch=watch):
        for chunk, _ in tqdm(chunks, desc="vocab ratios", leave=False, disable=not progress):
            state["ids"] = chunk.to(device)
            model.base_model(input_ids=state["ids"])  # the FFNs are all it needs: no vocabulary-wide logits
    return acc.result()


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
    train_ids: np.ndarray | None = None,
    stable_end: int | None = None,
) -> pd.DataFrame:
    """Measure every checkpoint in ``ckpt_dir``; write sparsity.csv, pareto.csv and two .npz files to ``out_dir``.

    CETT-PPL-p%: one CETT value is searched jointly over the last ``cfg.joint_last`` checkpoints up to step
    ``stable_end`` (the end of the stable phase; None: all) with ``metrics.cett_ppl`` and applied to every
    checkpoint through ``metrics.cett_thresholds``, so that the weights after a decay phase are measured with the
    stable phase's threshold and do not move the one the stable-phase curve is read with.
    Also per checkpoint: the dense (zero-threshold) reading and per-layer ratios. At ``cfg.kept_checkpoints``
    of them (``runs.kept_checkpoints``: first, middle, last) also the per-domain, per-layer neuron activation
    frequencies and the per-vocabulary activation ratios over ``cfg.vocab_tokens`` probe tokens
    (``vocab_probe_windows``; ``train_ids`` tops up a validation split too small), both under the CETT
    thresholds. The last ``cfg.curve_last`` checkpoints also get Top-k, FAT-ε and CETT sweeps (pareto.csv,
    Fig. 2's curves).
    """
    device = torch.device(device)
    ckpts = checkpoint_files(ckpt_dir)
    if not ckpts:
        raise ValueError(f"no checkpoints in {ckpt_dir}")
    ids = windows(val_ids, seq_len)
    dom_ids = {d: windows(v, seq_len, cfg.domain_tokens) for d, v in val_by_domain.items()}
    vocab_ids, sources, source_tokens = vocab_probe_windows(val_by_domain, train_ids, cfg.vocab_tokens, seq_len)
    kept = {ckpts[i][0] for i in kept_checkpoints(len(ckpts), cfg.kept_checkpoints)}

    max_tokens = cfg.batch_size * seq_len  # few, large forward passes: the minis are launch-bound
    joint = [(s, p) for s, p in ckpts if stable_end is None or s <= stable_end][-cfg.joint_last :]
    last = [load_checkpoint(build, p, device) for _, p in joint]
    search = metrics.cett_ppl(last, ids, p=cfg.p, max_tokens=max_tokens)
    cett = float(search.cett)
    del last
    rows, pareto_rows, freqs, means, counts = [], [], [], [], None
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
        if step in kept:
            freqs.append(
                np.stack(
                    [
                        metrics.evaluate(model, d, thresholds=thr, batch_size=cfg.batch_size).neuron_frequency
                        for d in dom_ids.values()
                    ]
                ).astype(np.float16)
            )
            mean, counts = vocab_ratios(model, vocab_ids, thr, cfg.batch_size, progress)
            means.append(mean.astype(np.float16))
        del model
    out_dir = Path(out_dir)
    write_csv(out_dir / "sparsity.csv", rows)
    write_csv(out_dir / "pareto.csv", pareto_rows)
    steps = np.array(sorted(kept), dtype=np.int64)
    write_npz(out_dir / "neuron_frequency.npz", steps=steps, domains=np.array(list(dom_ids)), frequency=np.stack(freqs))
    write_vocab_ratios(out_dir, steps, means, counts, sources, source_tokens)
    write_json(
        out_dir / "cett.json",
        dict(
            cett=cett,
            p=cfg.p,
            joint_steps=[s for s, _ in joint],
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
