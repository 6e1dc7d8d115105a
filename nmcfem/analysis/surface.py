"""Simulated surface state: Ni valence with probing-depth weighting, and its forward rendering
as a microscope sees it (orthographic view of the visible hemisphere, pixel grid, probe blur).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.spatial import cKDTree

from nmcfem.errors import AnalysisError

#: Ni valence of Li_x Ni0.8 Mn0.1 Co0.1 O2 when only Ni is redox active: v = (3.3 - x)/0.8,
#: from charge balance with Mn4+ and Co3+ (2.875 at x = 1)
NI_VALENCE_OFFSET, NI_FRACTION = 3.3, 0.8
#: Ni valence of the rock-salt (NiO-like) passivation layer
ROCK_SALT_VALENCE = 2.0
#: FWHM of a Gaussian in units of its standard deviation, 2 sqrt(2 ln 2)
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
#: nearest surface points averaged per pixel (inverse-distance weights)
RENDER_NEIGHBOURS = 4
#: points of the depth quadrature of the probing-depth average
DEPTH_QUADRATURE_POINTS = 400
SNAPSHOT_KEYS = ("radius", "surface_points", "depths", "x_profile", "in_shell")


@dataclass
class Snapshot:
    """A solver analysis snapshot (SI units); see ``nmcfem.snapshot``."""

    radius: float
    time: float
    surface_points: np.ndarray
    depths: np.ndarray
    x_profile: np.ndarray
    in_shell: np.ndarray
    shell_depth: np.ndarray
    surface_damage: np.ndarray
    facet_centroids: np.ndarray
    facet_areas: np.ndarray
    facet_damage: np.ndarray
    facet_kind: np.ndarray
    meta: str = "{}"
    grown_thickness: np.ndarray | None = None

    @property
    def rock_salt_depth(self) -> np.ndarray:
        """Depth (m) of rock-salt (Ni2+) material below each surface point: the meshed shell
        and the layer grown into the active material during cycling."""
        grown = self.grown_thickness if self.grown_thickness is not None else 0.0
        return np.asarray(self.shell_depth) + grown


def load_snapshot(path) -> Snapshot:
    """Read ``analysis_snapshot.npz`` with clear errors for missing or inconsistent content."""
    from pathlib import Path

    path = Path(path)
    if not path.is_file():
        raise AnalysisError(f"no analysis snapshot at '{path}': run the simulation first "
                            f"(`nmcfem run CONFIG`) or give the run folder")
    try:
        with np.load(path) as z:
            data = {k: z[k] for k in z.files}
    except Exception as exc:
        raise AnalysisError(f"'{path}' is not a readable snapshot ({exc})") from None
    missing = [k for k in SNAPSHOT_KEYS if k not in data]
    if missing:
        raise AnalysisError(f"snapshot '{path}' lacks {', '.join(missing)}; rerun the simulation")
    n, m = len(data["surface_points"]), len(data["depths"])
    if data["x_profile"].shape != (n, m):
        raise AnalysisError(f"snapshot '{path}': x_profile has shape {data['x_profile'].shape}, "
                            f"expected ({n}, {m})")
    empty3 = np.zeros((0, 3))
    return Snapshot(radius=float(data["radius"]), time=float(data.get("time", 0.0)),
                    surface_points=data["surface_points"], depths=data["depths"],
                    x_profile=data["x_profile"], in_shell=data["in_shell"].astype(bool),
                    shell_depth=data.get("shell_depth", _shell_depth_from_flags(
                        data["depths"], data["in_shell"].astype(bool))),
                    surface_damage=data.get("surface_damage", np.zeros(n)),
                    facet_centroids=data.get("facet_centroids", empty3),
                    facet_areas=data.get("facet_areas", np.zeros(0)),
                    facet_damage=data.get("facet_damage", np.zeros(0)),
                    facet_kind=data.get("facet_kind", np.zeros(0, dtype=int)),
                    meta=str(data.get("meta", "{}")),
                    grown_thickness=data.get("grown_thickness", np.zeros(n)))


def _shell_depth_from_flags(depths: np.ndarray, in_shell: np.ndarray) -> np.ndarray:
    """Shell thickness (m) per point from sampled flags: the deepest sample still in the shell."""
    deepest = np.where(in_shell, depths[None, :], 0.0).max(axis=1)
    return np.where(in_shell[:, 0], deepest, 0.0)


def ni_valence(x: np.ndarray, in_shell: np.ndarray | None = None) -> np.ndarray:
    """Ni valence (3.3 - x)/0.8 of layered NMC811, 2 in the rock-salt shell."""
    v = (NI_VALENCE_OFFSET - np.asarray(x, dtype=float)) / NI_FRACTION
    if in_shell is not None:
        v = np.where(in_shell, ROCK_SALT_VALENCE, v)
    return v


def depth_weights(depths: np.ndarray, probing_depth: float) -> np.ndarray:
    """Normalised weights of the sampled depths for an exponential TEY escape depth (m).

    The total-electron-yield signal from depth d decays as exp(-d/lambda); soft X-ray TEY at the
    Ni L edge probes the top ~5-13 nm. Trapezoidal quadrature over the sampled depths.
    """
    d = np.asarray(depths, dtype=float)
    if probing_depth <= 0:
        raise AnalysisError(f"analysis.probing_depth = {probing_depth} m must be positive")
    w = np.exp(-d / probing_depth)
    if len(d) > 1:
        spacing = np.gradient(d) if len(d) > 2 else np.full(len(d), d[1] - d[0])
        w = w * np.abs(spacing)
    return w / w.sum()


def surface_valence(snap: Snapshot, probing_depth: float) -> np.ndarray:
    """Probing-depth-weighted Ni valence at every surface point.

    The depth integral int exp(-d/lambda) v(d) dd / int exp(-d/lambda) dd is evaluated on a
    fine grid: x is interpolated linearly between the sampled depths and the valence is that of
    rock salt above the point's rock-salt depth (shell and grown layer), of the layered oxide
    below it. Sampling
    only at the stored depths would misplace the shell/core jump, which sits on a sample.
    """
    depths = np.asarray(snap.depths, dtype=float)
    fine = np.linspace(depths[0], depths[-1], DEPTH_QUADRATURE_POINTS)
    x = np.array([np.interp(fine, depths, row) for row in snap.x_profile])
    v = ni_valence(x, fine[None, :] < snap.rock_salt_depth[:, None])
    w = depth_weights(fine, probing_depth)
    ok = np.isfinite(v)
    return np.sum(np.where(ok, v, 0.0) * w, axis=1) / np.maximum(np.sum(ok * w, axis=1), 1e-300)


def view_basis(view: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Unit view direction and two image axes (e_col, e_row) perpendicular to it."""
    v = np.asarray(view, dtype=float)
    if np.linalg.norm(v) == 0:
        raise AnalysisError("view direction is zero; give a direction like [0, 0, 1]")
    v = v / np.linalg.norm(v)
    ref = np.eye(3)[np.argmin(np.abs(v))]
    e1 = np.cross(ref, v)
    e1 /= np.linalg.norm(e1)
    return v, e1, np.cross(v, e1)


def render(points: np.ndarray, values: np.ndarray, radius: float, view, pixel_size: float,
           fov: int, probe_fwhm: float = 0.0, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """Orthographic map of a surface field as seen from ``view`` (NaN off the particle).

    Each pixel inside the projected disc looks at the visible-hemisphere point above it; the
    value there is interpolated from the nearest surface points; a Gaussian probe of FWHM
    ``probe_fwhm`` (m) blurs the map (normalised convolution, so the rim is not darkened).

    Parameters
    ----------
    points: (n,3) surface points in m; values: (n,) field.
    radius: particle radius in m; view: direction to the detector.
    pixel_size: m; fov: pixels per side; probe_fwhm: m (0 = none); centre: particle centre (m).
    """
    v, e1, e2 = view_basis(view)
    centre = np.asarray(centre, dtype=float)
    coords = (np.arange(fov) - (fov - 1) / 2.0) * pixel_size
    col, row = np.meshgrid(coords, coords)
    rho2 = col ** 2 + row ** 2
    inside = rho2 < radius ** 2
    height = np.sqrt(np.clip(radius ** 2 - rho2, 0.0, None))
    targets = centre + col[..., None] * e1 + (-row)[..., None] * e2 + height[..., None] * v
    visible = (points - centre) @ v > -0.1 * radius  # a margin keeps the rim interpolated
    tree = cKDTree(points[visible])
    n_pix = int(inside.sum())
    dist, idx = tree.query(targets[inside], k=min(RENDER_NEIGHBOURS, int(visible.sum())))
    dist, idx = dist.reshape(n_pix, -1), idx.reshape(n_pix, -1)
    w = 1.0 / np.maximum(dist, 1e-6 * pixel_size)
    vals = values[visible][idx]
    image = np.full((fov, fov), np.nan)
    image[inside] = np.sum(w * vals, axis=1) / np.sum(w, axis=1)
    if probe_fwhm > 0:
        sigma = probe_fwhm / (FWHM_PER_SIGMA * pixel_size)
        filled = ndimage.gaussian_filter(np.where(inside, image, 0.0), sigma)
        norm = ndimage.gaussian_filter(inside.astype(float), sigma)
        image = np.where(inside, filled / np.maximum(norm, 1e-12), np.nan)
    return image
