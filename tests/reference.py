"""A deliberately simple float64 implementation of the paper's definitions, to check the fast code against.

Everything here loops over tokens or candidates in the most literal way; it is slow and only for tiny models.
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn

# attribute path from a decoder layer to (FFN module, name of its down projection, name of its activation)
LAYERS = {
    "llama": ("model.layers", "mlp", "down_proj", "act_fn"),
    "granite": ("model.layers", "mlp", "down_proj", "act_fn"),
    "qwen3": ("model.layers", "mlp", "down_proj", "act_fn"),
    "gpt2": ("transformer.h", "mlp", "c_proj", "act"),
    "gpt_neox": ("gpt_neox.layers", "mlp", "dense_4h_to_h", "act"),
    "opt": ("model.decoder.layers", None, "fc2", "activation_fn"),
}
GATED = {"llama", "granite", "qwen3"}


def _get(obj, path):
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def ffn_parts(model: nn.Module) -> list[tuple[nn.Module, nn.Module, np.ndarray]]:
    """(down module, activation module, W_down as float64 [d, d_ff]) for every layer."""
    layers_path, mlp, down, act = LAYERS[model.config.model_type]
    out = []
    for layer in _get(model, layers_path):
        block = layer if mlp is None else getattr(layer, mlp)
        d, a = getattr(block, down), getattr(block, act)
        w = d.weight.detach().double().numpy()
        out.append((d, a, w if isinstance(d, nn.Linear) else w.T))
    return out


def capture(model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None):
    """float64 copy of the model; per layer (a, s, y) of the non-padding tokens, and W_down."""
    m = copy.deepcopy(model).double()
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    parts = ffn_parts(m)
    gated = m.config.model_type in GATED
    seen = [dict() for _ in parts]
    handles = []
    for k, (down, act, _) in enumerate(parts):
        handles.append(
            down.register_forward_hook(lambda mod, args, out, k=k: seen[k].update(a=args[0].detach(), y=out.detach()))
        )
        if gated:
            handles.append(act.register_forward_hook(lambda mod, args, out, k=k: seen[k].update(s=out.detach())))
    with torch.no_grad():
        m(input_ids=input_ids, attention_mask=mask)
    for h in handles:
        h.remove()
    keep = mask.reshape(-1).bool().numpy()
    layers = []
    for k, (_, _, w) in enumerate(parts):
        flat = {n: v.reshape(-1, v.shape[-1]).numpy()[keep] for n, v in seen[k].items()}
        layers.append(dict(a=flat["a"], s=flat.get("s", flat["a"]), y=flat["y"], w=w))
    return layers


def cett(layer: dict, t: float) -> float:
    """CETT(t) = mean over tokens of ‖Σ_{i: n_i < t} a_i W[:, i]‖ / ‖y‖, token by token (0 where y = 0)."""
    a, w, y = layer["a"], layer["w"], layer["y"]
    col = np.linalg.norm(w, axis=0)
    ratios = []
    for j in range(len(a)):
        tail = np.abs(a[j]) * col < t
        err = w[:, tail] @ a[j, tail]
        ny = np.linalg.norm(y[j])
        ratios.append(np.linalg.norm(err) / ny if ny > 0 else 0.0)  # no output: no error to speak of
    return float(np.mean(ratios))


def threshold(layer: dict, target: float) -> float:
    """Largest t with CETT(t) ≤ target, by bisection over the distinct neuron output norms."""
    col = np.linalg.norm(layer["w"], axis=0)
    cands = np.unique(np.abs(layer["a"]) * col)
    if cett(layer, math.inf) <= target:
        return math.inf
    lo, hi = 0, len(cands) - 1  # CETT(cands[0]) = 0 ≤ target; find the last candidate with CETT ≤ target
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cett(layer, cands[mid]) <= target:
            lo = mid
        else:
            hi = mid - 1
    return float(cands[lo])


def sparse_eval(
    model: nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor | None, rule
) -> tuple[float, list[float]]:
    """float64 (mean next-token loss over non-pad pairs, per-layer activation ratios) when
    ``rule(layer, a, s)`` returns the boolean keep-mask of the down-projection input."""
    m = copy.deepcopy(model).double()
    mask = torch.ones_like(input_ids) if attention_mask is None else attention_mask
    parts = ffn_parts(m)
    gated = m.config.model_type in GATED
    gate = {}
    counts = [[0, 0] for _ in parts]
    keep_tok = mask.reshape(-1).bool()
    handles = []

    def pre(mod, args, k):
        a = args[0]
        s = gate.get(k, a)
        keep = rule(k, a, s) & (a != 0)
        sel = keep.reshape(-1, keep.shape[-1])[keep_tok]  # OPT runs its FFN on [batch*seq, d]
        counts[k][0] += int(sel.sum())
        counts[k][1] += sel.numel()
        return (a * keep,)

    for k, (down, act, _) in enumerate(parts):
        handles.append(down.register_forward_pre_hook(lambda mod, args, k=k: pre(mod, args, k)))
        if gated:
            handles.append(act.register_forward_hook(lambda mod, args, out, k=k: gate.__setitem__(k, out)))
    with torch.no_grad():
        logits = m(input_ids=input_ids, attention_mask=mask).logits
    for h in handles:
        h.remove()
    logp = torch.log_softmax(logits, dim=-1)
    total, n = 0.0, 0
    for b in range(input_ids.shape[0]):
        for j in range(input_ids.shape[1] - 1):
            if mask[b, j] and mask[b, j + 1]:
                total -= float(logp[b, j, input_ids[b, j + 1]])
                n += 1
    return total / n, [c / t for c, t in counts]


def cett_rule(model: nn.Module, thresholds):
    cols = [torch.from_numpy(np.linalg.norm(w, axis=0)) for _, _, w in ffn_parts(model)]
    return lambda k, a, s: a.abs() * cols[k] >= thresholds[k]


def fat_rule(eps: float):
    return lambda k, a, s: s.abs() >= eps


def topk_token_rule(frac: float):
    def rule(k, a, s):
        n = max(1, round(frac * s.shape[-1]))
        keep = torch.zeros_like(s, dtype=torch.bool)
        for idx in np.ndindex(*s.shape[:-1]):
            order = torch.argsort(s[idx].abs(), descending=True)
            kth = s[idx].abs()[order[n - 1]]
            keep[idx] = s[idx].abs() >= kth
        return keep

    return rule


SHAPES = {  # family -> (config class, model class, config arguments besides activation and vocabulary)
    "llama": (
        "LlamaConfig",
        "LlamaForCausalLM",
        dict(hidden_size=32, intermediate_size=80, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2),
    ),
    "granite": (
        "GraniteConfig",
        "GraniteForCausalLM",
        dict(
            hidden_size=32,
            intermediate_size=80,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=4,
            embedding_multiplier=4.0,
            residual_multiplier=0.5,
            logits_scaling=2.0,
            attention_multiplier=0.125,
        ),
    ),
    "gpt2": ("GPT2Config", "GPT2LMHeadModel", dict(n_embd=32, n_inner=96, n_layer=2, n_head=4, n_positions=64)),
    "gpt_neox": (
        "GPTNeoXConfig",
        "GPTNeoXForCausalLM",
        dict(
            hidden_size=32, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4, max_position_embeddings=64
        ),
    ),
    "opt": (
        "OPTConfig",
        "OPTForCausalLM",
        dict(
            hidden_size=32,
            ffn_dim=96,
            num_hidden_layers=2,
            num_attention_heads=4,
            max_position_embeddings=64,
            word_embed_proj_dim=32,
            init_std=0.15,
        ),
    ),
}
ACT_ARG = {"gpt2": "activation_function", "opt": "activation_function"}


def tiny_model(family: str, act: str = "relu", seed: int = 0) -> nn.Module:
    """A small random causal LM of one family (no download), weights large enough that FFNs matter."""
    import transformers as tf

    torch.manual_seed(seed)
    cfg_cls, model_cls, kwargs = SHAPES[family]
    cfg = getattr(tf, cfg_cls)(
        vocab_size=48,
        initializer_range=0.15,
        bos_token_id=1,
        eos_token_id=2,
        pad_token_id=0,
        **{ACT_ARG.get(family, "hidden_act"): act},
        **kwargs,
    )
    return getattr(tf, model_cls)(cfg).eval()


def sampled_text(model: nn.Module, n_seq: int = 6, length: int = 24, seed: int = 0) -> torch.Tensor:
    """Token sequences sampled from the model itself at low temperature: text it predicts well, so that
    sparsifying its FFNs raises its perplexity (random weights on random text would not)."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, model.config.vocab_size, (n_seq, 1), generator=g)
    with torch.no_grad():
        for _ in range(length - 1):
            logits = model(input_ids=ids).logits[:, -1] / 0.5
            nxt = torch.multinomial(torch.softmax(logits.double(), -1), 1, generator=g)
            ids = torch.cat([ids, nxt], 1)
    return ids
