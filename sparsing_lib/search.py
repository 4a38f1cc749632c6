"""CETT curves and the two searches built on them.

For one layer with activations ``a`` [m, d_ff], down-projection ``W`` [d, d_ff] and FFN outputs ``y`` [m, d],
neuron i's output norm on token j is ``n_ji = |a_ji|·‖W[:, i]‖`` and

    CETT(t) = mean_j ‖Σ_{i: n_ji < t} a_ji W[:, i]‖ / ‖y_j‖.

Instead of bisecting over 65,536 candidate thresholds for every CETT value (the official way), we evaluate
CETT exactly at a few grid thresholds per layer, with masked matrix products stacked over thresholds (bf16
tensor cores on GPU: bf16 products are exact and accumulate in fp32), and invert the monotone curve by
interpolation. The grid
is placed with a cheap pilot curve on a token subsample, either evenly in CETT over [0, 1] (for searches
that visit many CETT values) or tightly around the requested values.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

PILOT_TOKENS = 1024
PILOT_POINTS = 25
PILOT_VALUES = 2**16  # neuron output norms sampled to place the pilot grid by quantiles
AROUND = (-0.015, 0.0, 0.015)  # CETT offsets of the grid placed around a requested value
GROUP_ELEMENTS = 2**28  # masked activations formed at once by cett_sums (512 MiB in bf16)


def check_cett(cett: float) -> float:
    """Return ``cett`` if it lies in [0, 1], else raise one clear error."""
    if not (isinstance(cett, (int, float)) and 0.0 <= cett <= 1.0):
        raise ValueError(f"CETT must be a number in [0, 1], got {cett!r}")
    return float(cett)


def small_part(a: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """``a`` where ``|a|`` is below its column's limit, else 0: [k, m, d_ff] for limits [k, d_ff]."""
    return torch.where(a.abs() < limits[:, None, :], a, 0)


_small_part_fused = torch.compile(small_part, dynamic=True)  # one pass over ``a`` per threshold (GPU only)
_fused = {"ok": True}


def _mask(a: torch.Tensor, limits: torch.Tensor) -> torch.Tensor:
    """``small_part``, compiled on GPU; falls back to eager (with one warning) where compiling fails."""
    if a.is_cuda and _fused["ok"]:
        try:
            return _small_part_fused(a, limits)
        except Exception as exc:  # e.g. no working Triton on this machine
            _fused["ok"] = False
            warnings.warn(
                f"compiling the CETT mask failed ({type(exc).__name__}: {exc}); masking eagerly instead", stacklevel=2
            )
    return small_part(a, limits)


def cett_sums(
    a: torch.Tensor,
    weight: torch.Tensor,
    y_norm: torch.Tensor,
    col_norm: torch.Tensor,
    thresholds: torch.Tensor,
    max_elements: int = GROUP_ELEMENTS,
) -> torch.Tensor:
    """Σ over tokens of ‖Σ_{n<t} a_i W[:, i]‖ / ‖y‖ for every threshold t (float64 [K]).

    The masked activations of several thresholds are stacked into one [k·m, d_ff] x [d_ff, d] product in the
    activations' dtype (fp32 accumulate), at most ``max_elements`` masked entries at a time, so a grid costs
    a few large matrix products rather than many small launches. On GPU the masking is one compiled kernel.
    Tokens with ‖y‖ = 0 contribute 0."""
    m = a.shape[0]
    inv_col = 1.0 / col_norm.clamp_min(1e-30)  # n_i < t  <=>  |a_i| < t / ‖W[:, i]‖ (no [m, d_ff] norms held)
    inv_y = torch.where(y_norm > 0, 1.0 / y_norm.clamp_min(1e-30), 0.0)
    limits = thresholds.to(device=a.device, dtype=inv_col.dtype)[:, None] * inv_col  # [K, d_ff], compared in fp32
    group = max(1, max_elements // max(1, a.numel()))
    out = []
    for g in range(0, len(limits), group):
        lim = limits[g : g + group]
        err = _mask(a, lim).view(-1, a.shape[1]) @ weight.t()
        norms = torch.linalg.vector_norm(err, dim=1, dtype=torch.float32).view(len(lim), m)
        out.append((norms * inv_y).sum(dim=1, dtype=torch.float64))
    return torch.cat(out) if out else limits.new_zeros(0, dtype=torch.float64)


@dataclass
class Curve:
    """Exact CETT values ``cett`` of one layer at increasing thresholds ``thresholds``."""

    thresholds: np.ndarray
    cett: np.ndarray

    @cached_property
    def _inverse(self) -> tuple[np.ndarray, np.ndarray, PchipInterpolator | None]:
        """The strictly increasing part of the curve (last point of every plateau) and its monotone inverse."""
        t, c = self.thresholds, np.maximum.accumulate(self.cett)
        keep = np.r_[np.diff(c) > 0, True]
        t, c = t[keep], c[keep]
        return t, c, PchipInterpolator(c, t) if len(c) >= 3 else None

    def threshold(self, cett: float) -> float:
        """Largest threshold whose (interpolated) CETT does not exceed ``cett``."""
        t, c, inverse = self._inverse
        if cett >= 1.0:
            return math.inf
        if cett >= c[-1]:
            return float(t[-1])
        if cett <= c[0]:
            return float(t[0]) if cett == c[0] else float(t[0] * cett / c[0]) if c[0] > 0 else 0.0
        return float(np.interp(cett, c, t)) if inverse is None else float(inverse(cett))

    def covers(self, cett: float) -> bool:
        """Whether ``cett`` lies between two evaluated grid points other than the implicit CETT(0) = 0."""
        return cett == 0.0 or cett >= 1.0 or bool(self.cett[1] <= cett <= self.cett[-1])


def pilot_grid(
    a: torch.Tensor, weight: torch.Tensor, y_norm: torch.Tensor, col_norm: torch.Tensor, targets: Sequence[float]
) -> torch.Tensor:
    """Thresholds at which a cheap pilot curve (token subsample, quantile grid) reaches each target CETT."""
    step = max(1, a.shape[0] // PILOT_TOKENS)
    sub, ys = a[::step][:PILOT_TOKENS], y_norm[::step][:PILOT_TOKENS]
    norms = (sub.abs().float() * col_norm).flatten()
    values = norms[:: max(1, norms.numel() // PILOT_VALUES)]
    u = torch.linspace(0, 1, PILOT_POINTS, device=a.device)
    ts = torch.quantile(values, 1 - (1 - u) ** 3)
    ts[-1] = float("inf")
    ts = torch.unique(torch.cat([torch.zeros(1, device=a.device), ts]))
    cs = (cett_sums(sub, weight, ys, col_norm, ts) / len(sub)).cpu().numpy()
    ts = ts.cpu().numpy()
    finite = np.isfinite(ts)
    pilot = Curve(ts[finite], cs[finite])
    grid = sorted({pilot.threshold(min(max(c, 0.0), 1.0)) for c in targets})
    return torch.tensor([g for g in grid if g > 0], dtype=torch.float32, device=a.device)


class CurveBuilder:
    """Streams one layer's tokens through ``cett_sums`` on a grid fixed by the first chunk's pilot."""

    def __init__(self, targets: Sequence[float]):
        self.targets = targets
        self.grid: torch.Tensor | None = None
        self.sums: torch.Tensor | None = None
        self.tokens = 0
        self.nonzero = False

    def add(self, a: torch.Tensor, weight: torch.Tensor, y: torch.Tensor, col_norm: torch.Tensor) -> None:
        if a.shape[0] == 0:
            return
        if not self.nonzero:  # one full scan (and sync) per chunk only until a non-zero activation is seen
            self.nonzero = bool(a.ne(0).any())
        y_norm = torch.linalg.vector_norm(y, dim=1, dtype=torch.float32)
        if self.grid is None:
            self.grid = pilot_grid(a, weight, y_norm, col_norm, self.targets)
            self.sums = torch.zeros(len(self.grid), dtype=torch.float64, device=a.device)
        self.sums += cett_sums(a, weight, y_norm, col_norm, self.grid)
        self.tokens += a.shape[0]

    def curve(self, layer: int) -> Curve:
        if not self.nonzero:
            raise ValueError(f"layer {layer}: all FFN activations are zero, so its CETT threshold is undefined")
        c = (self.sums / self.tokens).cpu().numpy()
        return Curve(np.r_[0.0, self.grid.cpu().numpy()], np.r_[0.0, c])


def broad_targets(points: int) -> list[float]:
    """CETT values at which a general-purpose curve is evaluated (denser at small CETT)."""
    u = np.linspace(0, 1, points + 1)[1:]
    return list(0.98 * (0.6 * u + 0.4 * u**2))


def around(cett: float) -> list[float]:
    """Grid CETT values placed tightly around one requested value."""
    return [cett + d for d in AROUND if 0.0 < cett + d <= 1.0]


@dataclass
class RootResult:
    x: float
    value: float
    evaluations: int
    history: list[tuple[float, float]]
    converged: bool = True  # False: f jumps over the target (a step too coarse for tol); best point returned


def solve_increasing(
    f: Callable[[float], float],
    target: float,
    tol: float,
    x0: float = 0.1,
    f0: float = 1.0,
    xtol: float = 1e-6,
    max_evals: int = 40,
) -> RootResult:
    """Find x in (0, 1] with |f(x) − target| ≤ tol for an increasing f with f(0) = f0 < target.

    Secant steps in (log x, log(f − f0)) coordinates (f − f0 grows like a power of x), kept inside the
    bracket and replaced by bisection when two steps in a row land on the same side; raises ValueError
    if even f(1) stays below target. If the bracket shrinks below ``xtol`` without meeting ``tol`` (f is
    a step function on few tokens), the evaluated point closest to the target is returned with
    ``converged=False``."""
    lo, hi = (0.0, f0), None
    history: list[tuple[float, float]] = []
    sides: list[bool] = []
    x = x0
    for _ in range(max_evals):
        v = f(x)
        history.append((x, v))
        if abs(v - target) <= tol:
            return RootResult(x, v, len(history), history)
        sides.append(v < target)
        if v < target:
            if x >= 1.0:
                raise ValueError(f"PPL-ratio target {target:.6g} is unreachable: at CETT=1 the ratio is {v:.6g}")
            lo = (x, v)
        else:
            hi = (x, v)
        if hi is not None and hi[0] - lo[0] < xtol:
            break
        x = _next_point(history, lo, hi, target, f0, stuck=len(sides) > 2 and sides[-1] == sides[-2] == sides[-3])
    best = min(history, key=lambda h: abs(h[1] - target))
    warnings.warn(f"target {target:.6g} not met within {tol}: closest {best[1]:.6g} at x={best[0]:.6g}", stacklevel=2)
    return RootResult(best[0], best[1], len(history), history, converged=False)


def _secant(p: tuple[float, float], q: tuple[float, float], target: float, f0: float) -> float | None:
    """Where the power law through p and q (in x and f − f0) reaches target; None if undefined."""
    if min(p[0], q[0]) <= 0 or min(p[1], q[1]) <= f0 or p[0] == q[0] or p[1] == q[1]:
        return None
    (px, pv), (qx, qv) = [(math.log(x), math.log(v - f0)) for x, v in (p, q)]
    return math.exp(px + (math.log(target - f0) - pv) * (qx - px) / (qv - pv))


def _next_point(history, lo, hi, target: float, f0: float, stuck: bool) -> float:
    guess = _secant(history[-1], history[-2], target, f0) if len(history) > 1 else None
    if hi is None:  # no upper bracket yet: extrapolate, at most 4x further (growth ~x^2 if unknown)
        if guess is None and lo[0] > 0 and lo[1] > f0:
            guess = lo[0] * math.sqrt((target - f0) / (lo[1] - f0))
        return min(1.0, 4 * lo[0] if guess is None or guess <= lo[0] else min(guess, 4 * lo[0]))
    margin = 0.01 * (hi[0] - lo[0])
    for cand in (guess, _secant(lo, hi, target, f0)):
        if not stuck and cand is not None and lo[0] + margin < cand < hi[0] - margin:
            return cand
    return 0.5 * (lo[0] + hi[0])
