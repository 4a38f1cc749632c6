"""Greedy decoding of a left-padded batch of prompts with a KV cache, for any Hugging Face causal LM.

Why not ``model.generate``: on a model of a few million parameters a decoding step is a handful of small
kernels, so its time is spent on the host: in ``generate``'s per-step machinery (logits processors, stopping
criteria that decode text, cache bookkeeping) and in every host synchronisation inside the step, each of which
drains the device's queue (and our minis, built with ``use_cache=False`` for training, made ``generate`` run
without a KV cache, recomputing the whole sequence at every step). This loop does only what greedy decoding
needs:

* prefill: one forward of the left-padded prompts with explicit positions, keeping only the last position's
  logits (``logits_to_keep=1`` where the forward accepts it);
* steps: feed the argmax, extend the mask by a column of ones, positions + 1; the token is written into a
  preallocated device tensor, so a step only queues device work and never waits for it (with the
  synchronisation-free hooks of ``metrics.sparsify`` this holds under every sparsity setting too);
* at a few steps (``check_steps``) the new tokens are copied to the host at once, and rows that produced EOS or
  a stop string are marked finished; the batch ends when all are, or at ``max_new_tokens``;
* once ``DROP_SHARE`` of the rows are finished they are dropped from the batch (KV cache, mask, positions, last
  tokens), so that a few long answers do not drag a full batch.

A row's text is its new tokens up to the first EOS, decoded, cut before the first stop string: greedy
decoding followed by ``cut_at_stop``. Stop strings are looked for in the completion only (as in
lm-evaluation-harness); ``generate``'s ``stop_strings`` also match a string that begins in the prompt.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence

import torch
from torch import nn

CHECK_EVERY = 16  # most decoding steps between two looks at the new tokens
FIRST_CHECK = 4  # steps before the first look; the gap doubles up to CHECK_EVERY (short answers stop early)
DROP_SHARE = 0.25  # finished share of a batch's rows at which they are dropped from it


def cut_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to (not including) the earliest occurrence of any stop string."""
    cuts = [text.find(s) for s in stop if s and s in text]
    return text[: min(cuts)] if cuts else text


def check_steps(max_new_tokens: int) -> list[int]:
    """Numbers of generated tokens after which the host looks at them: FIRST_CHECK, then gaps doubling up to
    CHECK_EVERY, and ``max_new_tokens``. Each look costs one host synchronisation; a row that finished in
    between runs on until the next one."""
    steps, n = [], FIRST_CHECK
    while n < max_new_tokens:
        steps.append(n)
        n += min(n, CHECK_EVERY)
    return steps + [max_new_tokens]


class _Rows:
    """The host's view of a batch: every prompt's new tokens so far and whether it has finished.

    A stop string is searched for in the text of the tokens added since the last look plus enough earlier
    tokens to hold the longest stop string (each token is at least one byte), so the text decoded per look
    does not grow with the completion. Such a window decodes to a substring of the completion's text (at its
    edges a split character may read as U+FFFD), so a match in it is a match in the completion: no row stops
    early. The final text is always decoded whole."""

    def __init__(self, tokenizer, n: int, stops: Sequence[str], eos: int):
        self.tokenizer, self.stops, self.eos = tokenizer, [s for s in stops if s], eos
        self.overlap = max((len(s.encode()) for s in self.stops), default=0)
        self.tokens: list[list[int]] = [[] for _ in range(n)]
        self.finished = [False] * n

    def update(self, live: Sequence[int], chunk: Sequence[Sequence[int]]) -> list[int]:
        """Add ``chunk[k]``, the new tokens of batch row k (prompt ``live[k]``); returns the batch rows still
        running."""
        windows, owners = [], []
        for p, toks in zip(live, chunk):
            if self.finished[p]:  # waits to be dropped from the batch
                continue
            row = self.tokens[p]
            start = max(0, len(row) - self.overlap)
            if self.eos in toks:
                row += toks[: toks.index(self.eos)]
                self.finished[p] = True
            else:
                row += toks
                if self.stops:
                    windows.append(row[start:])
                    owners.append(p)
        for p, text in zip(owners, self.tokenizer.batch_decode(windows) if windows else []):
            self.finished[p] = any(s in text for s in self.stops)
        return [k for k, p in enumerate(live) if not self.finished[p]]

    def texts(self) -> list[str]:
        return [cut_at_stop(t, self.stops) for t in self.tokenizer.batch_decode(self.tokens)]


def new_cache(model: nn.Module) -> tuple[object, dict]:
    """A new KV cache for ``model`` and the keyword arguments by which its forwards fill and then reuse it.
    The config's ``use_cache`` is overridden: our minis are built with it off, for training (with it off,
    ``model.generate`` recomputes the whole sequence at every step)."""
    from transformers import DynamicCache

    cache = DynamicCache(config=model.config)
    key = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"  # 5.2x rename
    return cache, {key: cache, "use_cache": True}


@torch.no_grad()
def greedy(
    model: nn.Module,
    tokenizer,
    ids: torch.Tensor,
    mask: torch.Tensor,
    max_new_tokens: int,
    stops: Sequence[str],
    eos: int,
    keep_logits: bool,
) -> tuple[list[str], list[int]]:
    """Greedy completions of the left-padded prompts ``ids`` (``mask``: 1 on real tokens), on their device;
    the caller sets autocast. Returns per row the text (cut at EOS and at the first stop string) and the number
    of new tokens decoded before the row was seen to finish (EOS excluded; a stop string is noticed at the next
    of ``check_steps``)."""
    if max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
    n, width = ids.shape
    cache, fixed = new_cache(model)
    if keep_logits:
        fixed["logits_to_keep"] = 1
    # With SDPA a prepared 4-D boolean mask is used as given; a 2-D mask with padding would make
    # transformers test on the host, at every step, whether it may drop the mask.
    four_d = getattr(model.config, "_attn_implementation", None) == "sdpa"
    pos = (mask.cumsum(1) - 1).clamp_min(0)
    tok = model(input_ids=ids, attention_mask=mask, position_ids=pos, **fixed).logits[:, -1].argmax(-1)
    pos = pos[:, -1:]
    seen = torch.ones(n, width + max_new_tokens, dtype=torch.bool, device=ids.device)  # mask of prompt + new
    seen[:, :width] = mask.bool()
    new = torch.empty(n, max_new_tokens, dtype=torch.long, device=ids.device)
    rows, live, copied = _Rows(tokenizer, n, stops, eos), list(range(n)), 0
    looks = set(check_steps(max_new_tokens))
    for t in range(max_new_tokens):
        new[:, t] = tok
        if t + 1 in looks:
            keep = rows.update(live, new[:, copied : t + 1].tolist())
            copied = t + 1
            if not keep or t + 1 == max_new_tokens:
                break
            if len(keep) <= (1 - DROP_SHARE) * len(live):
                idx = torch.tensor(keep, device=ids.device)
                cache.batch_select_indices(idx)
                tok, pos, seen, new = tok[idx], pos[idx], seen[idx], new[idx]
                live = [live[k] for k in keep]
        pos = pos + 1
        step = seen[:, : width + t + 1]
        logits = model(
            input_ids=tok[:, None], attention_mask=step[:, None, None] if four_d else step, position_ids=pos, **fixed
        ).logits
        tok = logits[:, -1].argmax(-1)
    return rows.texts(), [len(r) for r in rows.tokens]
