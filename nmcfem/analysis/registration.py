"""Registration: sub-pixel drift between energies, and simulated-to-measured map alignment."""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nmcfem.errors import AnalysisError

#: sub-pixel resolution of the phase correlation (1/UPSAMPLE px)
UPSAMPLE = 100
#: rotation search of the map alignment, degrees
ROTATION_STEP = 2.0


def find_shift(reference: np.ndarray, moving: np.ndarray) -> np.ndarray:
    """(dy, dx) in pixels that moves ``moving`` onto ``reference`` (phase correlation).

    Each image has its background level (the median of its border pixels) removed and is
    scaled to unit spread, so the correlation follows the particle, not the overall intensity
    that differs between energies; no window is applied, since a window common to both images
    would pull the peak towards zero shift.
    """
    from skimage.registration import phase_cross_correlation

    if reference.shape != moving.shape:
        raise AnalysisError(f"registration: shapes {reference.shape} and {moving.shape} differ")

    def prep(img: np.ndarray) -> np.ndarray:
        img = np.asarray(img, dtype=float)
        border = np.concatenate([img[0], img[-1], img[:, 0], img[:, -1]])
        img = np.nan_to_num(img - np.nanmedian(border))
        return img / (img.std() or 1.0)

    shift, _, _ = phase_cross_correlation(prep(reference), prep(moving),
                                          upsample_factor=UPSAMPLE, normalization=None)
    return np.asarray(shift, dtype=float)


def apply_shift(image: np.ndarray, shift: np.ndarray, order: int = 3) -> np.ndarray:
    """Shift an image by (dy, dx) pixels (cubic spline); pixels with no data become NaN.

    NaNs must not enter the spline prefilter (they would spread over the whole image), so the
    data are shifted with NaN read as the nearest value and the validity mask separately.
    """
    img = np.asarray(image, dtype=float)
    valid = np.isfinite(img)
    filled = np.where(valid, img, np.nanmedian(img) if valid.any() else 0.0)
    out = ndimage.shift(filled, shift, order=order, mode="nearest")
    still_valid = ndimage.shift(valid.astype(float), shift, order=1, mode="constant", cval=0.0)
    out[still_valid < 1.0 - 1e-6] = np.nan
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
