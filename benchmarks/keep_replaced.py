"""Keep the small files of run folders that a newer run of the same name replaces in ``data/runs``, as they
were at a git revision, under ``data/replaced/<revision>/<run>/`` (config, env, metrics, sparsity, pareto, CETT and the
downstream scores; not the probe arrays), so that the book can say what the new recipe changed at each scale
without reading git history.

    python benchmarks/keep_replaced.py <revision> <run> [<run> ...]

Run it with the revision before the commit that replaced the runs (e.g. ``57af0c9`` for the mini-160x3 pair
of the sweep's second session); it appends one line per run to ``data/replaced/README.md``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from sparsing_lib.paths import DATA, ROOT
from sparsing_lib.runs import parse_run

KEPT = ("config.json", "env.json", "metrics.csv", "sparsity.csv", "pareto.csv", "cett.json", "eval.csv")


def git_file(rev: str, path: str) -> bytes | None:
    """The bytes of ``path`` at ``rev``, or None where the file did not exist there."""
    out = subprocess.run(["git", "show", f"{rev}:{path}"], cwd=ROOT, capture_output=True)
    return out.stdout if out.returncode == 0 else None


def keep(rev: str, run: str, dest: Path) -> list[str]:
    """Copy ``run``'s kept files at ``rev`` into ``dest/run``; the names copied (config.json is required)."""
    parse_run(run)  # a name the run grammar refuses is an error here, not an empty folder
    files = {name: git_file(rev, f"data/runs/{run}/{name}") for name in KEPT}
    if files["config.json"] is None:
        raise SystemExit(f"{run}: no data/runs/{run}/config.json at revision {rev}")
    (dest / run).mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        if data is not None:
            (dest / run / name).write_bytes(data)
    return [name for name, data in files.items() if data is not None]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("revision", help="the git revision whose data/runs/<run>/ is kept")
    p.add_argument("runs", nargs="+")
    p.add_argument("--out", type=Path, default=DATA / "replaced")
    args = p.parse_args(argv)
    full = subprocess.run(["git", "rev-parse", args.revision], cwd=ROOT, capture_output=True, text=True)
    if full.returncode:
        p.error(f"unknown revision {args.revision}")
    rev = full.stdout.strip()
    dest = args.out / rev[:7]  # a run replaced twice keeps both earlier versions, one folder per revision
    lines = [f"- `{rev[:7]}/{run}` ({', '.join(keep(rev, run, dest))})" for run in args.runs]
    with open(args.out / "README.md", "a") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
