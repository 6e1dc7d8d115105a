"""Comparison metrics of two maps and descriptive statistics of one."""

from __future__ import annotations

import numpy as np
from scipy import stats

from nmcfem.errors import AnalysisError


def _joint(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None):
    if a.shape != b.shape:
        raise AnalysisError(f"metrics: maps of shapes {a.shape} and {b.shape} differ; register "
                            f"them onto one grid first")
    ok = np.isfinite(a) & np.isfinite(b)
    if mask is not None:
        ok &= mask
    return a[ok], b[ok]


def compare(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """Pearson and Spearman correlation, Wasserstein distance and mean difference of two maps
    on their jointly valid pixels."""
    x, y = _joint(a, b, mask)
    if len(x) < 3:
        raise AnalysisError(f"metrics: only {len(x)} jointly valid pixels; the maps do not overlap")
    return {"pearson": float(stats.pearsonr(x, y)[0]) if np.ptp(x) and np.ptp(y) else float("nan"),
            "spearman": (float(stats.spearmanr(x, y)[0]) if np.ptp(x) and np.ptp(y)
                         else float("nan")),
            "wasserstein": float(stats.wasserstein_distance(x, y)),
            "mean_difference": float(np.mean(x - y)), "n_pixels": int(len(x))}


def describe(values: np.ndarray) -> dict[str, float]:
    """Mean, standard deviation, heterogeneity (coefficient of variation and interquartile
    range) and percentiles of the finite values of a map."""
    v = np.asarray(values, dtype=float)
    v = v[np.isfinite(v)]
    if v.size == 0:
        raise AnalysisError("metrics: the map has no valid pixels")
    q05, q25, q50, q75, q95 = np.percentile(v, [5, 25, 50, 75, 95])
    mean = float(v.mean())
    return {"mean": mean, "std": float(v.std()), "cv": float(v.std() / abs(mean)) if mean else
            float("nan"), "iqr": float(q75 - q25), "p05": float(q05), "median": float(q50),
            "p95": float(q95), "n": int(v.size)}


def radial_profile(image: np.ndarray, mask: np.ndarray | None = None, bins: int = 20
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Mean value against normalised distance from the particle centre (0 centre, 1 rim)."""
    ok = np.isfinite(image) if mask is None else (mask & np.isfinite(image))
    if not ok.any():
        raise AnalysisError("radial profile: no valid pixels")
    yy, xx = np.nonzero(ok)
    cy, cx = yy.mean(), xx.mean()
    r = np.hypot(yy - cy, xx - cx)
    r = r / max(r.max(), 1e-12)
    edges = np.linspace(0, 1, bins + 1)
    idx = np.clip(np.digitize(r, edges) - 1, 0, bins - 1)
    vals = image[ok]
    prof = np.array([vals[idx == k].mean() if np.any(idx == k) else np.nan for k in range(bins)])
    return 0.5 * (edges[1:] + edges[:-1]), prof


def line_profile(image: np.ndarray, start, end, samples: int = 100) -> np.ndarray:
    """Values along a line from ``start`` to ``end`` (row, col), bilinear."""
    from scipy import ndimage

    rows = np.linspace(start[0], end[0], samples)
    cols = np.linspace(start[1], end[1], samples)
    return ndimage.map_coordinates(np.asarray(image, dtype=float), [rows, cols], order=1,
                                   cval=np.nan)
