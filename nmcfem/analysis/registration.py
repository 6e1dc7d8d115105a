"""Registration: sub-pixel drift between energies, and simulated-to-measured map alignment."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nmcfem.analysis.errors import AnalysisError

#: sub-pixel resolution of the phase correlation (1/UPSAMPLE px)
UPSAMPLE = 100
#: rotation search of the map alignment, degrees
ROTATION_STEP = 2.0


def find_shift(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """(dy, dx) in pixels that moves ``moving`` onto ``reference`` (phase correlation).

    Images are normalised and windowed first so that the result follows the structure, not
    the overall intensity that differs between energies.
    """
    from skimage.registration import phase_cross_correlation

    if reference.shape != moving.shape:
        raise AnalysisError(f"registration: shapes {reference.shape} and {moving.shape} differ")

    def prep(img: np.ndarray) -> np.ndarray:
        img = np.nan_to_num(np.asarray(img, dtype=float))
        img = (img - img.mean()) / (img.std() or 1.0)
        window = np.outer(np.hanning(img.shape[0]), np.hanning(img.shape[1]))
        return img * window

    shift, _, _ = phase_cross_correlation(prep(reference), prep(moving),
                                          upsample_factor=UPSAMPLE, normalization=None)
    return np.asarray(shift, dtype=float)


def apply_shift(image: np.ndarray, shift: np.ndarray, order: int = 3) -> np.ndarray:
    """Shift an image by (dy, dx) pixels (cubic spline; edges filled with NaN)."""
    out = ndimage.shift(np.asarray(image, dtype=float), shift, order=order, mode="constant",
                        cval=np.nan)
    return out


def align_map(sim: np.ndarray, measured: np.ndarray, sim_mask: np.ndarray,
              measured_mask: np.ndarray) -> tuple[np.ndarray, dict]:
    """Similarity transform (scale, rotation, translation) of ``sim`` onto ``measured``.

    Scale from the silhouette areas, translation from the silhouette centroids, rotation by
    maximising the intensity correlation inside the overlap (grid search, then the shift is
    refined by phase correlation). Returns the transformed map and the parameters.
    """
    from skimage.transform import SimilarityTransform, warp

    if not sim_mask.any() or not measured_mask.any():
        raise AnalysisError("map alignment: a silhouette is empty (no particle pixels)")
    scale = np.sqrt(measured_mask.sum() / sim_mask.sum())
    c_sim = np.array(ndimage.center_of_mass(sim_mask))[::-1]  # (x, y)
    c_meas = np.array(ndimage.center_of_mass(measured_mask))[::-1]
    filled = np.where(sim_mask, np.nan_to_num(sim), np.nan)

    def transform(angle_deg: float, shift=(0.0, 0.0)) -> np.ndarray:
        # maps measured-grid coordinates back into the simulated grid
        t = (SimilarityTransform(translation=-c_meas - np.asarray(shift)[::-1])
             + SimilarityTransform(scale=1.0 / scale, rotation=np.radians(-angle_deg))
             + SimilarityTransform(translation=c_sim))
        return warp(filled, t, output_shape=measured.shape, order=1, cval=np.nan)

    best = (-np.inf, 0.0)
    for angle in np.arange(0.0, 360.0, ROTATION_STEP):
        out = transform(angle)
        ok = np.isfinite(out) & measured_mask & np.isfinite(measured)
        if ok.sum() < 10:
            continue
        r = np.corrcoef(out[ok], measured[ok])[0, 1]
        if np.isfinite(r) and r > best[0]:
            best = (r, angle)
    angle = best[1]
    return transform(angle), {"scale": float(scale), "rotation_deg": float(angle),
                              "translation_px": (c_meas - c_sim).tolist()}
