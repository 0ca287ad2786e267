"""The cost model of one API and operation, fitted robustly with numpy alone.

    t = fixed + per_var * n_vars + per_byte * bytes

Times of a sweep span two to three decades (a 4 MiB save of 16 variables and a 256 MiB save
of 2048), so the fit minimises *relative* residuals (each point weighted by 1/t): with plain
absolute residuals the largest points alone decide the fit and the fixed term is noise.
Outliers (a save that met another process's writeback) are down-weighted by Huber's
iteratively reweighted least squares on the relative residuals, the scale re-estimated from
their median absolute deviation at every step. A term that comes out negative has no
physical meaning; it is set to 0 and the others refitted ("clamped").
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

TERMS = ("fixed", "per_var", "per_byte")
HUBER_K = 1.345      # 95 % efficiency under normal noise
MAX_ITER = 100


@dataclass
class Fit:
    fixed: float           # seconds
    per_var: float         # seconds per variable
    per_byte: float        # seconds per byte
    n_points: int
    r2: float              # 1 - SS_res/SS_tot of the seconds (every point, outliers included)
    median_abs_residual_pct: float
    max_abs_residual_pct: float
    residual_pct: list[float] = field(default_factory=list)   # per point, (t_obs - t_fit)/t_fit
    clamped: tuple[str, ...] = ()
    robust: bool = True

    def predict(self, n_vars, nbytes):
        return self.fixed + self.per_var * np.asarray(n_vars, float) + self.per_byte * np.asarray(nbytes, float)

    def terms_at(self, n_vars: float, nbytes: float) -> dict[str, float]:
        return {"fixed": self.fixed, "per_var": self.per_var * n_vars, "per_byte": self.per_byte * nbytes}

    def dominant(self, n_vars: float, nbytes: float) -> tuple[str, float]:
        """(term, its share of the predicted time) of the largest term at that point."""
        terms = self.terms_at(n_vars, nbytes)
        total = sum(terms.values())
        name = max(terms, key=terms.get)
        return name, (terms[name] / total if total > 0 else float("nan"))

    @property
    def gbps_asymptote(self) -> float | None:
        """GB/s the per-byte term alone allows (the limit for very large states); None when the
        per-byte term was clamped to 0 (the points did not show one)."""
        return 1.0 / self.per_byte / 1e9 if self.per_byte > 0 else None


def identifiable(n_vars, nbytes) -> str | None:
    """Why the three terms cannot be told apart from these points, or None when they can."""
    n_vars, nbytes = np.asarray(n_vars, float), np.asarray(nbytes, float)
    if len(np.unique(n_vars)) < 2:
        return "every point has the same variable count"
    if len(np.unique(nbytes)) < 2:
        return "every point has the same state size"
    x = np.column_stack([np.ones_like(n_vars), n_vars / n_vars.max(), nbytes / nbytes.max()])
    if np.linalg.matrix_rank(x) < 3:
        return "variable count and state size change together (collinear)"
    return None


def _wls(x: np.ndarray, y: np.ndarray, w: np.ndarray, active: list[int]) -> np.ndarray:
    sw = np.sqrt(w)
    coef = np.zeros(x.shape[1])
    sol, *_ = np.linalg.lstsq(x[:, active] * sw[:, None], y * sw, rcond=None)
    coef[active] = sol
    return coef


def fit(n_vars, nbytes, seconds, robust: bool = True) -> Fit:
    """Fit the model to points (n_vars[i], nbytes[i], seconds[i]); needs identifiable() None."""
    n_vars, nbytes, t = (np.asarray(a, float) for a in (n_vars, nbytes, seconds))
    if not (len(n_vars) == len(nbytes) == len(t)):
        raise ValueError("n_vars, nbytes and seconds differ in length")
    why = identifiable(n_vars, nbytes)
    if why:
        raise ValueError(f"the cost model is not identifiable: {why}")
    if not np.all(np.isfinite(t)) or np.any(t <= 0):
        raise ValueError("every time must be finite and positive")
    # columns scaled to ~1 so the solver sees a well-conditioned matrix; undone at the end
    scale = np.array([1.0, n_vars.max(), nbytes.max()])
    x = np.column_stack([np.ones_like(t), n_vars, nbytes]) / scale
    # relative residuals: divide every row by its observed time (weight 1/t^2 in least squares)
    xr, yr = x / t[:, None], np.ones_like(t)
    active = [0, 1, 2]
    clamped: list[str] = []
    while True:
        w = np.ones_like(t)
        coef = _wls(xr, yr, w, active)
        if robust:
            for _ in range(MAX_ITER):
                r = yr - xr @ coef
                s = 1.4826 * np.median(np.abs(r - np.median(r)))
                if s <= 1e-12:
                    break
                u = np.abs(r) / (HUBER_K * s)
                w_new = np.where(u <= 1.0, 1.0, 1.0 / np.maximum(u, 1e-12))
                new = _wls(xr, yr, w_new, active)
                done = np.allclose(new, coef, rtol=1e-9, atol=1e-12)
                coef, w = new, w_new
                if done:
                    break
        negative = [i for i in active if coef[i] < 0]
        if not negative:
            break
        worst = min(negative, key=lambda i: coef[i])
        active.remove(worst)
        clamped.append(TERMS[worst])
        if not active:
            break
    coef = coef / scale
    pred = np.column_stack([np.ones_like(t), n_vars, nbytes]) @ coef
    rel = (t - pred) / np.where(pred > 0, pred, np.nan)
    ss_res = float(np.sum((t - pred) ** 2))
    ss_tot = float(np.sum((t - np.mean(t)) ** 2))
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else float("nan")
    abs_pct = np.abs(rel) * 100
    return Fit(fixed=float(coef[0]), per_var=float(coef[1]), per_byte=float(coef[2]), n_points=len(t),
               r2=r2, median_abs_residual_pct=float(np.nanmedian(abs_pct)),
               max_abs_residual_pct=float(np.nanmax(abs_pct)),
               residual_pct=[float(v) * 100 if math.isfinite(v) else float("nan") for v in rel],
               clamped=tuple(clamped), robust=robust)
