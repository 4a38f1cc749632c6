"""The paper's model family scaled down ("mini"), built from transformers' Granite classes.

Granite is a LLaMA layout (pre-norm RMSNorm, RoPE, no biases, gated FFN ``down(act(gate(x)) * up(x))``)
that carries the muP multipliers of MiniCPM, which the paper's models use:

* ``embedding_multiplier``  = scale_emb = 12 (token embeddings are multiplied by it),
* ``residual_multiplier``   = scale_depth / sqrt(L) = 1.4 / sqrt(L) (every attention and FFN output),
* ``logits_scaling``        = d_model / 256 (the last hidden state's logits are divided by it),
* ``attention_multiplier``  = 1 / sqrt(head_dim) (the usual softmax temperature; Granite exposes it).

``tests/test_models.py`` checks these semantics against a hand-written forward pass.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from transformers import (
    GraniteConfig,
    GraniteForCausalLM,
    GraniteMoeConfig,
    GraniteMoeForCausalLM,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
)
from transformers.models.granitemoe.modeling_granitemoe import load_balancing_loss_func

from .checks import check_choice

SCALE_EMB = 12.0
SCALE_DEPTH = 1.4
DIM_MODEL_BASE = 256
INIT_STD = 0.1
FFN_MULT = 2.5
ACTIVATIONS = ("relu", "silu")


@dataclass(frozen=True)
class ModelSpec:
    """One mini configuration: width, depth and (for MoE variants) the expert layout."""

    name: str
    d_model: int
    n_layers: int
    kind: str = "scale"  # scale | large (pilot scales, see _large) | width_depth | moe | recipe (see _recipe)
    head_dim: int = 32
    n_experts: int = 0  # 0 = dense gated FFN
    top_k: int = 0

    @property
    def n_heads(self) -> int:
        return self.d_model // self.head_dim

    @property
    def d_ff(self) -> int:
        """FFN width 2.5·d; an MoE variant splits it into ``n_experts`` experts of d_ff / n_experts each,
        rounded up to a multiple of 8 (grouped matmuls need 16-byte strides)."""
        d_ff = round(FFN_MULT * self.d_model)
        return -(-d_ff // (8 * self.n_experts)) * 8 if self.n_experts else d_ff

    @property
    def width_depth(self) -> float:
        return self.d_model / self.n_layers

    @property
    def non_embedding_params(self) -> int:
        """Attention 4d² plus FFN 3·d·d_ff (all experts) per layer, the paper's count (norms, router excluded)."""
        return self.n_layers * (4 * self.d_model**2 + 3 * self.d_model * self.d_ff * (self.n_experts or 1))

    @property
    def active_non_embedding_params(self) -> int:
        """Like ``non_embedding_params`` but counting only the ``top_k`` experts a token is routed to."""
        return self.n_layers * (4 * self.d_model**2 + 3 * self.d_model * self.d_ff * (self.top_k or 1))

    def flops_per_token(self, seq_len: int, vocab_size: int) -> float:
        """Training FLOPs per token: 6·(active non-embedding + lm_head) params + 12·L·d·T attention (PaLM)."""
        return (
            6 * (self.active_non_embedding_params + self.d_model * vocab_size)
            + 12 * self.n_layers * self.d_model * seq_len
        )


def _scales() -> list[ModelSpec]:
    # width/depth 48-56 as in the paper's Table 3, head dim 32 (the paper's 128 scaled down 4x). 336x7 has 7
    # heads of 48 (32 does not divide 336), which trains faster than 352x7 with 11 heads of 32
    # (data/benchmarks/throughput_README.md)
    shapes = [(160, 3, 32), (192, 4, 32), (256, 5, 32), (320, 6, 32), (336, 7, 48)]
    return [ModelSpec(f"mini-{d}x{n}", d, n, head_dim=h) for d, n, h in shapes]


def _large() -> list[ModelSpec]:
    # 448x8 (18.5M) and 512x10 (30.1M) take the family to 34x in non-embedding parameters at the same width/depth
    # (56 and 51), with heads of 64 (7 and 8 heads, as the paper's 6-14). Kind "large" keeps them out of the
    # scales grid and the chapters until the final family trains them with its recipe (sparsing_lib.recipe,
    # chosen after the pilots of sparsing_lib.pilots); the 448x8 head-size pilot tries heads of 32
    return [ModelSpec(f"mini-{d}x{n}", d, n, kind="large", head_dim=64) for d, n in [(448, 8), (512, 10)]]


def _width_depth() -> list[ModelSpec]:
    # the same parameter count as mini-192x4 (1.70M) within 10%, width/depth from 6 to 384
    # (the 192x4 point of the sweep is mini-192x4 itself; 272 needs head dim 16 to divide evenly)
    shapes = [(96, 16, 32), (128, 9, 32), (160, 6, 32), (224, 3, 32), (272, 2, 16), (384, 1, 32)]
    return [ModelSpec(f"wd-{d}x{n}", d, n, kind="width_depth", head_dim=h) for d, n, h in shapes]


def _moe() -> list[ModelSpec]:
    # Fig. 12: mini-192x4 with its FFN split into 16 / 30 / 60 fine-grained experts (total parameters within 5%),
    # a quarter of them routed to per token during training (the paper does not give its top-k). Routing to an
    # eighth instead trains barely faster (0-10%, throughput_moe_top8th.csv): the cost grows with the number
    # of experts, not with the number routed to
    return [ModelSpec(f"moe-192x4-e{e}", 192, 4, kind="moe", n_experts=e, top_k=e // 4) for e in (16, 30, 60)]


def _recipe() -> list[ModelSpec]:
    # §6's recipe validation (Fig. 11): the largest scale's size (30.0M against mini-512x10's 30.1M) at a smaller
    # width/depth. Our width-depth runs (1.7M parameters, 50 tokens per parameter, one seed) reach their lowest
    # loss at 27 with 27-75 inside its interval (deeper is worse) and a limit that falls as the ratio does, so
    # the paper's "small ratio within the stable interval" is the low end of 27-75. With heads of 64, as the
    # twin mini-512x10 (so that head size is not a second change), the shapes near 30M are 384x18 (21, below
    # the interval: untested, and 14 was worse), 448x13 (34.5) and 512x10 (51); 416x15 (28) would need heads of
    # 32, slower, and at 448 wide 32-wide heads flattened at a worse loss in the head-size pilot
    return [ModelSpec("recipe-448x13", 448, 13, kind="recipe", head_dim=64)]


MINI: dict[str, ModelSpec] = {s.name: s for s in _scales() + _large() + _width_depth() + _moe() + _recipe()}
TINY = ModelSpec("tiny-32x2", 32, 2, kind="smoke", head_dim=16)  # CPU smoke tests only
# the kinds whose runs form the scale family that the scale laws and figures compare: the scales and the larger
# scales (which train on fewer tokens per parameter, run.LARGE_TOKENS_PER_PARAM, a confound the chapters name)
SCALE_FAMILY = ("scale", "large")


def get_spec(name: str) -> ModelSpec:
    """Look a spec up by name in MINI (or the smoke-test TINY)."""
    if name == TINY.name:
        return TINY
    if name not in MINI:
        raise ValueError(f"unknown model {name!r}; choose one of: {', '.join(MINI)}, {TINY.name}")
    return MINI[name]


def granite_config(spec: ModelSpec, activation: str, vocab_size: int, max_seq_len: int = 4096):
    """The transformers config (Granite or GraniteMoe) for ``spec`` with the paper's muP multipliers."""
    check_choice("activation", activation, ACTIVATIONS)
    common = dict(
        vocab_size=vocab_size,
        hidden_size=spec.d_model,
        intermediate_size=spec.d_ff,
        num_hidden_layers=spec.n_layers,
        num_attention_heads=spec.n_heads,
        num_key_value_heads=spec.n_heads,
        hidden_act=activation,
        max_position_embeddings=max_seq_len,
        initializer_range=INIT_STD,
        rms_norm_eps=1e-5,
        tie_word_embeddings=True,
        embedding_multiplier=SCALE_EMB,
        residual_multiplier=SCALE_DEPTH / math.sqrt(spec.n_layers),
        logits_scaling=spec.d_model / DIM_MODEL_BASE,
        attention_multiplier=1.0 / math.sqrt(spec.head_dim),
        bos_token_id=None,
        eos_token_id=None,
        pad_token_id=None,
        use_cache=False,
    )
    if spec.n_experts:  # load-balancing loss weight 0.01 as in the Switch Transformer (used by train.lm_loss)
        return GraniteMoeConfig(
            **common, num_local_experts=spec.n_experts, num_experts_per_tok=spec.top_k, router_aux_loss_coef=0.01
        )
    return GraniteConfig(**common)


def width_mult(model: PreTrainedModel) -> float:
    """muP width multiplier d_model / 256 (scales hidden-matrix init std and learning rate)."""
    return model.config.hidden_size / DIM_MODEL_BASE


@torch.no_grad()
def init_weights(model: PreTrainedModel, seed: int = 0) -> None:
    """MiniCPM-style muP init: embeddings N(0, 0.1²), hidden matrices N(0, 0.1² / width_mult), norms 1."""
    gen = torch.Generator().manual_seed(seed)
    std = INIT_STD / math.sqrt(width_mult(model))
    for name, p in model.named_parameters():
        if "embed_tokens" in name:
            p.copy_(torch.randn(p.shape, generator=gen) * INIT_STD)
        elif p.ndim >= 2:
            p.copy_(torch.randn(p.shape, generator=gen) * std)
        else:
            p.fill_(1.0)


class AutocastWeight(nn.Module):
    """Parametrization that hands a weight out in the autocast dtype while autocast is on, as autocast does
    for ``nn.Linear``. transformers' grouped expert matmul is not autocast-aware: without this, an MoE's expert
    matmuls would run on the fp32 master weights while every other matmul runs in bf16."""

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        device = weight.device.type
        return weight.to(torch.get_autocast_dtype(device)) if torch.is_autocast_enabled(device) else weight


def keep_router_logits(router: nn.Module, args: tuple, output: object) -> None:
    """Forward hook on an MoE router: in training, keep its logits for ``load_balancing_loss``. (transformers
    5.17's GraniteMoe never returns router logits, so its own ``aux_loss`` is always 0.) The logits are
    recomputed, a [tokens, d] x [d, E] matmul, because the router's output order differs between
    transformers versions (5.17 puts them last, 5.24 first)."""
    if router.training:
        router.logits = F.linear(args[0], router.weight).float()


def load_balancing_loss(model: PreTrainedModel) -> torch.Tensor:
    """The Switch Transformer load-balancing loss of an MoE model's latest training forward, over all layers."""
    logits = tuple(layer.block_sparse_moe.router.logits for layer in model.model.layers)
    return load_balancing_loss_func(logits, model.config.num_local_experts, model.config.num_experts_per_tok)


def build_model(spec: ModelSpec, activation: str = "relu", vocab_size: int = 16384, seed: int = 0) -> PreTrainedModel:
    """A freshly initialised GraniteForCausalLM (or GraniteMoeForCausalLM) for ``spec``, float32 on CPU.
    An MoE's expert weights follow autocast (``AutocastWeight``) and its routers keep their training logits
    (``keep_router_logits``)."""
    config = granite_config(spec, activation, vocab_size)
    cls = GraniteMoeForCausalLM if spec.n_experts else GraniteForCausalLM
    model = cls(config)
    init_weights(model, seed)
    for layer in model.model.layers if spec.n_experts else ():
        for name in ("gate_up_proj", "down_proj"):
            parametrize.register_parametrization(layer.block_sparse_moe.experts, name, AutocastWeight())
        layer.block_sparse_moe.router.register_forward_hook(keep_router_logits)
    return model


def config_table(vocab_size: int | None = None) -> pd.DataFrame:
    """The mini family as a table (the book's counterpart of the paper's Table 3)."""
    rows = []
    for s in MINI.values():
        row = dict(
            name=s.name,
            kind=s.kind,
            d_model=s.d_model,
            n_layers=s.n_layers,
            d_ff=s.d_ff,
            n_heads=s.n_heads,
            head_dim=s.head_dim,
            width_depth=round(s.width_depth, 1),
            experts=s.n_experts or "",
            top_k=s.top_k or "",
            non_embedding_params=s.non_embedding_params,
            active_non_embedding_params=s.active_non_embedding_params,
        )
        if vocab_size:
            row["embedding_params"] = s.d_model * vocab_size
        rows.append(row)
    return pd.DataFrame(rows)


def spec_dict(spec: ModelSpec) -> dict:
    """``spec`` as a JSON-ready dict including its derived sizes."""
    return asdict(spec) | dict(d_ff=spec.d_ff, n_heads=spec.n_heads, non_embedding_params=spec.non_embedding_params)


def tiny_llama(vocab_size: int, seed: int = 0, **config) -> nn.Module:
    """A random two-layer Llama (64 wide, 4 heads, FFN 128, 128-token context; ``config`` overrides any
    LlamaConfig field), in eval mode: the model of the evaluation suite's smoke run, the scorer's tests and the
    pretrained-model section's smoke profile."""
    torch.manual_seed(seed)
    base = dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=128,
        initializer_range=0.15,  # weights large enough that the FFNs matter
    )
    return LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, **(base | config))).eval()
