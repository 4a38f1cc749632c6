"""Sparse FFN decoding: Triton kernels (``kernels``, needs a CUDA GPU or Triton's interpreter), the drop-in
module for Hugging Face models (``sparse_ffn``) and the plain-torch reference and bandwidth model
(``reference``)."""

from .reference import cuts, dense_ffn, ffn_bytes, gather_ffn, speedup_limit, union_ratio
from .sparse_ffn import SparseFFN, sparsify_for_decoding

__all__ = [
    "SparseFFN",
    "cuts",
    "dense_ffn",
    "ffn_bytes",
    "gather_ffn",
    "sparsify_for_decoding",
    "speedup_limit",
    "union_ratio",
]
