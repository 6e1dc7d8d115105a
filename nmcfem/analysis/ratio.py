"""Ratio and valence maps from two-energy images, with the particle mask and uncertainties.

TEY (surface-sensitive electron yield, Supplementary Fig. 1): xi = I_B / (I_A + I_B) per pixel
with A = 854.0 eV and B = 856.2 eV below/at the Ni L3 high-valence peak. Transmission data
(STXM, TXM) are first turned into optical density OD = -ln(I / I0), with I0 the median of the
background (non-particle) pixels, and xi is formed from the two ODs.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

from nmcfem.errors import AnalysisError

#: pixels of smoothing before thresholding the particle silhouette
MASK_SMOOTHING = 1.0
#: smallest accepted particle, as a fraction of the image
MIN_PARTICLE_FRACTION = 1e-3


def _same_shape(a: np.ndarray, b: np.ndarray, what: str) -> None:
    if a.shape != b.shape:
        raise AnalysisError(f"{what}: the two images have different shapes {a.shape} and "
                            f"{b.shape}; crop or resample them to one grid first")


def particle_mask(image: np.ndarray, bright_particle: bool = True) -> np.ndarray:
    """Boolean mask of the particle: Otsu threshold of a smoothed image, largest connected
    component, holes filled.

    Parameters
    ----------
    image: intensity-like image (brighter particle: ``bright_particle=True``).
    bright_particle: whether the particle is brighter than the background.
    """
    from skimage.filters import threshold_otsu

    img = np.nan_to_num(np.asarray(image, dtype=float), nan=np.nanmin(image))
    smooth = ndimage.gaussian_filter(img, MASK_SMOOTHING)
    if np.ptp(smooth) == 0:
        raise AnalysisError("particle mask: the image is uniform; there is no particle to find")
    level = threshold_otsu(smooth)
    mask = smooth > level if bright_particle else smooth < level
    labels, n = ndimage.label(mask)
    if n == 0:
        raise AnalysisError("particle mask is empty: no pixel passes the threshold")
    sizes = ndimage.sum(mask, labels, index=np.arange(1, n + 1))
    mask = labels == (1 + int(np.argmax(sizes)))
    mask = ndimage.binary_fill_holes(mask)
    if mask.sum() < MIN_PARTICLE_FRACTION * mask.size:
        raise AnalysisError(f"particle mask is (nearly) empty: {int(mask.sum())} pixels; check "
                            f"the image contrast")
    return mask


def optical_density(image: np.ndarray, background: np.ndarray) -> np.ndarray:
    """OD = -ln(I / I0), I0 the median of the background pixels (transmission data)."""
    if not background.any():
        raise AnalysisError("optical density: no background pixels to estimate I0 from")
    i0 = float(np.median(image[background]))
    if i0 <= 0:
        raise AnalysisError(f"optical density: background intensity I0 = {i0} is not positive")
    return -np.log(np.clip(image, 1e-12 * i0, None) / i0)


def tey_ratio(i_a: np.ndarray, i_b: np.ndarray) -> np.ndarray:
    """Per-pixel xi = I_B / (I_A + I_B) (NaN where the sum is not positive)."""
    _same_shape(i_a, i_b, "ratio map")
    total = i_a + i_b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, i_b / total, np.nan)


def tey_ratio_uncertainty(i_a: np.ndarray, i_b: np.ndarray) -> np.ndarray:
    """One-sigma uncertainty of xi from Poisson counting statistics of raw counts.

    d xi/d I_A = -I_B/S^2, d xi/d I_B = I_A/S^2 with var(I) = I: sigma = sqrt(I_A I_B / S^3).
    """
    _same_shape(i_a, i_b, "ratio uncertainty")
    total = i_a + i_b
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, np.sqrt(np.clip(i_a * i_b, 0, None) / total ** 3), np.nan)


def calibrate(xi: np.ndarray, pairs: list | None = None, valence: np.ndarray | None = None,
              mask: np.ndarray | None = None) -> tuple[np.ndarray, tuple[float, float]]:
    """Affine map xi -> Ni valence, from two reference pairs or fitted to a valence map.

    Parameters
    ----------
    xi: ratio map.
    pairs: [[xi_1, v_1], [xi_2, v_2]] references, or None to fit.
    valence: map to fit against (same grid as xi), when ``pairs`` is None.
    mask: pixels used for the fit.
    """
    if pairs is not None:
        (x1, v1), (x2, v2) = pairs
        if x1 == x2:
            raise AnalysisError(f"valence calibration: the two reference ratios are equal "
                                f"({x1}); give two different xi values")
        slope = (v2 - v1) / (x2 - x1)
        offset = v1 - slope * x1
    else:
        if valence is None:
            raise AnalysisError("valence calibration: give two [xi, valence] pairs "
                                "(analysis.valence_calibration) or a map to fit to")
        ok = np.isfinite(xi) & np.isfinite(valence) & (mask if mask is not None else True)
        if ok.sum() < 3:
            raise AnalysisError("valence calibration: fewer than 3 valid pixels to fit")
        slope, offset = np.polyfit(xi[ok], valence[ok], 1)
    return slope * xi + offset, (float(slope), float(offset))
