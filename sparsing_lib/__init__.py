"""sparsing_lib: activation-sparsity tools behind the Sparsing Law companion book."""

__version__ = "0.1.0"
