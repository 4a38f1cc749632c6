"""Fitting activation-ratio-vs-data laws, with uncertainty, model comparison and extrapolation checks.

Every form is written as two linear coefficients times a basis that depends on one or two nonlinear
parameters, ``A(D) = beta_0 * g(D; theta) + beta_1``. ``fit`` uses variable projection: for each theta the
box-bounded linear least squares in ``beta`` is solved exactly, and only theta is searched (a grid of
starting points, then ``scipy.optimize.least_squares`` from the best few). D is tokens / 1e9 throughout.

Intervals: a moving-block bootstrap of the residuals (successive checkpoints are correlated, so residuals
are resampled in blocks of consecutive checkpoints) and, for the limit A0, a profile-likelihood interval
(which assumes independent Gaussian errors, hence is narrower when residuals are correlated).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import brentq, least_squares
from scipy.stats import chi2

from .checks import check_choice

TOKENS_UNIT = 1e9
INF = np.inf


@dataclass(frozen=True)
class Form:
    """A law ``A(D) = beta0 * basis(D, theta) + beta1`` with named, bounded parameters."""

    name: str
    formula: str
    theta: tuple[str, ...]  # nonlinear parameter names
    theta_bounds: tuple[tuple[float, float], ...]
    theta_log: tuple[bool, ...]  # search this parameter on a log scale
    beta: tuple[str, str]  # names of beta0 (amplitude) and beta1 (offset)
    beta_bounds: tuple[tuple[float, float], tuple[float, float]]
    basis: Callable[[np.ndarray, np.ndarray], np.ndarray]
    limit: str | None = "A0"  # name of the D -> infinity limit, if the form has one
    to_params: Callable[[np.ndarray, np.ndarray], dict] | None = None  # custom naming of the coefficients

    @property
    def n_coef(self) -> int:
        return len(self.theta) + 2

    def params(self, theta: np.ndarray, beta: np.ndarray) -> dict[str, float]:
        if self.to_params is not None:
            return self.to_params(theta, beta)
        return {**dict(zip(self.theta, map(float, theta))), **dict(zip(self.beta, map(float, beta)))}


def _logspace_params(theta: np.ndarray, beta: np.ndarray) -> dict[str, float]:
    return {
        "alpha": float(theta[0]),
        "b": float(np.log(max(beta[0], 1e-300))),
        "c": float(theta[1]),
        "A0": float(beta[1]),
    }


FORMS: dict[str, Form] = {
    f.name: f
    for f in (
        Form(
            "logspace",
            "exp(-c·D^α + b) + A0",
            ("alpha", "c"),
            ((1e-3, 10.0), (1e-9, 1e3)),
            (True, True),
            ("exp_b", "A0"),
            ((1e-12, 1e9), (0.0, 1.0)),
            lambda D, t: np.exp(-t[1] * D ** t[0]),
            to_params=_logspace_params,
        ),
        Form(
            "power",
            "-c·D^(-α) + A0",
            ("alpha",),
            ((1e-3, 10.0),),
            (True,),
            ("c", "A0"),
            ((0.0, INF), (0.0, 1.0)),
            lambda D, t: -(D ** -t[0]),
        ),
        Form(
            "power_offset",
            "-c·(D + d)^(-α) + A0  (c of either sign)",
            ("alpha", "d"),
            ((1e-3, 10.0), (0.0, 1e3)),
            (True, False),
            ("c", "A0"),
            ((-INF, INF), (0.0, 1.0)),
            lambda D, t: -((D + t[1]) ** -t[0]),
        ),
        Form(
            "log",
            "k + c·ln(D + d)  (no limit)",
            ("d",),
            ((0.0, 1e3),),
            (False,),
            ("c", "k"),
            ((-INF, INF), (-INF, INF)),
            lambda D, t: np.log(D + t[0]),
            limit=None,
        ),
        Form(
            "sigmoid",
            "A0 + h / (1 + exp((D - m)/s))",
            ("m", "s"),
            ((-1e3, 1e3), (1e-2, 1e4)),
            (False, True),
            ("h", "A0"),
            ((-INF, INF), (0.0, 1.0)),
            lambda D, t: 1.0 / (1.0 + np.exp(np.clip((D - t[0]) / t[1], -700, 700))),
        ),
        Form(
            "exp",
            "A0 + h·exp(-D/τ)",
            ("tau",),
            ((1e-2, 1e5),),
            (True,),
            ("h", "A0"),
            ((-INF, INF), (0.0, 1.0)),
            lambda D, t: np.exp(-D / t[0]),
        ),
    )
}
PAPER_FORM = {"relu": "logspace", "silu": "power"}
ALTERNATIVES = ("power_offset", "log", "sigmoid", "exp")  # compared with the paper's form of each activation


def get_form(form: str) -> Form:
    """The ``Form`` called ``form``; a clear ValueError for an unknown name."""
    return FORMS[check_choice("form", form, FORMS)]


# ---------------------------------------------------------------------------------------------------------
# Evaluating a law from its named parameters (e.g. the paper's printed coefficients)


def curve(form: str, params: dict[str, float], tokens: np.ndarray) -> np.ndarray:
    """A law evaluated at ``tokens`` (counted, not in billions) from its named parameters."""
    D = np.asarray(tokens, dtype=float) / TOKENS_UNIT
    p = params
    with np.errstate(over="ignore"):
        if form == "logspace":
            return np.exp(-p["c"] * D ** p["alpha"] + p["b"]) + p["A0"]
        f = get_form(form)
        theta = np.array([p[k] for k in f.theta])
        return p[f.beta[0]] * f.basis(D, theta) + p[f.beta[1]]


# ---------------------------------------------------------------------------------------------------------
# Variable projection


def _lsq2(g: np.ndarray, y: np.ndarray, bounds) -> tuple[np.ndarray, float]:
    """Exact box-bounded least squares of ``y ≈ beta0·g + beta1`` (interior optimum, or best on an edge)."""
    lo = np.array([bounds[0][0], bounds[1][0]], dtype=float)
    hi = np.array([bounds[0][1], bounds[1][1]], dtype=float)
    n, sg, sy, gg, gy, yy = len(y), g.sum(), y.sum(), g @ g, g @ y, y @ y

    def rss(b0: float, b1: float) -> float:  # expanded ||b0·g + b1 − y||², no temporaries
        return max(b0 * b0 * gg + n * b1 * b1 + yy + 2 * b0 * b1 * sg - 2 * b0 * gy - 2 * b1 * sy, 0.0)

    det = gg * n - sg * sg
    if det > 1e-12 * gg * n:
        b0, b1 = (gy * n - sg * sy) / det, (gg * sy - sg * gy) / det
        if lo[0] <= b0 <= hi[0] and lo[1] <= b1 <= hi[1]:
            return np.array([b0, b1]), rss(b0, b1)
    best, best_rss = np.array([np.clip(0.0, *bounds[0]), np.clip(sy / n, *bounds[1])]), INF
    best_rss = rss(*best)
    for edge in (lo[0], hi[0]):  # beta0 on a bound: beta1 is the clipped mean of y − beta0·g
        if np.isfinite(edge):
            b1 = np.clip((sy - edge * sg) / n, lo[1], hi[1])
            if (r := rss(edge, b1)) < best_rss:
                best, best_rss = np.array([edge, b1]), r
    for edge in (lo[1], hi[1]):  # beta1 on a bound: beta0 is the clipped regression slope through it
        if np.isfinite(edge) and gg > 0:
            b0 = np.clip((gy - edge * sg) / gg, lo[0], hi[0])
            if (r := rss(b0, edge)) < best_rss:
                best, best_rss = np.array([b0, edge]), r
    return best, best_rss


class _Projected:
    """Residuals as a function of the transformed nonlinear parameters u (log where the form says so)."""

    def __init__(self, f: Form, D: np.ndarray, y: np.ndarray, beta_bounds=None):
        self.f, self.D, self.y = f, D, y
        self.beta_bounds = beta_bounds or f.beta_bounds
        self.log = np.array(f.theta_log)
        tb = np.array(f.theta_bounds, dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.lo = np.where(self.log, np.log(np.abs(tb[:, 0])), tb[:, 0])
            self.hi = np.where(self.log, np.log(np.abs(tb[:, 1])), tb[:, 1])

    def theta(self, u: np.ndarray) -> np.ndarray:
        out = np.array(u, dtype=float)
        out[self.log] = np.exp(out[self.log])
        return out

    def _basis(self, u: np.ndarray) -> np.ndarray | None:
        with np.errstate(over="ignore", invalid="ignore", divide="ignore", under="ignore"):
            g = self.f.basis(self.D, self.theta(u))
        return g if np.all(np.isfinite(g)) else None

    def solve(self, u: np.ndarray) -> tuple[np.ndarray, float]:
        g = self._basis(u)
        if g is None:
            return np.zeros(2), INF
        with np.errstate(over="ignore", invalid="ignore"):
            return _lsq2(g, self.y, self.beta_bounds)

    def residuals(self, u: np.ndarray) -> np.ndarray:
        g = self._basis(u)
        if g is None:
            return np.full_like(self.y, 1e3)
        with np.errstate(over="ignore", invalid="ignore"):
            beta, _ = _lsq2(g, self.y, self.beta_bounds)
            return beta[0] * g + beta[1] - self.y

    def grid(self, per_dim: int) -> np.ndarray:
        axes = [np.linspace(lo + 0.02 * (hi - lo), hi - 0.02 * (hi - lo), per_dim) for lo, hi in zip(self.lo, self.hi)]
        return np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(axes))

    def minimize(self, starts: np.ndarray, n_refine: int) -> tuple[np.ndarray, float, bool]:
        """Best (u, rss, converged) over least-squares runs from the ``n_refine`` best starts."""
        rss0 = np.array([self.solve(u)[1] for u in starts])
        best_u, best_rss, converged = None, INF, False
        for i in np.argsort(rss0)[:n_refine]:
            u0 = np.clip(starts[i], self.lo + 1e-9, self.hi - 1e-9)
            res = least_squares(
                self.residuals,
                u0,
                bounds=(self.lo, self.hi),
                method="trf",
                xtol=1e-10,
                ftol=1e-10,
                gtol=1e-10,
                max_nfev=300,
            )
            rss = float(res.fun @ res.fun)
            if rss < best_rss:
                best_u, best_rss, converged = res.x, rss, res.status > 0
        return best_u, best_rss, converged


# ---------------------------------------------------------------------------------------------------------
# Results


@dataclass
class FitResult:
    """A fitted law: ``.params`` (named coefficients), ``.ci`` (95% intervals), ``.aicc`` and diagnostics."""

    form: str
    params: dict[str, float]
    tokens: np.ndarray  # the points used (after the warm-up rule)
    activation_ratio: np.ndarray
    n_dropped: int
    rss: float
    mae: float
    mse: float
    aicc: float
    converged: bool
    on_bound: list[str]
    ci: dict[str, tuple[float, float]] = field(default_factory=dict)
    boot: np.ndarray | None = None  # bootstrap (theta, beta) rows, for bands
    boot_resid: np.ndarray | None = None
    _theta: np.ndarray | None = None
    _beta: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.tokens)

    @property
    def ok(self) -> bool:
        return self.converged and not self.on_bound

    @property
    def warning(self) -> str:
        """Empty when the fit converged inside its bounds; otherwise what went wrong."""
        msgs = [] if self.converged else ["did not converge"]
        if self.on_bound:
            msgs.append("on a bound: " + ", ".join(self.on_bound))
        return "; ".join(msgs)

    def predict(self, tokens) -> np.ndarray:
        """The fitted law at ``tokens`` (counted)."""
        D = np.asarray(tokens, dtype=float) / TOKENS_UNIT
        f = get_form(self.form)
        return self._beta[0] * f.basis(D, self._theta) + self._beta[1]

    def band(self, tokens, level: float = 0.95, prediction: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Bootstrap band of the curve (or, with ``prediction``, of a new checkpoint's value)."""
        if self.boot is None:
            raise ValueError("this fit has no bootstrap: call fit(..., n_boot>0)")
        D = np.asarray(tokens, dtype=float) / TOKENS_UNIT
        f = get_form(self.form)
        k = len(f.theta)
        curves = np.array([b[k] * f.basis(D, b[:k]) + b[k + 1] for b in self.boot])
        if prediction:
            rng = np.random.default_rng(0)
            curves = curves + rng.choice(self.boot_resid, size=curves.shape)
        q = (1 - level) / 2
        return np.quantile(curves, q, axis=0), np.quantile(curves, 1 - q, axis=0)

    def derivative(self, tokens) -> np.ndarray:
        """dA/dD of the fitted law at ``tokens`` (D in billions of tokens), by central differences."""
        D = np.asarray(tokens, dtype=float) / TOKENS_UNIT
        h = 1e-4 * D
        return (self.predict((D + h) * TOKENS_UNIT) - self.predict((D - h) * TOKENS_UNIT)) / (2 * h)


def _check_inputs(tokens, activation_ratio) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(tokens, dtype=float)
    a = np.asarray(activation_ratio, dtype=float)
    if t.ndim != 1 or a.ndim != 1 or len(t) != len(a):
        raise ValueError(f"tokens and activation_ratio must be 1-D of equal length, got shapes {t.shape} and {a.shape}")
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(a))):
        raise ValueError("tokens and activation_ratio must be finite (found NaN or inf)")
    if np.any(t <= 0):
        raise ValueError(f"tokens must be positive counts, got min {t.min():g}")
    if np.any((a < 0) | (a > 1)):
        raise ValueError("activation_ratio must be fractions in [0, 1]")
    order = np.argsort(t, kind="stable")
    return t[order], a[order]


def warmup_mask(tokens, drop_first: int = 0, min_tokens: float = 0.0) -> np.ndarray:
    """The warm-up rule: keep points that are not among the first ``drop_first`` and have tokens >= ``min_tokens``."""
    t = np.asarray(tokens, dtype=float)
    if drop_first < 0 or min_tokens < 0:
        raise ValueError(f"drop_first and min_tokens must be >= 0, got {drop_first} and {min_tokens}")
    rank = np.argsort(np.argsort(t, kind="stable"), kind="stable")
    return (rank >= drop_first) & (t >= min_tokens)


def aicc(rss: float, n: int, n_coef: int) -> float:
    """Small-sample AIC of a Gaussian least-squares fit; k counts the coefficients plus the noise variance."""
    k = n_coef + 1
    return n * np.log(rss / n) + 2 * k + 2 * k * (k + 1) / (n - k - 1)


def _fit_core(
    f: Form,
    D: np.ndarray,
    y: np.ndarray,
    starts: np.ndarray | None = None,
    per_dim: int = 12,
    n_refine: int = 2,
    beta_bounds=None,
):
    proj = _Projected(f, D, y, beta_bounds)
    grid = proj.grid(per_dim if len(f.theta) == 1 else max(per_dim // 2, 3))
    starts = grid if starts is None else np.vstack([starts, grid])
    u, rss, converged = proj.minimize(starts, n_refine)
    beta, rss = proj.solve(u)
    return proj, u, beta, rss, converged


def _on_bound(f: Form, proj: _Projected, u: np.ndarray, beta: np.ndarray) -> list[str]:
    hits = []
    span = proj.hi - proj.lo
    for name, ui, lo, hi, s in zip(f.theta, u, proj.lo, proj.hi, span):
        if ui - lo < 1e-6 * s or hi - ui < 1e-6 * s:
            hits.append(name)
    for name, bi, (lo, hi) in zip(f.beta, beta, f.beta_bounds):
        tol = 1e-9 * max(1.0, abs(bi))
        if (np.isfinite(lo) and bi - lo < tol) or (np.isfinite(hi) and hi - bi < tol):
            hits.append({"exp_b": "b"}.get(name, name))
    return hits


def fit(
    tokens,
    activation_ratio,
    form: str,
    *,
    drop_first: int = 0,
    min_tokens: float = 0.0,
    n_boot: int = 0,
    block: int | None = None,
    profile: bool = True,
    level: float = 0.95,
    seed: int = 0,
) -> FitResult:
    """Fit ``form`` to one curve; ``tokens`` are counted (rescaled here to D = tokens / 1e9).

    Warm-up rule (explicit, default: keep every point): drop the first ``drop_first`` checkpoints and those
    with fewer than ``min_tokens`` tokens. ``n_boot`` > 0 adds moving-block bootstrap intervals for every
    coefficient (blocks of ``block`` consecutive checkpoints, default ⌈n^(1/3)⌉); ``profile`` adds the
    profile-likelihood interval of the limit A0 under ``ci["A0_profile"]``.
    """
    f = get_form(form)
    t, a = _check_inputs(tokens, activation_ratio)
    keep = warmup_mask(t, drop_first, min_tokens)
    t, a = t[keep], a[keep]
    n_min = f.n_coef + 3
    if len(t) < n_min:
        raise ValueError(
            f"curve too short to fit {form!r}: {len(t)} points after the warm-up rule "
            f"(dropped {int((~keep).sum())}), need at least {n_min}"
        )
    D = t / TOKENS_UNIT
    proj, u, beta, rss, converged = _fit_core(f, D, a)
    theta = proj.theta(u)
    resid = a - (beta[0] * f.basis(D, theta) + beta[1])
    res = FitResult(
        form,
        f.params(theta, beta),
        t,
        a,
        int((~keep).sum()),
        rss,
        float(np.mean(np.abs(resid))),
        float(np.mean(resid**2)),
        float(aicc(rss, len(t), f.n_coef)),
        converged,
        _on_bound(f, proj, u, beta),
        _theta=theta,
        _beta=beta,
    )
    if n_boot > 0:
        _bootstrap(res, f, D, a, resid, u, n_boot, block, level, seed)
    if profile and f.limit is not None:
        res.ci[f"{f.limit}_profile"] = _profile_limit(f, D, a, u, beta[1], rss, level)
    return res


def _blocks(resid: np.ndarray, block: int, rng: np.random.Generator) -> np.ndarray:
    """One moving-block resample of ``resid`` (same length, blocks of consecutive checkpoints)."""
    n = len(resid)
    starts = rng.integers(0, n - block + 1, size=-(-n // block))
    return np.concatenate([resid[s : s + block] for s in starts])[:n]


def _bootstrap(res: FitResult, f: Form, D, a, resid, u, n_boot, block, level, seed) -> None:
    rng = np.random.default_rng(seed)
    block = block or int(np.ceil(len(D) ** (1 / 3)))
    fitted = a - resid
    centred = resid - resid.mean()
    rows, names = [], None
    for _ in range(n_boot):
        y = fitted + _blocks(centred, block, rng)
        proj, ub, beta, _, _ = _fit_core(f, D, y, starts=u[None, :], per_dim=3, n_refine=1)
        theta = proj.theta(ub)
        params = f.params(theta, beta)
        names = list(params)
        rows.append((np.concatenate([theta, beta]), list(params.values())))
    res.boot = np.array([r[0] for r in rows])
    res.boot_resid = centred
    vals = np.array([r[1] for r in rows])
    q = (1 - level) / 2
    for j, name in enumerate(names):
        res.ci[name] = (float(np.quantile(vals[:, j], q)), float(np.quantile(vals[:, j], 1 - q)))


def _profile_limit(f: Form, D, a, u, a0_hat: float, rss_hat: float, level: float) -> tuple[float, float]:
    """Profile-likelihood interval of the limit: {A0 : n·ln(RSS(A0)/RSS_min) <= chi2_1(level)}."""
    n, crit = len(D), chi2.ppf(level, 1)
    lo_b, hi_b = f.beta_bounds[1]

    def excess(a0: float) -> float:
        bb = (f.beta_bounds[0], (a0, a0))
        _, _, _, rss, _ = _fit_core(f, D, a, starts=u[None, :], per_dim=4, n_refine=1, beta_bounds=bb)
        return n * np.log(max(rss, 1e-300) / rss_hat) - crit

    def side(direction: int) -> float:
        edge = hi_b if direction > 0 else lo_b
        step = max(abs(a0_hat) * 0.01, 1e-4)
        prev = a0_hat
        while True:
            nxt = a0_hat + direction * step
            if (direction > 0 and nxt >= edge) or (direction < 0 and nxt <= edge):
                return (
                    edge
                    if excess(edge - direction * 1e-9) < 0
                    else brentq(excess, prev, edge - direction * 1e-9, xtol=1e-6)
                )
            if excess(nxt) > 0:
                return brentq(excess, prev, nxt, xtol=1e-6)
            prev, step = nxt, step * 2

    return float(side(-1)), float(side(+1))


# ---------------------------------------------------------------------------------------------------------
# Extrapolation check


@dataclass
class Extrapolation:
    """Leave-future-out result: fit on tokens <= ``frac`` · max, predict the rest."""

    form: str
    n_train: int
    n_test: int
    mae: float  # mean absolute error on the held-out future points
    max_error: float
    coverage: float  # fraction of future points inside the 95% bootstrap prediction interval
    limit_train: float | None  # A0 fitted on the training part only
    fit: FitResult


def leave_future_out(
    tokens, activation_ratio, form: str, frac: float = 0.7, n_boot: int = 200, **fit_kw
) -> Extrapolation:
    """Fit on the points with tokens <= ``frac``·max(tokens), then score the prediction of the rest."""
    if not 0 < frac < 1:
        raise ValueError(f"frac must be in (0, 1), got {frac}")
    t, a = _check_inputs(tokens, activation_ratio)
    train = t <= frac * t.max()
    if n_boot < 1:
        raise ValueError("leave_future_out needs n_boot >= 1 for its prediction interval")
    res = fit(t[train], a[train], form, n_boot=n_boot, profile=False, **fit_kw)
    pred = res.predict(t[~train])
    lo, hi = res.band(t[~train], prediction=True)
    err = np.abs(pred - a[~train])
    limit = get_form(form).limit
    return Extrapolation(
        form,
        res.n,
        int((~train).sum()),
        float(err.mean()),
        float(err.max()),
        float(np.mean((a[~train] >= lo) & (a[~train] <= hi))),
        res.params.get(limit) if limit else None,
        res,
    )
