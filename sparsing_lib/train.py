"""WSD pre-training of the mini models, saving the stable-phase checkpoints that ``probes`` measures.

The recipe follows the paper: AdamW (0.9, 0.95), weight decay 0.1, gradient clipping 1.0, a
warmup-stable-decay schedule (transformers' ``get_wsd_schedule``), muP learning rates for hidden
matrices (lr / width_mult, MiniCPM-style), bf16 autocast on GPU, torch.compile, fused AdamW.
Training data is a pre-tokenised uint16 array held on the device; each epoch visits its
non-overlapping windows in a fresh seeded order, so a resumed run sees exactly the batches it would have.
Under ``torchrun`` each rank trains on its share of every global batch (``distributed``), so one process
and N processes take the same steps on the same tokens.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm
from transformers import AttentionInterface, PreTrainedModel, get_wsd_schedule
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface
from transformers.utils.output_capturing import maybe_install_capturing_hooks

from .checks import check_choice
from .distributed import World, reduce_log, shard, wrap
from .models import load_balancing_loss, width_mult
from .paths import H200_BF16_FLOPS
from .runs import write_csv
from .train_config import TrainConfig


def checkpoint_path(ckpt_dir: Path | str, step: int) -> Path:
    """Where the weights after ``step`` are saved; ``probes.checkpoint_files`` lists them back by this name."""
    return Path(ckpt_dir) / f"step_{step:06d}.pt"


class Batches:
    """Deterministic epoch-shuffled windows of ``seq_len + 1`` tokens from a token array on ``device``.

    Each epoch's permutation is uploaded once; a step only slices and gathers on the device, so the
    host never waits for the GPU (a per-step host-to-device copy would serialise CPU and GPU)."""

    def __init__(self, ids: np.ndarray, seq_len: int, batch_size: int, seed: int, device: torch.device):
        self.ids = torch.from_numpy(ids.astype(np.int64)).to(device)
        self.seq_len, self.batch_size, self.seed = seq_len, batch_size, seed
        self.n_windows = (len(ids) - 1) // seq_len
        if self.n_windows < batch_size:
            raise ValueError(f"corpus of {len(ids)} tokens has fewer than {batch_size} windows of {seq_len}")
        self._perms: dict[int, torch.Tensor] = {}
        self._offsets = torch.arange(seq_len + 1, device=device)

    def epoch_of(self, step: int) -> float:
        return step * self.batch_size / self.n_windows

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perms:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_windows)
            self._perms = {e: p for e, p in self._perms.items() if e >= epoch - 1}
            self._perms[epoch] = torch.from_numpy(perm).to(self.ids.device)
        return self._perms[epoch]

    def _window_ids(self, step: int) -> torch.Tensor:
        start, stop = step * self.batch_size, (step + 1) * self.batch_size
        parts = []
        while start < stop:
            epoch, pos = divmod(start, self.n_windows)
            take = min(stop - start, self.n_windows - pos)
            parts.append(self._perm(epoch)[pos : pos + take])
            start += take
        return parts[0] if len(parts) == 1 else torch.cat(parts)

    def __call__(self, step: int, part: slice = slice(None)) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets of global batch ``step``, or of its rows ``part`` (one rank's share)."""
        rows = self.ids[self._window_ids(step)[part, None] * self.seq_len + self._offsets]
        return rows[:, :-1], rows[:, 1:]


def windows(ids: np.ndarray, seq_len: int, max_tokens: int | None = None) -> torch.Tensor:
    """Non-overlapping [n, seq_len] int64 windows from the start of ``ids`` (at most ``max_tokens``)."""
    n = len(ids) // seq_len
    if max_tokens is not None:
        n = min(n, max(1, max_tokens // seq_len))
    if n == 0:
        raise ValueError(f"{len(ids)} tokens are fewer than one window of {seq_len}")
    return torch.from_numpy(ids[: n * seq_len].astype(np.int64)).view(n, seq_len)


def make_optimizer(model: PreTrainedModel, cfg: TrainConfig, fused: bool) -> torch.optim.AdamW:
    """AdamW with muP groups: hidden matrices at lr / width_mult, embeddings at lr, norms without decay."""
    matrices, embeddings, vectors = [], [], []
    for name, p in model.named_parameters():
        (embeddings if "embed_tokens" in name else matrices if p.ndim >= 2 else vectors).append(p)
    groups = [
        dict(params=matrices, lr=cfg.lr / width_mult(model), weight_decay=cfg.weight_decay),
        dict(params=embeddings, lr=cfg.lr, weight_decay=cfg.weight_decay),
        dict(params=vectors, lr=cfg.lr, weight_decay=0.0),
    ]
    return torch.optim.AdamW(groups, betas=cfg.betas, fused=fused)


IGNORE_INDEX = -100  # F.cross_entropy's default: targets equal to it add nothing to the loss or its count
CHUNKED_LOSS_MODELS = ("granite", "granitemoe", "llama")  # whose logits are lm_head(last hidden) / logits_scaling
CAUSAL_ATTENTION = "sdpa_causal"


def _chunk_losses(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    scaling: float,
    chunk: int,
    dtype: torch.dtype,
    grads: bool,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """Summed cross-entropy of the logits ``(hidden @ weight.T) / scaling`` and, if ``grads``, its gradients with
    respect to ``hidden`` and ``weight``, one chunk of tokens at a time. Matmuls run in ``dtype`` (bf16 on GPU),
    the softmax and every sum in at least float32; ignored targets contribute neither loss nor gradient."""
    acc = torch.promote_types(hidden.dtype, torch.float32)
    w = weight.to(dtype)
    vocab = torch.arange(weight.shape[0], device=weight.device)
    loss = hidden.new_zeros((), dtype=acc)
    grad_h, grad_w = [], torch.zeros(weight.shape, dtype=acc, device=weight.device)
    for start in range(0, len(hidden), chunk):
        h, t = hidden[start : start + chunk].to(dtype), targets[start : start + chunk]
        logits = (h @ w.T).to(acc) / scaling
        keep = t != IGNORE_INDEX
        t = torch.where(keep, t, 0)
        lse = torch.logsumexp(logits, -1)
        loss = loss + torch.where(keep, lse - logits.gather(1, t[:, None]).squeeze(1), 0.0).sum()
        if grads:  # d loss / d logits = softmax - one-hot(target), times the 1 / scaling of the logits
            g = (torch.exp(logits - lse[:, None]) - (vocab == t[:, None]).to(acc)) * (keep.to(acc) / scaling)[:, None]
            g = g.to(dtype)
            grad_h.append(g @ w)
            grad_w = grad_w + (g.T @ h).to(acc)
    if not grads:
        return loss, None, None
    return loss, torch.cat(grad_h).to(hidden.dtype), grad_w.to(weight.dtype)


class _ChunkedLoss(torch.autograd.Function):
    """The summed loss of ``_chunk_losses`` with its gradients computed in the forward pass: a chunk's logits
    live only while that chunk is processed, and the backward only scales the stored gradients, so no logits
    are stored for the backward and none are recomputed (the matmul FLOPs equal the unchunked loss's)."""

    @staticmethod
    def forward(ctx: torch.autograd.function.FunctionCtx, *args) -> torch.Tensor:
        # args: _chunk_losses's (hidden, weight, targets, scaling, chunk, dtype); backward returns one per arg
        loss, grad_h, grad_w = _chunk_losses(*args, grads=True)
        ctx.save_for_backward(grad_h, grad_w)
        return loss

    @staticmethod
    def backward(ctx: torch.autograd.function.FunctionCtx, grad_loss: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        grad_h, grad_w = ctx.saved_tensors
        return grad_h * grad_loss, grad_w * grad_loss, None, None, None, None


def chunked_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    scaling: float = 1.0,
    chunk: int = 8192,
    reduction: str = "mean",
    dtype: torch.dtype | None = None,
) -> torch.Tensor:
    """``F.cross_entropy((hidden @ weight.T) / scaling, targets)`` for hidden states [n, d], an output embedding
    [V, d] and targets [n], without the [n, V] logits: they are formed ``chunk`` tokens at a time, in ``dtype``
    (default: the hidden states'), reduced in float32 and dropped. The compiled unchunked loss never writes float32
    logits, but it still writes the bf16 logits and their gradient (2 bytes × n × V each, 1.6 GB at 65,536 × 12,288)
    and keeps the logits for the backward; a narrow model's hidden matrices are small beside them."""
    check_choice("reduction", reduction, ("mean", "sum"))
    dtype = dtype or hidden.dtype
    if torch.is_grad_enabled() and (hidden.requires_grad or weight.requires_grad):
        total = _ChunkedLoss.apply(hidden, weight, targets, scaling, chunk, dtype)
    else:
        total = _chunk_losses(hidden, weight, targets, scaling, chunk, dtype, grads=False)[0]
    return total if reduction == "sum" else total / (targets != IGNORE_INDEX).sum()


def lm_loss(
    model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, reduction: str = "mean", loss_chunk: int = 0
) -> torch.Tensor:
    """Next-token cross-entropy of ``model`` on inputs ``x`` and targets ``y`` ([b, T] each), bf16 autocast on
    CUDA, the softmax in fp32. Compiled as one graph with the model (``torch.compile(lm_loss)``), the fp32
    logits are never written out, which matters when the vocabulary is wide and the model narrow.
    ``loss_chunk`` > 0 takes the model's last hidden states instead and computes the loss of the same logits
    (``lm_head`` output / ``logits_scaling``, the muP scaling Granite applies) with ``chunked_cross_entropy``,
    so that not even the bf16 logits of the whole batch are formed.
    An MoE model in training mode adds its routers' load-balancing loss × ``config.router_aux_loss_coef``."""
    core = getattr(model, "module", model)  # the model itself under DistributedDataParallel
    balance = model.training and bool(getattr(core.config, "num_local_experts", 0))
    cuda = x.device.type == "cuda"
    if loss_chunk and core.config.model_type not in CHUNKED_LOSS_MODELS:
        raise ValueError(f"the chunked loss knows the logits of {CHUNKED_LOSS_MODELS}, not {core.config.model_type}")
    with torch.autocast(x.device.type, torch.bfloat16, enabled=cuda):
        # chunked: through the model's own forward (DDP's gradient hooks need it), keeping one position's logits
        out = model(input_ids=x, output_hidden_states=True, logits_to_keep=1) if loss_chunk else model(input_ids=x)
    if loss_chunk:
        head, scaling = core.get_output_embeddings().weight, getattr(core.config, "logits_scaling", 1.0)
        hidden = out.hidden_states[-1].flatten(0, 1)  # after the final norm: what lm_head receives
        dtype = torch.bfloat16 if cuda else None
        loss = chunked_cross_entropy(hidden, head, y.flatten(), scaling, loss_chunk, reduction, dtype)
    else:
        loss = F.cross_entropy(out.logits.float().flatten(0, 1), y.flatten(), reduction=reduction)
    return loss + core.config.router_aux_loss_coef * load_balancing_loss(core) if balance else loss


def loss_function(cfg: TrainConfig, compiled: bool) -> Callable:
    """The training loss as ``train_step`` calls it: ``lm_loss`` with the recipe's loss options, compiled in
    ``cfg.compile_mode`` if ``compiled``. The trainer and the benchmarks build it here, so both time one step."""
    fn = functools.partial(lm_loss, loss_chunk=cfg.loss_chunk) if cfg.loss_chunk else lm_loss
    return torch.compile(fn, mode=cfg.compile_mode) if compiled else fn


def _causal_mask(*args: object, attention_mask: torch.Tensor | None = None, **kwargs: object) -> None:
    """Mask builder of ``CAUSAL_ATTENTION``: no mask tensor at all, so SDPA runs with ``is_causal``. A padding
    mask cannot be honoured that way and is refused rather than dropped."""
    if attention_mask is not None:
        raise ValueError(f"attention {CAUSAL_ATTENTION!r} takes whole unpadded sequences only, not an attention_mask")


def use_causal_attention(model: PreTrainedModel) -> str:
    """Switch ``model`` to SDPA with ``is_causal`` and no mask tensor; return the implementation it had.

    Under torch.compile transformers cannot tell that default position ids hold no packed sequences, so it builds
    a [b, 1, T, T] mask for every forward, and SDPA with a mask tensor cannot use its flash kernel (nor skip the
    masked half of the scores). Training batches are whole windows with default positions, for which the causal
    flag alone is the same attention. Restore with ``model.set_attn_implementation(previous)``."""
    AttentionInterface.register(CAUSAL_ATTENTION, sdpa_attention_forward)
    AttentionMaskInterface.register(CAUSAL_ATTENTION, _causal_mask)
    previous = model.config._attn_implementation
    model.set_attn_implementation(CAUSAL_ATTENTION)
    return previous


def prepare_model(model: PreTrainedModel, cfg: TrainConfig) -> str:
    """Apply ``cfg``'s options that live on the model before the loss is compiled; return the attention
    implementation to restore after training (``model.set_attn_implementation``). The chunked loss reads the
    last hidden states through transformers' output capturing, whose hooks are installed on first use under a
    lock that torch.compile cannot trace (three graph breaks, then a recompilation); installed here, the step
    compiles to one graph."""
    previous = use_causal_attention(model) if cfg.causal_attention else model.config._attn_implementation
    if cfg.loss_chunk:
        maybe_install_capturing_hooks(model)
    return previous


def train_step(
    model: torch.nn.Module,
    loss_fn: Callable,
    opt: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    grad_clip: float,
    chunks: int = 1,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One optimiser step on batch (x, y): loss, backward, gradient clipping, update. Returns the detached
    loss and the pre-clipping gradient norm (device tensors, no synchronisation). ``chunks`` > 1 accumulates
    the gradient over that many equal micro-batches (under DDP, synchronising only on the last), which is
    the same mean gradient as one pass over the whole batch."""
    if chunks == 1:  # no extra kernels: the minis are launch-bound
        loss = loss_fn(model, x, y)
        loss.backward()
        total = loss.detach()
    else:
        total = torch.zeros((), device=x.device)
        for i, (xc, yc) in enumerate(zip(x.chunk(chunks), y.chunk(chunks))):
            sync = i == chunks - 1 or not hasattr(model, "no_sync")
            with contextlib.nullcontext() if sync else model.no_sync():
                loss = loss_fn(model, xc, yc) / chunks
                loss.backward()
            total += loss.detach()
    gnorm = torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    opt.step()
    opt.zero_grad(set_to_none=True)
    return total, gnorm


@torch.no_grad()
def val_loss(model: torch.nn.Module, val: torch.Tensor, batch_size: int, device: torch.device) -> float:
    """Mean next-token loss over the rows of ``val`` ([n, T] int64); leaves ``model`` in training mode."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(val), batch_size):
        x = val[i : i + batch_size].to(device)
        total += lm_loss(model, x[:, :-1], x[:, 1:], reduction="sum").item()
        count += x[:, 1:].numel()
    model.train()
    return total / count


def train(
    model: PreTrainedModel,
    train_ids: np.ndarray,
    val_ids: np.ndarray,
    cfg: TrainConfig,
    out_dir: Path | None = None,
    ckpt_dir: Path | None = None,
    time_limit: float | None = None,
    flops_per_token: float | None = None,
    progress: bool = True,
    world: World = World(),
) -> dict:
    """Train ``model`` in place; return a summary dict with ``status`` done | paused | diverged.

    ``out_dir`` receives metrics.csv (rewritten atomically at every log); ``ckpt_dir`` receives
    ``step_XXXXXX.pt`` weights at ``cfg.checkpoint_steps`` and ``state.pt`` (model, optimizer, schedule,
    step) for resuming. A run found there is resumed. ``time_limit`` (seconds) pauses the run at the
    next log step after it is exceeded, saving ``state.pt``. A non-finite loss, or a loss above the
    first logged one after warm-up, stops the run with status ``diverged``.

    Under several ranks (``world``, from ``distributed.start``) each trains on its share of every global
    batch; rank 0 alone writes files, and every rank resumes from the same ``state.pt``. A state saved under
    another number of ranks is refused: the run would continue correctly (the same global batches), but its
    throughput records would mix two set-ups without saying so.
    """
    device = next(model.parameters()).device
    cuda = device.type == "cuda"
    torch.manual_seed(cfg.seed)
    opt = make_optimizer(model, cfg, fused=cuda and cfg.fused)
    sched = get_wsd_schedule(opt, cfg.warmup_steps, cfg.decay_steps, num_training_steps=cfg.steps, decay_type="linear")
    batches = Batches(train_ids, cfg.seq_len, cfg.batch_size, cfg.seed, device)
    part = shard(cfg.batch_size, world)
    local = part.stop - part.start
    chunks = local // cfg.micro_batch if cfg.micro_batch else 1
    if chunks * (cfg.micro_batch or local) != local:
        raise ValueError(f"micro-batch {cfg.micro_batch} does not divide the {local} sequences of one rank's share")
    val = windows(val_ids, cfg.seq_len + 1, cfg.eval_tokens)
    loss_fn = loss_function(cfg, compiled=cuda and cfg.compile)
    attention = prepare_model(model, cfg)  # the implementation to restore after the loop

    rows: list[dict] = []
    step, start_loss = 0, None
    state_path = Path(ckpt_dir) / "state.pt" if ckpt_dir else None
    if state_path and state_path.exists():
        state = torch.load(state_path, map_location=device, weights_only=False)
        if state.get("world_size", 1) != world.size:
            raise ValueError(
                f"{state_path} was saved by a run on {state.get('world_size', 1)} process(es) and this one has "
                f"{world.size}; resume it with torchrun --nproc_per_node {state.get('world_size', 1)} (or with "
                "plain python for 1), or start afresh with another --ckpt"
            )
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        step, rows, start_loss = state["step"], state["rows"], state["start_loss"]
    net = wrap(model, world, device)  # after loading: DDP starts every rank from rank 0's weights
    if not world.main:
        ckpt_dir = out_dir = None  # rank 0 writes everything
    if ckpt_dir:
        Path(ckpt_dir).mkdir(parents=True, exist_ok=True)
    if out_dir:
        Path(out_dir).mkdir(parents=True, exist_ok=True)

    def save_state() -> None:
        if state_path and world.main:
            tmp = state_path.with_suffix(".tmp")
            torch.save(
                dict(
                    model=model.state_dict(),
                    optimizer=opt.state_dict(),
                    scheduler=sched.state_dict(),
                    step=step,
                    rows=rows,
                    start_loss=start_loss,
                    world_size=world.size,
                ),
                tmp,
            )
            os.replace(tmp, state_path)

    ckpts = set(cfg.checkpoint_steps)
    t0 = time.perf_counter()
    t_log, step_log = t0, step
    loss_sum = torch.zeros((), device=device)
    gnorm_sum = torch.zeros((), device=device)
    status, train_time = "done", 0.0
    model.train()
    bar = tqdm(total=cfg.steps, initial=step, disable=not (progress and world.main), desc="train", mininterval=5)
    while step < cfg.steps:
        x, y = batches(step, part)
        loss, gnorm = train_step(net, loss_fn, opt, x, y, cfg.grad_clip, chunks)
        sched.step()
        loss_sum += loss
        gnorm_sum += gnorm
        step += 1
        bar.update()
        at_ckpt = step in ckpts
        if step % cfg.log_every == 0 or at_ckpt or step == cfg.steps:
            n = step - step_log
            late = time_limit is not None and time.perf_counter() - t0 > time_limit and step < cfg.steps
            loss_total, gnorm_total, late = reduce_log(loss_sum, gnorm_sum, late, world)  # synchronises
            train_loss = loss_total / n
            now = time.perf_counter()
            row = dict(
                step=step,
                tokens=step * cfg.tokens_per_step,
                epoch=round(batches.epoch_of(step), 4),
                lr=sched.get_last_lr()[1],
                train_loss=train_loss,
                grad_norm=gnorm_total / n,
                tokens_per_s=n * cfg.tokens_per_step / (now - t_log),
                val_loss=float("nan"),
            )
            train_time += now - t_log
            if start_loss is None:
                start_loss = train_loss
            diverged = not math.isfinite(train_loss) or (step > cfg.warmup_steps and train_loss > start_loss)
            if at_ckpt and not diverged and world.main:
                row["val_loss"] = val_loss(model, val, cfg.batch_size, device)  # eager: no recompile for eval
                if ckpt_dir:
                    torch.save(model.state_dict(), checkpoint_path(ckpt_dir, step))
            rows.append(row)
            bar.set_postfix(loss=f"{train_loss:.3f}")
            loss_sum.zero_(), gnorm_sum.zero_()
            if out_dir:
                write_csv(Path(out_dir) / "metrics.csv", rows)
            if diverged:
                status = "diverged"
                break
            if at_ckpt or late:
                save_state()
            if late:
                status = "paused"
                break
            t_log, step_log = time.perf_counter(), step
    bar.close()
    if model.config._attn_implementation != attention:
        model.set_attn_implementation(attention)
    measured = [r for r in rows if r["step"] > cfg.log_every]  # skip the compile-dominated first interval
    tok_s = float(np.median([r["tokens_per_s"] for r in measured])) if measured else float("nan")
    summary = dict(
        status=status,
        step=step,
        steps=cfg.steps,
        tokens=step * cfg.tokens_per_step,
        epochs=batches.epoch_of(step),
        corpus_tokens=int(len(train_ids)),
        final_train_loss=rows[-1]["train_loss"] if rows else float("nan"),
        tokens_per_s=tok_s,
        session_train_seconds=train_time,
        world_size=world.size,
    )
    if flops_per_token:  # per GPU: the global rate shared by the ranks
        summary["mfu"] = tok_s * flops_per_token / (H200_BF16_FLOPS * world.size) if cuda else float("nan")
    return summary
