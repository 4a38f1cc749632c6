"""CETT curves and the two searches built on them.

For one layer with activations ``a`` [m, d_ff], down-projection ``W`` [d, d_ff] and FFN outputs ``y`` [m, d],
neuron i's output norm on token j is ``n_ji = |a_ji|·‖W[:, i]‖`` and

    CETT(t) = mean_j ‖Σ_{i: n_ji < t} a_ji W[:, i]‖ / ‖y_j‖.

Instead of bisecting over 65,536 candidate thresholds for every CETT value (the official way), we evaluate
CETT exactly at a few grid thresholds per layer, one masked matrix product each (bf16 tensor cores on GPU:
bf16 products are exact and accumulate in fp32), and invert the monotone curve by interpolation. The grid
is placed with a cheap pilot curve on a token subsample, either evenly in CETT over [0, 1] (for searches
that visit many CETT values) or tightly around the requested values.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.interpolate import PchipInterpolator

PILOT_TOKENS = 2048
PILOT_POINTS = 33
AROUND = (-0.03, -0.01, 0.0, 0.01, 0.03)  # CETT offsets of the grid placed around a requested value


def check_cett(cett: float) -> float:
    """Return ``cett`` if it lies in [0, 1], else raise one clear error."""
    if not (isinstance(cett, (int, float)) and 0.0 <= cett <= 1.0):
        raise ValueError(f"CETT must be a number in [0, 1], got {cett!r}")
    return float(cett)


def cett_sums(a: torch.Tensor, weight: torch.Tensor, y_norm: torch.Tensor, col_norm: torch.Tensor,
              thresholds: torch.Tensor) -> torch.Tensor:
    """Σ over tokens of ‖Σ_{n<t} a_i W[:, i]‖ / ‖y‖ for every threshold t (float64 [K]).

    One masked [m, d_ff] x [d_ff, d] product per threshold in the activations' dtype (fp32 accumulate).
    Tokens with ‖y‖ = 0 contribute 0."""
    norms = a.abs().float() * col_norm
    inv_y = torch.where(y_norm > 0, 1.0 / y_norm.clamp_min(1e-30), 0.0)
    zero = torch.zeros((), dtype=a.dtype, device=a.device)
    out = torch.empty(len(thresholds), dtype=torch.float64, device=a.device)
    wt = weight.t()
    for k, t in enumerate(thresholds.tolist()):
        err = torch.where(norms < t, a, zero) @ wt
        out[k] = (err.float().norm(dim=1) * inv_y).sum(dtype=torch.float64)
    return out


@dataclass
class Curve:
    """Exact CETT values ``cett`` of one layer at increasing thresholds ``thresholds``."""

    thresholds: np.ndarray
    cett: np.ndarray

    def threshold(self, cett: float) -> float:
        """Largest threshold whose (interpolated) CETT does not exceed ``cett``."""
        t, c = self.thresholds, np.maximum.accumulate(self.cett)
        if cett >= 1.0:
            return math.inf
        if cett >= c[-1]:
            return float(t[-1])
        keep = np.r_[np.diff(c) > 0, True]  # strictly increasing CETT: last point of every plateau
        t, c = t[keep], c[keep]
        if cett <= c[0]:
            return float(t[0]) if cett == c[0] else float(t[0] * cett / c[0]) if c[0] > 0 else 0.0
        if len(c) < 3:
            return float(np.interp(cett, c, t))
        return float(PchipInterpolator(c, t)(cett))

    def covers(self, cett: float) -> bool:
        """Whether ``cett`` lies between two evaluated grid points other than the implicit CETT(0) = 0."""
        return cett == 0.0 or cett >= 1.0 or bool(self.cett[1] <= cett <= self.cett[-1])


def pilot_grid(a: torch.Tensor, weight: torch.Tensor, y_norm: torch.Tensor, col_norm: torch.Tensor,
               targets: Sequence[float]) -> torch.Tensor:
    """Thresholds at which a cheap pilot curve (token subsample, quantile grid) reaches each target CETT."""
    step = max(1, a.shape[0] // PILOT_TOKENS)
    sub, ys = a[::step][:PILOT_TOKENS], y_norm[::step][:PILOT_TOKENS]
    norms = (sub.abs().float() * col_norm).flatten()
    values = norms[:: max(1, norms.numel() // 1_000_000)]
    u = torch.linspace(0, 1, PILOT_POINTS, device=a.device)
    ts = torch.quantile(values, 1 - (1 - u) ** 3)
    ts[-1] = float("inf")
    ts = torch.unique(torch.cat([torch.zeros(1, device=a.device), ts]))
    cs = (cett_sums(sub, weight, ys, col_norm, ts) / len(sub)).cpu().numpy()
    finite = np.isfinite(ts.cpu().numpy())
    pilot = Curve(ts.cpu().numpy()[finite], cs[finite])
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
        self.nonzero |= bool(a.ne(0).any())
        y_norm = y.float().norm(dim=1)
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
    return list(0.98 * (0.6 * u + 0.4 * u ** 2))


def around(cett: float) -> list[float]:
    """Grid CETT values placed tightly around one requested value."""
    return [cett + d for d in AROUND if 0.0 < cett + d <= 1.0]


@dataclass
class RootResult:
    x: float
    value: float
    evaluations: int
    history: list[tuple[float, float]]


def solve_increasing(f: Callable[[float], float], target: float, tol: float, x0: float = 0.1,
                     f0: float | None = None, max_evals: int = 40) -> RootResult:
    """Find x in (0, 1] with |f(x) − target| ≤ tol for an increasing f with f(0) = f0 < target.

    Safeguarded secant in (log x, log(f − f0)) coordinates (power-law-like growth), falling back to
    bisection of the bracket; raises ValueError if even f(1) stays below target."""
    f0 = 1.0 if f0 is None else f0
    lo, hi = (0.0, f0), None
    history: list[tuple[float, float]] = []
    x = x0
    for _ in range(max_evals):
        v = f(x)
        history.append((x, v))
        if abs(v - target) <= tol:
            return RootResult(x, v, len(history), history)
        if v < target:
            lo = (x, v)
            if x >= 1.0:
                raise ValueError(f"PPL-ratio target {target:.6g} is unreachable: at CETT=1 the ratio is {v:.6g}")
        else:
            hi = (x, v)
        x = _next_point(lo, hi, target, f0)
    raise RuntimeError(f"no CETT within tolerance {tol} after {max_evals} evaluations: {history}")


def _next_point(lo: tuple[float, float], hi: tuple[float, float] | None, target: float, f0: float) -> float:
    def logs(p):
        return math.log(p[0]), math.log(p[1] - f0)

    goal = math.log(target - f0)
    if hi is None:  # extrapolate upward assuming growth ~ x^2 (or the measured slope)
        if lo[0] == 0.0 or lo[1] <= f0:
            return min(1.0, max(2 * lo[0], 0.05))
        lx, lv = logs(lo)
        return min(1.0, math.exp(lx + (goal - lv) / 2.0), 8 * lo[0])
    if lo[0] > 0 and lo[1] > f0:
        (ax, av), (bx, bv) = logs(lo), logs(hi)
        if bv > av:
            x = math.exp(ax + (goal - av) * (bx - ax) / (bv - av))
            width = hi[0] - lo[0]
            if lo[0] + 0.02 * width < x < hi[0] - 0.02 * width:
                return x
    if lo[0] == 0.0 and hi[1] > f0:  # only the upper point is informative: assume growth ~ x^2
        x = hi[0] * math.sqrt((target - f0) / (hi[1] - f0))
        if 0.02 * hi[0] < x < 0.98 * hi[0]:
            return x
    return 0.5 * (lo[0] + hi[0])
