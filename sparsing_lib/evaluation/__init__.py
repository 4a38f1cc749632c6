"""Downstream evaluation: benchmark files (``data``), loaders (``tasks``), scoring (``engine``), the suite
under sparsity settings (``suite``). Items are plain records (``items``) so that loaders and scorer meet
only there."""
