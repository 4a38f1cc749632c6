"""Run generated code against its tests in a separate, limited Python process (HumanEval/MBPP pass@1).

Each program (``prompt + completion + test``) runs as ``python -I`` (isolated: no user site, no
PYTHON* variables, no current directory on the path) in a fresh temporary directory that is deleted
afterwards, in its own session so that a timeout kills every child, with an address-space limit
(``resource.RLIMIT_AS``) and a CPU-time limit set by the program's first lines (not by a ``preexec_fn``,
which is unsafe in the threads ``run_programs`` uses), and a wall-clock limit enforced from outside.

Network: a preamble replaces ``socket.socket``, ``socket.create_connection`` and ``socket.getaddrinfo``
by functions that raise, so ordinary Python code cannot open a connection. This is a guard against
accidents in model-written code, not a security sandbox: code that imports ``_socket`` directly or
starts another program can still reach the network where the machine has one. Run untrusted
generations on a machine without network access, as the GPU machine is.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

PASSED, FAILED, TIMEOUT = "passed", "failed", "timeout"

PREAMBLE = """\
import resource as _r
_r.setrlimit(_r.RLIMIT_AS, ({memory}, {memory}))
_r.setrlimit(_r.RLIMIT_CPU, ({cpu}, {cpu}))
import socket as _s
def _no_network(*args, **kwargs):
    raise OSError("network access is disabled while evaluating generated code")
class _NoSocket:
    def __init__(self, *args, **kwargs):
        _no_network()
_s.socket = _NoSocket
_s.create_connection = _no_network
_s.getaddrinfo = _no_network
del _r, _s, _NoSocket
"""


def run_program(source: str, timeout: float = 10.0, memory_mb: int = 1024) -> str:
    """Run ``source`` (after the no-network preamble); "passed" if it exits with status 0, "timeout" if it
    is still running after ``timeout`` seconds, else "failed"."""
    with tempfile.TemporaryDirectory(prefix="sparsing-exec-") as folder:
        path = os.path.join(folder, "program.py")
        with open(path, "w") as f:
            f.write(PREAMBLE.format(memory=memory_mb << 20, cpu=int(timeout) + 1) + "\n" + source + "\n")
        proc = subprocess.Popen(
            [sys.executable, "-I", path],
            cwd=folder,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            env={"PATH": os.environ.get("PATH", ""), "LANG": "C.UTF-8"},
        )
        try:
            return PASSED if proc.wait(timeout=timeout) == 0 else FAILED
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return TIMEOUT


def run_programs(
    sources: Sequence[str], timeout: float = 10.0, memory_mb: int = 1024, workers: int | None = None
) -> list[str]:
    """``run_program`` over many programs in parallel threads (each waits on its own process); identical
    sources run once, which matters because sparse settings often reproduce the dense completion."""
    unique = list(dict.fromkeys(sources))
    workers = workers or min(32, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = dict(zip(unique, pool.map(lambda s: run_program(s, timeout, memory_mb), unique)))
    return [results[s] for s in sources]
