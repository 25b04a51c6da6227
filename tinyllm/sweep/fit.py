"""The scaling-law fit: L(N) = E + A / N^alpha (N parameters, or C training FLOPs), with uncertainties.

scipy.optimize.curve_fit does the least squares; two things make it reliable on a handful of points:
N is scaled by its geometric mean N0 (so the fitted A0 = A / N0^alpha is of order one), and the start
point comes from a scan over E below the smallest loss, where log(L - E) is a straight line in log N.
The uncertainties are the square roots of curve_fit's covariance diagonal (A's by the delta method);
with as many points as constants (3) there is no uncertainty to give, and they come back as inf.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import asdict, dataclass

import numpy as np

from ..errors import TinyLLMError


@dataclass
class PowerLawFit:
    """L(x) = E + A / x^alpha, fitted to points (x, L)."""

    E: float
    A: float
    alpha: float
    E_err: float
    A_err: float
    alpha_err: float
    points: int
    rmse: float
    """Root-mean-square residual of the fit, in the loss's units."""

    def __call__(self, x):
        return self.E + self.A / np.asarray(x, dtype=np.float64) ** self.alpha

    def describe(self, x_name: str = "N") -> str:
        return (
            f"L({x_name}) = E + A / {x_name}^alpha: E = {self.E:.4g} ± {self.E_err:.2g}, A = {self.A:.4g} ± "
            f"{self.A_err:.2g}, alpha = {self.alpha:.4g} ± {self.alpha_err:.2g} ({self.points} points, rmse "
            f"{self.rmse:.3g})"
        )

    def to_dict(self) -> dict:
        return asdict(self)


def _start(u: np.ndarray, L: np.ndarray) -> tuple[float, float, float]:
    """(E, A0, alpha) where a straight line through (log u, log(L - E)) fits best, E scanned below min L."""
    best = None
    for E in np.min(L) * np.linspace(0.0, 0.999, 200):
        slope, icpt = np.polyfit(np.log(u), np.log(L - E), 1)
        sse = float(np.sum((E + np.exp(icpt) * u**slope - L) ** 2))
        if best is None or sse < best[0]:
            best = (sse, E, math.exp(icpt), -slope)
    return best[1:]


def fit_power_law(x, L) -> PowerLawFit:
    """Fit L = E + A / x^alpha to >= 3 points with distinct x > 0."""
    from scipy.optimize import OptimizeWarning, curve_fit

    x, L = np.asarray(x, dtype=np.float64), np.asarray(L, dtype=np.float64)
    if len(x) != len(L) or len(np.unique(x)) < 3 or np.any(x <= 0) or not np.all(np.isfinite(L)):
        raise TinyLLMError(f"a power-law fit needs >= 3 distinct positive x with finite losses, got {len(x)} points")
    x0 = float(np.exp(np.mean(np.log(x))))
    u = x / x0

    def model(u, E, A0, alpha):
        return E + A0 * u ** (-alpha)

    p0 = _start(u, L)
    try:
        with warnings.catch_warnings():  # 3 points: no covariance, reported as inf below
            warnings.simplefilter("ignore", OptimizeWarning)
            p, cov = curve_fit(model, u, L, p0=p0, maxfev=20000)
    except RuntimeError:  # no convergence: keep the scan's start point, with no uncertainty
        p, cov = np.asarray(p0), np.full((3, 3), np.inf)
    E, A0, alpha = (float(v) for v in p)
    var = np.diag(cov) if np.all(np.isfinite(cov)) else np.full(3, np.inf)
    A = A0 * x0**alpha
    # delta method: A = A0 x0^alpha -> dA/dA0 = x0^alpha, dA/dalpha = A ln x0
    grad = np.array([x0**alpha, A * math.log(x0)])
    cov2 = cov[1:, 1:] if np.all(np.isfinite(cov)) else np.full((2, 2), np.inf)
    A_var = float(grad @ cov2 @ grad) if np.all(np.isfinite(cov2)) else math.inf
    rmse = float(np.sqrt(np.mean((model(u, E, A0, alpha) - L) ** 2)))
    return PowerLawFit(
        E, A, alpha, math.sqrt(max(var[0], 0)), math.sqrt(max(A_var, 0)), math.sqrt(max(var[2], 0)), len(x), rmse
    )
