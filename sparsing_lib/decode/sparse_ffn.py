"""A drop-in sparse FFN for decoding with Hugging Face Llama-layout models (Llama, Granite, Mistral, Qwen).

``sparsify_for_decoding(model, thresholds)`` replaces every gated FFN by ``SparseFFN``, which keeps the
original ``gate_proj``/``up_proj``/``down_proj``/``act_fn`` as children (so ``capture.ffn_layers`` still finds
them) and, for up to 16 tokens on a CUDA device with Triton installed, runs the Triton kernels of
``decode.kernels`` in their ``default_config`` (one launch for one token, two above); otherwise (prefill, CPU,
no Triton) it runs the same function densely (the cut applied as a mask) and says so once. ``W_down`` is
stored transposed and ``down_proj.weight`` becomes a view of it, so no weight is held twice. Forward hooks
on ``down_proj`` fire on the dense path only.
"""

from __future__ import annotations

import importlib.util
import warnings
from collections.abc import Sequence

import torch
from torch import nn

from ..capture import ffn_layers
from ..metrics import ThresholdSet
from .reference import ACTS, cuts

MAX_TOKENS = 16  # tokens per call the kernels take (the batch of a decode step)
_warned: set[str] = set()


def _warn_once(key: str, message: str) -> None:
    if key not in _warned:
        _warned.add(key)
        warnings.warn(message, stacklevel=3)


def _act_name(act: nn.Module) -> str | None:
    """ "relu" or "silu" for the activation modules the kernels implement, else None."""
    if isinstance(act, nn.ReLU):
        return "relu"
    if isinstance(act, nn.SiLU) or type(act).__name__ == "SiLUActivation":  # transformers' own SiLU class
        return "silu"
    return None


class SparseFFN(nn.Module):
    """``down(a ⊙ [|a| ≥ cut])`` with ``a = act(gate x) ⊙ up x``; sparse kernels at decode time."""

    def __init__(self, mlp: nn.Module, act: str, threshold: float):
        super().__init__()
        self.gate_proj, self.up_proj, self.down_proj, self.act_fn = (
            mlp.gate_proj,
            mlp.up_proj,
            mlp.down_proj,
            mlp.act_fn,
        )
        self.act = act
        w_down_t = self.down_proj.weight.detach().t().contiguous()
        self.down_proj.weight.data = w_down_t.t()  # a view: the Linear keeps working, nothing is stored twice
        self.register_buffer("cut", cuts(threshold, w_down_t.t()), persistent=False)
        self.threshold = threshold
        self._ws = None

    def dense(self, x: torch.Tensor) -> torch.Tensor:
        """The same function through the Linear modules (prefill, CPU): the cut applied as a mask."""
        a = ACTS[self.act](self.gate_proj(x)) * self.up_proj(x)
        if self.threshold > 0:
            a = a * (a.abs() >= self.cut.to(a.dtype)).to(a.dtype)
        return self.down_proj(a)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.numel() // x.shape[-1]
        if not x.is_cuda:
            _warn_once("cpu", "SparseFFN: CPU tensors run the dense path (the sparse kernels need a CUDA GPU)")
            return self.dense(x)
        if importlib.util.find_spec("triton") is None:
            _warn_once("triton", "SparseFFN: Triton is not installed; running the dense path")
            return self.dense(x)
        if tokens > MAX_TOKENS:
            _warn_once("tokens", f"SparseFFN: calls with more than {MAX_TOKENS} tokens (prefill) run the dense path")
            return self.dense(x)
        from . import kernels

        if self._ws is None or self._ws.s.device != x.device:
            self._ws = kernels.Workspace(x.shape[-1], self.cut.shape[0], x.device)
        w_down_t = self.down_proj.weight.t()
        if not w_down_t.is_contiguous():  # a later .to() or load_state_dict changed the layout: store it again
            self.down_proj.weight.data = w_down_t.contiguous().t()
            w_down_t = self.down_proj.weight.t()
        y = kernels.sparse_ffn(
            x.reshape(tokens, x.shape[-1]).contiguous(),
            self.gate_proj.weight.contiguous(),
            self.up_proj.weight.contiguous(),
            w_down_t,
            self.cut.float(),  # a model-wide .to(dtype) casts buffers too; the kernels read float32 cuts
            self.act,
            self._ws,
        )
        return y.reshape(x.shape)


def sparsify_for_decoding(model: nn.Module, thresholds: Sequence[float] | ThresholdSet | None = None) -> nn.Module:
    """Replace every gated FFN of ``model`` (in place) by a ``SparseFFN`` and return the model.

    ``thresholds``: per-layer CETT thresholds in neuron-output-norm units (``metrics.cett_thresholds`` or a
    ``ThresholdSet``); None keeps exactly the neurons with a non-zero activation, which is lossless for ReLU
    and meaningless for SiLU (an error). Models whose FFN is not gated, or whose activation the kernels do
    not implement, keep their dense FFN when thresholds are given (one warning) and raise without them."""
    if isinstance(thresholds, ThresholdSet):
        thresholds = thresholds.thresholds
    ffns = ffn_layers(model)
    if thresholds is not None and len(thresholds) != len(ffns):
        raise ValueError(f"got {len(thresholds)} thresholds for a model with {len(ffns)} FFN layers")
    modules = dict(model.named_modules())
    for f in ffns:
        name = next(n for n, m in modules.items() if m is f.down)
        parent_name, _, _ = name.rpartition(".")
        mlp = modules[parent_name]
        act = _act_name(f.act) if f.act is not None else None
        gated = f.act is not None and all(hasattr(mlp, p) for p in ("gate_proj", "up_proj", "down_proj"))
        if not gated or act is None:
            what = "is not gated" if not gated else f"has activation {type(f.act).__name__}, not ReLU or SiLU"
            if thresholds is None:
                raise ValueError(
                    f"layer {f.index}'s FFN {what}: the sparse decoding kernels cannot skip its neurons. "
                    "Only gated ReLU/SiLU FFNs (Llama layout) run sparse."
                )
            _warn_once("dense-" + what, f"sparsify_for_decoding: an FFN {what}; these layers keep the dense path")
            continue
        if act == "silu" and thresholds is None:
            raise ValueError(
                "SiLU activations are never exactly zero, so the zero threshold keeps every neuron: pass per-layer "
                "CETT thresholds (metrics.cett_thresholds) to decode a SiLU model sparsely."
            )
        threshold = 0.0 if thresholds is None else float(thresholds[f.index])
        grand, _, attr = parent_name.rpartition(".")
        setattr(modules[grand] if grand else model, attr, SparseFFN(mlp, act, threshold))
    return model
