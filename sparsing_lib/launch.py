"""Independent runs side by side: one subprocess per run, placed on GPUs, each with its own log.

The minis are launch-bound, so one run rarely fills a GPU; ``--gpus G --per-gpu K`` keeps up to K runs on
each of G GPUs (each subprocess sees only its GPU through ``CUDA_VISIBLE_DEVICES``), and a new run starts
on the least-loaded GPU as soon as one ends. Without ``--gpus`` all runs share the one visible device,
``jobs`` at a time. The runs themselves are resumable (``sparsing_lib.run`` skips finished ones and resumes
paused ones), so a launch cut short is finished by launching it again.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path


def launch(
    runs: list[str], command: list[str], log_dir: Path, jobs: int = 1, gpus: int = 0, poll: float = 0.5
) -> dict[str, int]:
    """Run ``command + ['--run', run]`` for every run, at most ``jobs`` at a time (``gpus`` > 0: ``jobs`` per GPU,
    each pinned to one GPU); stdout and stderr of each go to ``log_dir/<run>.log`` (appended, so a resumed run
    keeps its history). Returns each run's exit code."""
    if jobs < 1 or gpus < 0:
        raise ValueError(f"jobs={jobs} and gpus={gpus}: use jobs >= 1 and gpus >= 0")
    log_dir.mkdir(parents=True, exist_ok=True)
    slots = gpus or 1
    load = [0] * slots
    pending, active, codes = list(runs), [], {}
    while pending or active:
        while pending and min(load) < jobs:
            run, gpu = pending.pop(0), load.index(min(load))
            env = os.environ | ({"CUDA_VISIBLE_DEVICES": str(gpu)} if gpus else {})
            path = log_dir / f"{run}.log"
            with open(path, "a") as log:
                if _unfinished_line(path):
                    log.write("\n")
                log.write(f"# {time.strftime('%Y-%m-%d %H:%M:%S')} gpu {gpu if gpus else '-'}: {' '.join(command)}\n")
                log.flush()
                proc = subprocess.Popen(command + ["--run", run], env=env, stdout=log, stderr=subprocess.STDOUT)
            active.append((run, gpu, proc))
            load[gpu] += 1
        time.sleep(poll)
        for item in [a for a in active if a[2].poll() is not None]:
            active.remove(item)
            load[item[1]] -= 1
            codes[item[0]] = item[2].returncode
    return codes


def _unfinished_line(path: Path) -> bool:
    """Whether the log ends mid-line: a run stopped during a progress bar (which redraws with a carriage return)
    leaves no newline, and the next launch's header would otherwise be glued to that bar."""
    if not path.exists() or path.stat().st_size == 0:
        return False
    with open(path, "rb") as f:
        f.seek(-1, os.SEEK_END)
        return f.read(1) != b"\n"
