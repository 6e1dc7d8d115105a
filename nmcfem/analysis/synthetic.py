"""Synthetic inputs with known answers: surface snapshots and drifted two-energy image pairs."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nmcfem.analysis.surface import ni_valence, render


def fibonacci_sphere(n: int, radius: float) -> np.ndarray:
    """(n,3) nearly uniform points on a sphere of ``radius`` (m)."""
    k = np.arange(n) + 0.5
    z = 1 - 2 * k / n
    phi = np.pi * (1 + 5 ** 0.5) * k
    r = np.sqrt(1 - z ** 2)
    return radius * np.stack([r * np.cos(phi), r * np.sin(phi), z], axis=1)


def surface_x_pattern(points: np.ndarray, radius: float, seed: int = 0) -> np.ndarray:
    """A smooth heterogeneous Li fraction on the surface (a few random spherical bumps)."""
    rng = np.random.default_rng(seed)
    u = points / radius
    x = np.full(len(points), 0.45)
    for _ in range(6):
        c = rng.normal(size=3)
        c /= np.linalg.norm(c)
        x += rng.uniform(-0.15, 0.15) * np.exp(-(1 - u @ c) / 0.08)
    return np.clip(x, 0.05, 0.95)


def make_snapshot(radius: float = 5e-6, n_points: int = 6000, seed: int = 0,
                  shell_thickness: float = 0.0, n_facets: int = 0) -> dict[str, np.ndarray]:
    """Arrays of an ``analysis_snapshot.npz`` with a known surface Li pattern (SI units)."""
    rng = np.random.default_rng(seed)
    pts = fibonacci_sphere(n_points, radius)
    depths = np.array([0.0, 2.5e-9, 5e-9, 1e-8, 2e-8, 5e-8])
    x_surf = surface_x_pattern(pts, radius, seed)
    x_profile = x_surf[:, None] + (1 - x_surf[:, None]) * (1 - np.exp(-depths / 1e-6))[None, :]
    in_shell = np.broadcast_to(depths < shell_thickness, x_profile.shape).copy()
    cent = rng.normal(size=(n_facets, 3))
    cent *= (rng.uniform(0.1, 0.95, n_facets) * radius / np.linalg.norm(cent, axis=1))[:, None] \
        if n_facets else 1.0
    return {"radius": np.float64(radius), "time": np.float64(0.0), "centre": np.zeros(3),
            "surface_points": pts, "depths": depths, "x_profile": x_profile,
            "in_shell": in_shell, "shell_depth": np.full(n_points, shell_thickness),
            "surface_damage": np.zeros(n_points),
            "facet_centroids": cent.reshape(-1, 3), "facet_areas": np.full(n_facets, 1e-14),
            "facet_damage": rng.uniform(0, 1, n_facets), "facet_kind": np.zeros(n_facets, int),
            "meta": np.array("{}")}


def tey_pair(valence_map: np.ndarray, drift=(0.0, 0.0), counts: float = 2000.0,
             calibration=(0.2, -0.2), background: float = 0.02, seed: int = 0
             ) -> tuple[np.ndarray, np.ndarray]:
    """Two TEY images (A, B) whose ratio xi = I_B/(I_A+I_B) follows the valence map through
    xi = slope v + offset, with Poisson noise, and B drifted by (dy, dx) pixels."""
    rng = np.random.default_rng(seed)
    inside = np.isfinite(valence_map)
    xi = np.where(inside, calibration[0] * np.nan_to_num(valence_map) + calibration[1], 0.5)
    level = np.where(inside, counts, background * counts)
    i_a, i_b = level * (1 - xi), level * xi
    i_b = ndimage.shift(i_b, drift, order=3, mode="nearest")
    return rng.poisson(np.clip(i_a, 0, None)).astype(float), \
        rng.poisson(np.clip(i_b, 0, None)).astype(float)


def rendered_truth(snap: dict, pixel_size: float, fov: int, view=(0, 0, 1)) -> np.ndarray:
    """The synthetic surface valence rendered without blur (the ground truth map)."""
    v = ni_valence(snap["x_profile"][:, 0])
    return render(snap["surface_points"], v, float(snap["radius"]), view, pixel_size, fov)
