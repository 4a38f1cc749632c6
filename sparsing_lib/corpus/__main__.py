"""``python -m sparsing_lib.corpus build --out .corpus``: the corpus build's command line (``build.main``)."""

from .build import main

if __name__ == "__main__":
    main()
