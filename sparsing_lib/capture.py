"""Find the FFN of every layer of a Hugging Face causal LM and watch or edit its neurons with hooks.

A neuron's activation ``a_i`` is the i-th input of the FFN's down projection; for gated FFNs
``a = σ(gate x) ⊙ up x`` and the gate activation ``s = σ(gate x)`` is read from the activation module;
for non-gated FFNs ``s = a``. No modeling code is modified: everything goes through forward hooks, except
for mixtures of experts whose experts are fused into one module (GraniteMoe), which ``ExpertNeurons``
opens up first: there a layer's neurons are those of all its experts side by side (see ``ExpertNeurons``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

# model_type -> (suffix of the down projection, suffix of the gate activation module or None if not gated)
ADAPTERS: dict[str, tuple[str, str | None]] = {
    **{
        t: ("mlp.down_proj", "mlp.act_fn")
        for t in ("llama", "mistral", "qwen2", "qwen3", "granite", "gemma", "gemma2", "gemma3_text")
    },
    "gpt2": ("mlp.c_proj", None),
    "gpt_neox": ("mlp.dense_4h_to_h", None),
    "opt": ("fc2", None),
    "granitemoe": ("block_sparse_moe.experts.neurons.down", "block_sparse_moe.experts.neurons.act"),
}
# model_type -> suffix of its fused expert modules, which ``ffn_layers`` opens up with ``ExpertNeurons``
EXPERT_BLOCKS: dict[str, str] = {"granitemoe": "block_sparse_moe.experts"}


class ExpertsDown(nn.Module):
    """The down projections of a fused expert module side by side, a linear map ``a -> W a`` with
    ``W = [D_0 | D_1 | … | D_{E-1}]`` of shape [d_model, E·d_expert]: the hook point of ``a``. It holds no
    parameter: ``weight`` is read from the expert module at every call, so it follows the module's dtype,
    device and parametrizations (the minis' autocast one)."""

    def __init__(self, experts: nn.Module):
        super().__init__()
        object.__setattr__(self, "experts", experts)  # not a registered child: the expert module owns this one

    @property
    def weight(self) -> torch.Tensor:
        w = self.experts.down_proj  # [E, d_model, d_expert]
        return w.permute(1, 0, 2).reshape(w.shape[1], -1)

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        return F.linear(a, self.weight)


class ExpertNeurons(nn.Module):
    """A fused expert module (transformers 5.x GraniteMoe: ``gate_up_proj`` [E, 2·d_expert, d_model] and
    ``down_proj`` [E, d_model, d_expert] as 3-D parameters, computed by grouped matrix products) rewritten as
    one wide FFN whose neurons the hooks can reach.

    Why a rewrite: the fused module never calls a down-projection module (no ``nn.Linear`` to hook) and its
    activation module sees only the tokens routed to each expert, in an order that depends on the experts
    implementation; the input of the down projection, which CETT edits, is not visible to any hook.

    The rewrite computes every expert on every token and keeps the routed ones, which is the same function
    (``tests/test_capture_moe.py`` checks it against transformers' forward in float64) at E/k times the
    routed FFN's cost (a dense FFN as wide as all experts together; nothing for the minis, never used in
    training). For token t, expert e with routing weight w_te (0 when e is not among the token's top-k) and
    neuron i of that expert:

    * ``s[t, e·d + i] = σ(G_e x_t)_i`` if e is routed, else 0 (the gate activation, without routing weight);
    * ``a[t, e·d + i] = w_te · σ(G_e x_t)_i · (U_e x_t)_i`` if e is routed, else 0;
    * output ``y_t = W a_t`` with ``W = [D_0 | … | D_{E-1}]`` (``ExpertsDown``).

    The routing weight belongs in ``a`` so that ``y = W a`` holds with a fixed W: then ``|a_i|·‖W[:, i]‖`` is
    neuron i's real contribution to the layer's output, CETT keeps its meaning, and zeroing ``a_i`` is
    zeroing the neuron's input to its expert's down projection. Neurons of non-routed experts are inactive,
    as in the paper's Fig. 12 and ``probes.probe_moe_checkpoints``: with SiLU every routed neuron is active,
    so the dense activation ratio is k/E, the probes' reading; with ReLU it is lower by the share of routed
    neurons that the ReLU silences."""

    def __init__(self, experts: nn.Module):
        super().__init__()
        object.__setattr__(self, "experts", experts)
        self.act = nn.Identity()  # hook point of s
        self.down = ExpertsDown(experts)

    def forward(
        self, hidden_states: torch.Tensor, top_k_index: torch.Tensor, top_k_weights: torch.Tensor
    ) -> torch.Tensor:
        e = self.experts
        t, n, d = hidden_states.shape[0], e.num_experts, e.intermediate_dim
        gate, up = F.linear(hidden_states, e.gate_up_proj.flatten(0, 1)).view(t, n, 2, d).unbind(2)
        routed = torch.zeros(t, n, 1, dtype=torch.bool, device=gate.device)
        routed.scatter_(1, top_k_index[..., None], True)
        weight = torch.zeros(t, n, 1, dtype=top_k_weights.dtype, device=gate.device)
        weight.scatter_(1, top_k_index[..., None], top_k_weights[..., None])
        s = self.act(torch.where(routed, e.act_fn(gate), 0).view(t, n * d))
        a = torch.where(routed, s.view(t, n, d) * up * weight, 0)  # where, not a product: 0·inf would be NaN
        return self.down(a.view(t, n * d)).to(hidden_states.dtype)


def open_experts(model: nn.Module, suffix: str) -> None:
    """Give every fused expert module of ``model`` named ``*suffix`` an ``ExpertNeurons`` child ``neurons``
    and route its forward through it, once (later calls change nothing). The state dict is unchanged."""
    for name, module in list(model.named_modules()):
        opened = isinstance(getattr(module, "neurons", None), ExpertNeurons)
        if (name == suffix or name.endswith("." + suffix)) and not opened:
            module.neurons = ExpertNeurons(module)
            module.forward = module.neurons.__call__


@dataclass
class FFN:
    """One layer's feed-forward block: its down projection and (gated only) its gate activation module."""

    index: int
    down: nn.Module
    act: nn.Module | None

    def weight(self) -> torch.Tensor:
        """Down-projection matrix as [d_model, d_ff] (W_down[:, i] is neuron i's output direction)."""
        w = self.down.weight
        return w if isinstance(self.down, (nn.Linear, ExpertsDown)) else w.t()  # GPT-2 Conv1D: [d_ff, d_model]

    def column_norms(self) -> torch.Tensor:
        """‖W_down[:, i]‖₂ for every neuron i, in float32."""
        return self.weight().float().norm(dim=0)


def ffn_layers(model: nn.Module) -> list[FFN]:
    """The model's FFN blocks in layer order, found through the adapter table. A model with fused experts
    (``EXPERT_BLOCKS``) is opened up first (``open_experts``): from then on its experts run as ``ExpertNeurons``."""
    model_type = getattr(getattr(model, "config", None), "model_type", None)
    if model_type not in ADAPTERS:
        raise ValueError(
            f"model_type {model_type!r} is not supported; supported: {', '.join(sorted(ADAPTERS))}. "
            "To add a family, put its down-projection module suffix and gate-activation suffix "
            "(None if not gated) into sparsing_lib.capture.ADAPTERS."
        )
    if model_type in EXPERT_BLOCKS:
        open_experts(model, EXPERT_BLOCKS[model_type])
    down_suffix, act_suffix = ADAPTERS[model_type]
    modules = dict(model.named_modules())
    downs = [n for n in modules if n.endswith("." + down_suffix) or n == down_suffix]
    if not downs:
        raise ValueError(f"no module ending in {down_suffix!r} found in this {model_type} model")
    ffns = []
    for i, name in enumerate(downs):
        act = None
        if act_suffix is not None:
            act_name = name[: -len(down_suffix)] + act_suffix
            if act_name not in modules:
                raise ValueError(f"gated FFN {name!r} has no activation module {act_name!r}")
            act = modules[act_name]
        ffns.append(FFN(i, modules[name], act))
    return ffns


LayerFn = Callable[[int, torch.Tensor, torch.Tensor], "torch.Tensor | None"]


class Hooks:
    """Hooks on every FFN. ``edit(layer, a, s)`` may return a replacement for the down-projection input
    ``a``; ``watch(layer, a, s, y)`` sees the (edited) input and the FFN output. Tensors passed to both are
    flattened to [n_tokens, ·] and restricted to the tokens selected by ``self.token_mask``.

    Every input ``a`` a watch sees is checked for NaN and inf (``FloatingPointError``). Reading that verdict
    makes the host wait for the device, so with ``defer_checks`` the per-layer verdicts are kept on the device
    and raised once, by ``check()``, which runs when the hooks exit: a cached decoding step then runs without
    a single host synchronisation (``metrics.sparsify``, whose watch and edits are harmless on NaN, does
    this). Without it the error is raised at once, before the watch sees the bad values."""

    def __init__(
        self,
        model: nn.Module,
        edit: LayerFn | None = None,
        watch: Callable[[int, torch.Tensor, torch.Tensor, torch.Tensor], None] | None = None,
        defer_checks: bool = False,
    ):
        self.ffns = ffn_layers(model)
        self.edit, self.watch, self.defer_checks = edit, watch, defer_checks
        self._mask: torch.Tensor | None = None
        self._rows: torch.Tensor | None = None
        self._finite: dict[int, torch.Tensor] = {}  # layer -> device bool: every deferred check passed
        self._gate: dict[int, torch.Tensor] = {}
        self._handles: list = []

    @property
    def token_mask(self) -> torch.Tensor | None:
        """Flat bool [batch*seq] of the tokens to consider in the current forward (None: all of them)."""
        return self._mask

    @token_mask.setter
    def token_mask(self, mask: torch.Tensor | None) -> None:
        self._mask, self._rows = mask, None

    def tokens(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` flattened to [n_tokens, ·] and restricted to the selected tokens. The selected rows are found
        once per forward (one host synchronisation, as a boolean index costs) and reused by every layer."""
        x = x.reshape(-1, x.shape[-1])
        if self._mask is None:
            return x
        if self._rows is None:
            self._rows = self._mask.nonzero().squeeze(1)
        return x.index_select(0, self._rows)

    def __enter__(self) -> Hooks:
        for f in self.ffns:
            if f.act is not None:
                self._handles.append(f.act.register_forward_hook(self._act_hook(f.index)))
            self._handles.append(f.down.register_forward_pre_hook(self._pre_hook(f.index)))
            if self.watch is not None:
                self._handles.append(f.down.register_forward_hook(self._post_hook(f.index)))
        return self

    def __exit__(self, exc_type, *exc) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()
        self._gate.clear()
        try:
            if exc_type is None:
                self.check()
        finally:
            self._finite.clear()

    def check(self) -> None:
        """Raise ``FloatingPointError`` for the first layer whose activations held NaN or inf in a deferred
        check (one host synchronisation)."""
        if self._finite:
            layers = sorted(self._finite)
            ok = torch.stack([self._finite[i] for i in layers]).tolist()
            for i, fine in zip(layers, ok):
                if not fine:
                    raise FloatingPointError(f"layer {i}: FFN activations contain NaN or inf")

    def _act_hook(self, i: int):
        def hook(module, args, output):
            self._gate[i] = output

        return hook

    def _check(self, i: int, a: torch.Tensor) -> None:
        finite = torch.isfinite(a).all()
        if self.defer_checks:
            self._finite[i] = finite if i not in self._finite else self._finite[i] & finite
        elif not finite:
            raise FloatingPointError(f"layer {i}: FFN activations contain NaN or inf")

    def _pre_hook(self, i: int):
        def hook(module, args):
            a = args[0]
            if self.edit is None:
                return None
            s = self._gate.get(i, a)
            if s.shape != a.shape:  # the activation module was called on something else
                raise RuntimeError(f"layer {i}: gate activation shape {tuple(s.shape)} != {tuple(a.shape)}")
            new = self.edit(i, a, s)
            return None if new is None else (new, *args[1:])

        return hook

    def _post_hook(self, i: int):
        def hook(module, args, output):
            a = args[0]
            s = self._gate.pop(i, a)
            self._check(i, a)
            self.watch(i, self.tokens(a), self.tokens(s), self.tokens(output))

        return hook


def batches(
    input_ids: torch.Tensor, attention_mask: torch.Tensor | None, max_tokens: int | None
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Split [n_seq, seq_len] ids and mask into row batches of at most ``max_tokens`` tokens (≥1 row)."""
    if input_ids.ndim == 1:
        input_ids = input_ids[None]
    if attention_mask is None:
        attention_mask = torch.ones_like(input_ids)
    elif attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask shape {tuple(attention_mask.shape)} != input_ids shape {tuple(input_ids.shape)}"
        )
    if input_ids.numel() == 0 or not attention_mask.bool().any():
        raise ValueError("input is empty or all padding: nothing to measure")
    rows = input_ids.shape[0] if max_tokens is None else max(1, max_tokens // input_ids.shape[1])
    for k in range(0, input_ids.shape[0], rows):
        yield input_ids[k : k + rows], attention_mask[k : k + rows]


@torch.no_grad()
def run(
    model: nn.Module,
    hooks: Hooks,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None = None,
    max_tokens: int | None = None,
    progress: bool = False,
) -> tuple[float, int]:
    """Forward all batches with ``hooks`` installed; returns (summed next-token NLL, number of predicted
    tokens), where a prediction counts only if both the current and the next token are not padding."""
    from tqdm.auto import tqdm

    device = next(model.parameters()).device
    nll, count = 0.0, 0
    chunks = list(batches(input_ids, attention_mask, max_tokens))
    with hooks:
        for ids, mask in tqdm(chunks, disable=not progress, desc="forward", leave=False):
            ids, mask = ids.to(device), mask.to(device)
            hooks.token_mask = mask.reshape(-1).bool()
            logits = model(input_ids=ids, attention_mask=mask).logits
            pred = (mask[:, :-1] * mask[:, 1:]).bool()
            if pred.any():
                nll += F.cross_entropy(logits[:, :-1][pred].float(), ids[:, 1:][pred], reduction="sum").item()
                count += int(pred.sum())
    return nll, count
