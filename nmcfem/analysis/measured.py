"""From measured two-energy frames to a registered ratio map, particle mask and valence."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmcfem.analysis.ratio import (
    calibrate,
    optical_density,
    particle_mask,
    tey_ratio,
    tey_ratio_uncertainty,
)
from nmcfem.analysis.readers import Frame
from nmcfem.analysis.registration import apply_shift, find_shift
from nmcfem.errors import AnalysisError


@dataclass
class RatioMap:
    """A measured ratio map and how it was made."""

    xi: np.ndarray
    xi_unregistered: np.ndarray
    mask: np.ndarray
    shift_px: np.ndarray
    uncertainty: np.ndarray | None
    pixel_size: float | None
    energies: tuple[float | None, float | None]
    mode: str
    signal_a: np.ndarray
    signal_b: np.ndarray
    signal_b_raw: np.ndarray


def pick_pair(frames: list[Frame], energy_a: float, energy_b: float) -> tuple[Frame, Frame]:
    """The two frames closest to the requested energies (eV); the lower one first."""
    if len(frames) < 2:
        raise AnalysisError(f"a ratio map needs two energies, got {len(frames)} image(s)")
    shapes = {f.image.shape for f in frames}
    if len(shapes) > 1:
        raise AnalysisError(f"the measured images have different shapes {sorted(shapes)}; "
                            f"crop or resample them to one grid")
    if any(f.energy is None for f in frames):
        if len(frames) != 2:
            raise AnalysisError("images without energies: give exactly two, energy A first")
        return frames[0], frames[1]
    a = min(frames, key=lambda f: abs(f.energy - energy_a))
    b = min(frames, key=lambda f: abs(f.energy - energy_b))
    if a is b:
        raise AnalysisError(f"both requested energies ({energy_a}, {energy_b} eV) map to the same "
                            f"image at {a.energy} eV; the data holds "
                            f"{[f.energy for f in frames]} eV")
    return a, b


def ratio_map(frames: list[Frame], energy_a: float, energy_b: float,
              mode: str | None = None) -> RatioMap:
    """Registered ratio map xi = S_B / (S_A + S_B) of two frames.

    S is the TEY intensity (``mode="tey"``) or the optical density -ln(I/I0) of transmission
    data (``mode="transmission"``; default for STXM ``.xim`` and TXM ``.xrm`` sources). The
    B frame is registered onto A (sub-pixel phase correlation) before the ratio is formed.
    """
    a, b = pick_pair(frames, energy_a, energy_b)
    if mode is None:
        mode = "transmission" if a.source.endswith((".xim", ".xrm")) else "tey"
    if mode == "transmission":
        # the particle absorbs: it is darker than the background in transmission
        mask_a = particle_mask(a.image, bright_particle=False)
        sig_a = optical_density(a.image, ~mask_a)
        mask_b = particle_mask(b.image, bright_particle=False)
        sig_b = optical_density(b.image, ~mask_b)
    else:
        sig_a, sig_b = a.image, b.image
    shift = find_shift(sig_a, sig_b)
    sig_b_reg = apply_shift(sig_b, shift)
    mask = particle_mask(sig_a + np.nan_to_num(sig_b_reg))
    raw = tey_ratio(sig_a, sig_b)
    xi = np.where(mask, tey_ratio(sig_a, sig_b_reg), np.nan)
    unc = np.where(mask, tey_ratio_uncertainty(sig_a, np.nan_to_num(sig_b_reg)), np.nan) \
        if mode == "tey" else None
    return RatioMap(xi=xi, xi_unregistered=np.where(mask, raw, np.nan), mask=mask,
                    shift_px=shift, uncertainty=unc, pixel_size=a.pixel_size,
                    energies=(a.energy, b.energy), mode=mode, signal_a=sig_a,
                    signal_b=sig_b_reg, signal_b_raw=sig_b)


def valence_map(ratio: RatioMap, pairs: list | None, reference: np.ndarray | None = None
                ) -> tuple[np.ndarray, tuple[float, float]]:
    """Ni valence from a ratio map by the affine calibration (pairs, or fitted to reference)."""
    return calibrate(ratio.xi, pairs, reference, ratio.mask)
