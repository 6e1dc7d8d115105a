"""Cone analysis (Supplementary Fig. 4): surface value against the crack density or porosity
inside the cone from the particle centre through each surface point.

For a surface point p and half-opening angle theta, the cone holds every point q with
angle(q, p) <= theta seen from the centre. Both the simulated interface damage and segmented
measured volumes are reduced to a histogram over directions (a Fibonacci sphere of bins), so a
cone sum is a sum over the bins within theta of p; this keeps the analysis linear in the data
size (a 128^3 volume takes about a second).
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from nmcfem.errors import AnalysisError

#: direction bins of the histogram (about 3 degrees apart)
N_DIRECTIONS = 4000


def fibonacci_directions(n: int = N_DIRECTIONS) -> np.ndarray:
    """(n,3) nearly uniform unit vectors (Fibonacci lattice on the sphere)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z ** 2)
    return np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def direction_histogram(vectors: np.ndarray, weights: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Sum of ``weights`` per direction bin of ``vectors`` (from the centre)."""
    from scipy.spatial import cKDTree

    v = np.asarray(vectors, dtype=float)
    norm = np.linalg.norm(v, axis=1)
    keep = norm > 0
    _, idx = cKDTree(dirs).query(v[keep] / norm[keep, None])
    return np.bincount(idx, weights=np.asarray(weights, dtype=float)[keep], minlength=len(dirs))


def cone_sums(axes: np.ndarray, hist: np.ndarray, dirs: np.ndarray, theta: float,
              chunk: int = 512) -> np.ndarray:
    """Sum of a direction histogram inside the cone of half-angle theta (rad) about each axis."""
    a = np.asarray(axes, dtype=float)
    a = a / np.linalg.norm(a, axis=1)[:, None]
    out = np.empty(len(a))
    cos_t = np.cos(theta)
    for s in range(0, len(a), chunk):
        inside = a[s:s + chunk] @ dirs.T >= cos_t
        out[s:s + chunk] = inside @ hist
    return out


def _correlate(values: np.ndarray, density: np.ndarray) -> dict[str, float]:
    ok = np.isfinite(values) & np.isfinite(density)
    x, y = values[ok], density[ok]
    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return {"pearson": float("nan"), "spearman": float("nan"), "n": int(len(x))}
    return {"pearson": float(stats.pearsonr(x, y)[0]), "spearman": float(stats.spearmanr(x, y)[0]),
            "n": int(len(x))}


def cone_correlation_simulated(points: np.ndarray, values: np.ndarray, centroids: np.ndarray,
                               areas: np.ndarray, damage: np.ndarray, radius: float,
                               angles_deg, centre=(0.0, 0.0, 0.0)) -> dict:
    """Correlation of surface values with the crack density (damaged interface area per cone
    volume, 1/m) inside cones of each half-angle (degrees)."""
    centre = np.asarray(centre, dtype=float)
    dirs = fibonacci_directions()
    hist = direction_histogram(np.asarray(centroids) - centre, np.asarray(areas) * damage, dirs)
    out = {}
    for ang in angles_deg:
        theta = np.radians(ang)
        volume = 2.0 * np.pi / 3.0 * radius ** 3 * (1.0 - np.cos(theta))
        density = cone_sums(np.asarray(points) - centre, hist, dirs, theta) / volume
        out[float(ang)] = {**_correlate(np.asarray(values), density),
                           "mean_density [1/m]": float(density.mean())}
    return out


def volume_surface(labels: np.ndarray, particle: int = 1, pore: int = 2
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Centre (voxels) of a segmented particle and the indices (k,3) of its surface voxels."""
    from scipy import ndimage

    solid = (labels == particle) | (labels == pore)
    if not solid.any():
        raise AnalysisError("cone analysis: the segmentation has no particle voxels")
    filled = ndimage.binary_fill_holes(solid)
    surface = filled & ~ndimage.binary_erosion(filled)
    return np.array(ndimage.center_of_mass(filled)), np.argwhere(surface)


def cone_correlation_volume(labels: np.ndarray, surface_values: np.ndarray,
                            surface_voxels: np.ndarray, angles_deg, particle: int = 1,
                            pore: int = 2) -> dict:
    """Correlation of surface values with the porosity (pore/crack voxel fraction) inside cones
    of each half-angle (degrees), for a segmented volume (0 outside, particle, pore labels)."""
    centre, _ = volume_surface(labels, particle, pore)
    solid = (labels == particle) | (labels == pore)
    vox = np.argwhere(solid)
    is_pore = labels[solid] == pore
    dirs = fibonacci_directions()
    total = direction_histogram(vox - centre, np.ones(len(vox)), dirs)
    pores = direction_histogram(vox - centre, is_pore.astype(float), dirs)
    out = {}
    for ang in angles_deg:
        theta = np.radians(ang)
        axes = np.asarray(surface_voxels) - centre
        n_tot = cone_sums(axes, total, dirs, theta)
        n_pore = cone_sums(axes, pores, dirs, theta)
        with np.errstate(invalid="ignore", divide="ignore"):
            density = np.where(n_tot > 0, n_pore / n_tot, np.nan)
        out[float(ang)] = {**_correlate(np.asarray(surface_values), density),
                           "mean_porosity": float(np.nanmean(density))}
    return out
