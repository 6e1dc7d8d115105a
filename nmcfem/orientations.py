"""Crystal orientations of the primary grains for each texture, reproducible from a seed.

A grain orientation is a rotation matrix R whose columns are the crystal a, b and c axes
expressed in the lab (particle) frame, so that a crystal-frame tensor T maps to the lab as
R T R^T. Textures (DESIGN.md section 2):

- ``random``: c-axis uniform on the unit sphere, in-plane angle uniform.
- ``radial``: c-axis perpendicular to the grain's radius vector (the Li layers, and so the fast
  ab diffusion channels, open to the particle surface — the favourable texture of radially
  aligned Ni-rich cathodes, e.g. Xu et al., Adv. Energy Mater. 8, 1702431 (2018)); the a-axis
  is set along the radius, the c-axis uniform in the tangent plane.
- ``tangential``: c-axis along the grain's radius vector (layers parallel to the surface).
- ``list``: explicit [nx, ny, nz, psi_deg] per grain.
"""

from __future__ import annotations

import numpy as np

from nmcfem.config import Geometry
from nmcfem.errors import ConfigError

# A grain whose centroid lies within this fraction of the radius from the centre has no
# meaningful radial direction; it falls back to a random (but seeded) one.
CENTRE_TOLERANCE = 1e-3


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def frame_from_axis(c_axis: np.ndarray, psi: np.ndarray) -> np.ndarray:
    """Rotation matrices (N,3,3) with third column along ``c_axis`` and in-plane angle ``psi``.

    Parameters
    ----------
    c_axis: (N,3) c-axis directions in the lab frame (any length > 0).
    psi: (N,) rotation of the a-axis about c, in rad, from a reference in-plane direction.
    """
    c = _unit(np.asarray(c_axis, dtype=float).reshape(-1, 3))
    psi = np.asarray(psi, dtype=float).reshape(-1)
    # Reference direction: the lab axis least aligned with c, so the projection never vanishes.
    ref = np.eye(3)[np.argmin(np.abs(c), axis=1)]
    a0 = _unit(ref - np.sum(ref * c, axis=1, keepdims=True) * c)
    b0 = np.cross(c, a0)
    a = np.cos(psi)[:, None] * a0 + np.sin(psi)[:, None] * b0
    b = np.cross(c, a)
    return np.stack([a, b, c], axis=2)


def _random_unit(rng: np.random.Generator, n: int) -> np.ndarray:
    return _unit(rng.normal(size=(n, 3)))


def grain_rotations(geom: Geometry, centroids: np.ndarray) -> np.ndarray:
    """Rotation matrices (N,3,3) of the grains for ``geom.texture``.

    Parameters
    ----------
    geom: geometry section (texture, orientations, orientation_seed, radius).
    centroids: (N,3) grain centroids in m, relative to the particle centre.
    """
    centroids = np.asarray(centroids, dtype=float).reshape(-1, 3)
    n = len(centroids)
    rng = np.random.default_rng(geom.orientation_seed)
    # Draw every random number up front, in the same order for every texture, so that
    # a grain's in-plane angle does not depend on the texture chosen.
    psi = rng.uniform(0.0, 2.0 * np.pi, size=n)
    random_c = _random_unit(rng, n)
    if geom.texture == "random":
        return frame_from_axis(random_c, psi)
    if geom.texture == "list":
        ori = np.array([list(o) + [0.0] * (4 - len(o)) for o in geom.orientations], dtype=float)
        if len(ori) != n:
            raise ConfigError(f"geometry.orientations has {len(ori)} entries but the mesh has "
                              f"{n} grains: give one [nx, ny, nz, psi_deg] per grain")
        return frame_from_axis(ori[:, :3], np.radians(ori[:, 3]))

    dist = np.linalg.norm(centroids, axis=1)
    radial = np.where(dist[:, None] > CENTRE_TOLERANCE * geom.radius,
                      centroids / np.maximum(dist, 1e-300)[:, None], random_c)
    if geom.texture == "tangential":
        return frame_from_axis(radial, psi)
    # radial texture: c uniform in the tangent plane, a along the radius
    tangent = random_c - np.sum(random_c * radial, axis=1, keepdims=True) * radial
    degenerate = np.linalg.norm(tangent, axis=1) < 1e-8
    if np.any(degenerate):
        ref = np.eye(3)[np.argmin(np.abs(radial[degenerate]), axis=1)]
        tangent[degenerate] = np.cross(radial[degenerate], ref)
    c = _unit(tangent)
    b = np.cross(c, radial)
    return np.stack([radial, b, c], axis=2)
