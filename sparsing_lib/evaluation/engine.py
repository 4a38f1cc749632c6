"""Score a Hugging Face causal LM on evaluation items: log-likelihoods, multiple choice, cloze, greedy generation.

Tokenisation follows lm-evaluation-harness (``HFLM.loglikelihood``) so that scores can be checked against it
(tests/test_eval_parity.py): trailing spaces of the context move to the continuation; context + continuation
is encoded whole and the continuation is what follows the context's own encoding; an empty context is
replaced by the BOS token (EOS where there is none); sequences longer than the model's context lose tokens
from the left, and every such item is counted.

Speed is a design goal (the whole suite, several sparsity settings, in minutes on one GPU): items are sorted
by length so that padding is small, batched up to a token budget, left-padded so that every continuation
ends in the last column (only those columns' logits are computed and normalised), run under bf16 autocast
on CUDA, and results stay on the device until the end, so no batch waits for the host. The host-side
preparation (tokenise, truncate, merge requests with the same input, pad into pinned tensors) is done once
per task and reused by every sparsity setting. Greedy generation runs its own loop (``decoding``), in batches
sorted by prompt length and bounded by the size of their KV cache (``CACHE_TOKENS``).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from . import decoding
from .items import Choice, Cloze, Generate, Program

MAX_TOKENS = 1 << 16  # default padded tokens per log-likelihood forward pass
# Generation keeps only the last position's logits, so its batches are bounded by the KV cache instead:
# rows x (longest prompt + max_new_tokens) positions, about 9.4 KB each in bf16 on the 336x7 mini (10 GB).
CACHE_TOKENS = 1 << 20


@dataclass
class LogLikelihoods:
    """Per (context, continuation) pair: summed log-probability of the continuation, whether greedy decoding
    reproduces it, its number of tokens, and whether the sequence was cut from the left."""

    logprob: np.ndarray
    is_greedy: np.ndarray
    n_tokens: np.ndarray
    truncated: np.ndarray


@dataclass
class Generations:
    """Per prompt: the completion (cut before the first stop string), whether the prompt was cut, and the
    number of new tokens decoded for it (``decoding.greedy``)."""

    text: list[str]
    truncated: np.ndarray
    n_tokens: np.ndarray


def eos_id(tokenizer) -> int:
    """The tokenizer's end-of-text id: generation stops and pads with it, and an empty context starts with it."""
    if tokenizer.eos_token_id is not None:
        return int(tokenizer.eos_token_id)
    tid = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if isinstance(tid, int) and tid != tokenizer.unk_token_id and tid is not None and tid >= 0:
        return tid
    raise ValueError(
        "the tokenizer has no end-of-text token (eos_token is None and '<|endoftext|>' is not in its vocabulary): "
        "set tokenizer.eos_token before evaluating"
    )


def max_context(model: nn.Module, tokenizer=None) -> int:
    """The model's context length: the config's position limit, else the tokenizer's, else 2048."""
    cfg = model.config
    for name in ("max_position_embeddings", "n_positions", "n_ctx", "seq_length"):
        if isinstance(getattr(cfg, name, None), int):
            return int(getattr(cfg, name))
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, int) and limit < 10**9 else 2048


def _encode(tokenizer, texts: Sequence[str]) -> list[list[int]]:
    return tokenizer(list(texts))["input_ids"] if texts else []


@functools.lru_cache(maxsize=4)
def _encode_prompts(tokenizer, prompts: tuple[str, ...]) -> list[list[int]]:
    return _encode(tokenizer, prompts)


def encode_pairs(tokenizer, pairs: Sequence[tuple[str, str]]) -> list[tuple[list[int], list[int]]]:
    """(context tokens, continuation tokens) per pair, by lm-evaluation-harness's convention (module doc)."""
    prefix = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos_id(tokenizer)
    moved = []
    for ctx, cont in pairs:
        n = len(ctx) - len(ctx.rstrip())
        moved.append((ctx[: len(ctx) - n], ctx[len(ctx) - n :] + cont) if n else (ctx, cont))
    full = [i for i, (c, _) in enumerate(moved) if c]
    whole = _encode(tokenizer, [moved[i][0] + moved[i][1] for i in full])
    unique = list(dict.fromkeys(moved[i][0] for i in full))  # options of one item share their context
    encoded = dict(zip(unique, _encode(tokenizer, unique)))
    ctxs = [encoded[moved[i][0]] for i in full]
    empty = [i for i, (c, _) in enumerate(moved) if not c]
    bare = tokenizer([moved[i][1] for i in empty], add_special_tokens=False)["input_ids"] if empty else []
    out: list = [None] * len(pairs)
    for i, w, c in zip(full, whole, ctxs):
        out[i] = (c, w[len(c) :])
    for i, cont in zip(empty, bare):
        out[i] = ([prefix], cont) if cont[0] != prefix else (cont[:1], cont[1:])
    return out


def _batches(lengths: Sequence[int], batch_size: int, max_tokens: int, extra: int = 0) -> list[list[int]]:
    """Indices sorted by length (longest first) cut into batches of at most ``batch_size`` rows and
    ``max_tokens`` padded tokens (``extra`` tokens per row added to the longest length)."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    out, cur = [], []
    for i in order:
        width = lengths[cur[0]] + extra if cur else lengths[i] + extra
        if cur and (len(cur) >= batch_size or (len(cur) + 1) * width > max_tokens):
            out.append(cur)
            cur = []
        cur.append(i)
    return out + [cur] if cur else out


def _autocast(device: torch.device):
    enabled = device.type == "cuda"
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled)


def _keeps_logits(model: nn.Module) -> bool:
    return "logits_to_keep" in inspect.signature(model.forward).parameters


def _left_pad(rows: Sequence[Sequence[int]], pad: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows padded on the left to one width: every sequence ends in the last column (CPU tensors)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for k, r in enumerate(rows):
        ids[k, width - len(r) :] = torch.tensor(r, dtype=torch.long)
        mask[k, width - len(r) :] = 1
    return ids, mask


@torch.no_grad()
def loglikelihood(
    model: nn.Module,
    tokenizer,
    pairs: Sequence[tuple[str, str]],
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
    max_tokens: int = MAX_TOKENS,
) -> LogLikelihoods:
    """Summed log-probability of each continuation given its context, and whether it is the greedy one.

    ``batch_size`` caps the rows and ``max_tokens`` the padded tokens of one forward pass."""
    from tqdm.auto import tqdm

    device = torch.device(device) if device is not None else next(model.parameters()).device
    plan = _plan(tokenizer, tuple(pairs), max_context(model, tokenizer), batch_size, max_tokens)
    logprob = torch.zeros(len(pairs), dtype=torch.float64, device=device)
    greedy = torch.zeros(len(pairs), dtype=torch.bool, device=device)
    keep = _keeps_logits(model)
    bar = tqdm(total=len(pairs), disable=not progress, desc="log-likelihood", leave=False)
    for batch in plan.batches:
        ids, mask, target, tmask, row, index = (t.to(device, non_blocking=True) for t in batch)
        width = target.shape[1]
        pos = (mask.cumsum(1) - 1).clamp_min(0)
        kwargs = {"logits_to_keep": width} if keep else {}
        with _autocast(device):
            logits = model(input_ids=ids, attention_mask=mask, position_ids=pos, **kwargs).logits[:, -width:]
        lse = _logsumexp(logits)  # [rows, width]; log-softmax = logit - lse, never formed for the whole vocabulary
        cols = torch.arange(width, device=device)
        picked = logits[row[:, None], cols, target].float() - lse[row]  # [requests, width]
        logprob[index] = (picked * tmask).sum(1).double()
        greedy[index] = ((logits.argmax(-1)[row] == target) | ~tmask).all(1)
        bar.update(len(index))
    bar.close()
    return LogLikelihoods(logprob.cpu().numpy(), greedy.cpu().numpy(), plan.n_tokens, plan.truncated)


def _logsumexp(logits: torch.Tensor, chunk_elements: int = 1 << 28) -> torch.Tensor:
    """Log-sum-exp over the vocabulary in float32, a few rows at a time: a float32 copy of a whole GPU batch's
    logits (thousands of rows times the vocabulary) would need tens of GiB."""
    step = max(1, chunk_elements // max(1, logits[0].numel()))
    return torch.cat([torch.logsumexp(part.float(), -1) for part in logits.split(step)])


@dataclass
class _Plan:
    batches: list[tuple[torch.Tensor, ...]]  # ids, mask, target, target mask, request row, request index
    n_tokens: np.ndarray
    truncated: np.ndarray


@functools.lru_cache(maxsize=2)
def _plan(tokenizer, pairs: tuple[tuple[str, str], ...], limit: int, batch_size: int, max_tokens: int) -> _Plan:
    """The host-side work of ``loglikelihood``, done once per task and reused by every setting: encode,
    truncate, merge requests with the same input (e.g. MMLU's four one-token answers after one prompt share a
    forward pass), sort and pad into pinned CPU tensors."""
    pad = eos_id(tokenizer)
    enc = encode_pairs(tokenizer, pairs)
    if any(len(c) == 0 for _, c in enc):
        raise ValueError("a continuation encodes to no tokens: nothing to score")
    seqs = [tuple((c + k)[-(limit + 1) :][:-1]) for c, k in enc]
    conts = [k[-limit:] for _, k in enc]
    rows: dict[tuple, list[int]] = {}
    for i, seq in enumerate(seqs):
        rows.setdefault(seq, []).append(i)
    unique = list(rows)
    batches = []
    for batch in _batches([len(s) for s in unique], batch_size, max_tokens):
        ids, mask = _left_pad([unique[u] for u in batch], pad)
        reqs = [(k, i) for k, u in enumerate(batch) for i in rows[unique[u]]]
        width = max(len(conts[i]) for _, i in reqs)
        target = torch.full((len(reqs), width), pad, dtype=torch.long)
        tmask = torch.zeros((len(reqs), width), dtype=torch.bool)
        for r, (_, i) in enumerate(reqs):
            target[r, width - len(conts[i]) :] = torch.tensor(conts[i])
            tmask[r, width - len(conts[i]) :] = True
        row, index = torch.tensor([k for k, _ in reqs]), torch.tensor([i for _, i in reqs])
        batches.append(tuple(_pinned(t) for t in (ids, mask, target, tmask, row, index)))
    truncated = np.array([len(c) + len(k) > limit + 1 for c, k in enc])
    return _Plan(batches, np.array([len(c) for _, c in enc]), truncated)


def _pinned(t: torch.Tensor) -> torch.Tensor:
    """Page-locked when a GPU is present, so that copies to it are asynchronous."""
    return t.pin_memory() if torch.cuda.is_available() else t


def choice_scores(
    model: nn.Module, tokenizer, items: Sequence[Choice], **kw
) -> tuple[dict[str, np.ndarray], LogLikelihoods]:
    """Per item: ``acc`` (largest summed log-likelihood is gold) and ``acc_norm`` (the same after dividing by
    the continuation's length in characters, as lm-evaluation-harness's ``acc_norm`` does); both 0/1 floats."""
    pairs = [pair for it in items for pair in it.pairs()]
    ll = loglikelihood(model, tokenizer, pairs, **kw)
    acc, norm, k = np.zeros(len(items)), np.zeros(len(items)), 0
    for j, it in enumerate(items):
        lls = ll.logprob[k : k + len(it.continuations)]
        lengths = np.array([float(len(c)) for c in it.continuations])
        acc[j] = float(np.argmax(lls) == it.gold)
        norm[j] = float(np.argmax(lls / lengths) == it.gold)
        k += len(it.continuations)
    return {"acc": acc, "acc_norm": norm}, ll


def cloze_scores(
    model: nn.Module, tokenizer, items: Sequence[Cloze], **kw
) -> tuple[dict[str, np.ndarray], LogLikelihoods]:
    """LAMBADA: ``acc`` is 1 where greedy decoding reproduces every token of the target."""
    ll = loglikelihood(model, tokenizer, [(it.context, it.target) for it in items], **kw)
    return {"acc": ll.is_greedy.astype(float)}, ll


@torch.no_grad()
def generate(
    model: nn.Module,
    tokenizer,
    prompts: Sequence[str],
    stop: Sequence[str],
    max_new_tokens: int,
    batch_size: int = 64,
    device: str | torch.device | None = None,
    progress: bool = False,
    cache_tokens: int = CACHE_TOKENS,
) -> Generations:
    """Greedy completions of ``prompts`` cut at the first stop string (``decoding.greedy``: left-padded batches,
    KV cache, finished rows dropped). Batches hold at most ``batch_size`` rows and ``cache_tokens`` positions
    counted as rows x (longest prompt + ``max_new_tokens``); prompts longer than the context minus
    ``max_new_tokens`` lose tokens from the left and are counted."""
    from tqdm.auto import tqdm

    device = torch.device(device) if device is not None else next(model.parameters()).device
    pad = eos_id(tokenizer)
    room = max_context(model, tokenizer) - max_new_tokens
    if room < 1:
        raise ValueError(f"max_new_tokens={max_new_tokens} leaves no room for a prompt in the model's context")
    enc = _encode_prompts(tokenizer, tuple(prompts))
    truncated = np.array([len(e) > room for e in enc])
    enc = [e[-room:] for e in enc]
    texts: list[str] = [""] * len(prompts)
    counts = np.zeros(len(prompts), dtype=np.int64)
    keep = _keeps_logits(model)
    bar = tqdm(total=len(prompts), disable=not progress, desc="generate", leave=False)
    for batch in _batches([len(e) for e in enc], batch_size, cache_tokens, extra=max_new_tokens):
        ids, mask = (t.to(device) for t in _left_pad([enc[i] for i in batch], pad))
        with _autocast(device):
            done, n_new = decoding.greedy(model, tokenizer, ids, mask, max_new_tokens, stop, pad, keep)
        for i, text, n in zip(batch, done, n_new):
            texts[i], counts[i] = text, n
        bar.update(len(batch))
    bar.close()
    return Generations(texts, truncated, counts)


def completions(model: nn.Module, tokenizer, items: Sequence[Generate | Program], **kw) -> tuple[list[str], np.ndarray]:
    """Greedy completions of Generate/Program items, grouped by (stop strings, max_new_tokens) so that each
    group shares one stopping rule; returned in item order with the truncation flags."""
    groups: dict[tuple, list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((tuple(it.stop), it.max_new_tokens), []).append(i)
    texts: list[str] = [""] * len(items)
    truncated = np.zeros(len(items), dtype=bool)
    for (stop, new), idx in groups.items():
        gen = generate(model, tokenizer, [items[i].prompt for i in idx], stop, new, **kw)
        for k, i in enumerate(idx):
            texts[i], truncated[i] = gen.text[k], gen.truncated[k]
    return texts, truncated
