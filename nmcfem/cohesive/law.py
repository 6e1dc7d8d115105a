"""Traction-separation laws of the cohesive zone (pure NumPy, vectorised over interface points).

Openings and tractions are given in the local frame of an interface point: component 0 along
the normal (positive = opening), components 1-2 tangential. The laws are written in an effective
opening (Camanho & Davila, NASA/TM-2002-211737)

    delta_e = sqrt(<delta_n>^2 + beta^2 |delta_t|^2),

with irreversible damage driven by the history kappa = max over time of delta_e, and tractions
t_n = (1 - d) K delta_n (opening), t_t = (1 - d) K beta^2 delta_t (shear), so that the effective
traction sqrt(t_n^2 + |t_t|^2/beta^2) = (1 - d) K delta_e follows the one-dimensional law.
Compression is resisted by a penalty contact stiffness and never damages. The switch between
the open and the closed state is smoothed over |delta_n| < eps (``contact_smoothing`` times the
opening at peak traction): the Macaulay bracket <delta_n> becomes a C1 quadratic in that band,
exact outside it. Without it Newton's method chatters between the two stiffnesses at cracks
that sit closed under shear (a damaged interface is ~1/(1 - d) times softer in tension than
in contact); with it, the response changes only for openings below eps (0.01 nm by default).

- bilinear: elastic up to delta_0 = t_n/K0 (K0 = factor * t_n/delta_f, the initial stiffness),
  then linear softening to delta_f = 2 G_c/t_n; the area under the curve is exactly G_c for any
  K0;
- exponential (Xu & Needleman, J. Mech. Phys. Solids 42, 1397 (1994)): t = t_n (delta/delta_c)
  exp(1 - delta/delta_c) with delta_c = G_c/(e t_n), peak t_n at delta_c, area G_c;
- Benzeggagh-Kenane mixed-mode toughness (Compos. Sci. Technol. 56, 439 (1996)) as an option:
  G_c(B) = G_Ic + (G_IIc - G_Ic) B^eta with the shear share B = beta^2 |delta_t|^2 / delta_e^2;
- viscous regularisation (Gao & Bower, Model. Simul. Mater. Sci. Eng. 12, 453 (2004)): the
  damage used in the tractions relaxes towards the rate-independent one with time constant eta.

Unloading follows the secant to the origin. A residual stiffness (a fraction of K0) keeps fully
separated grains attached weakly enough to stay solvable.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

#: Euler's number, the exponential law's G_c / (t_n delta_c)
E_NUMBER = np.e
#: fraction of the toughness dissipated from which an interface point counts as fully cracked
#: (an energy measure, the same for both laws; the exponential law's damage only approaches 1)
FULLY_CRACKED = 0.99
#: openings below this many peak openings count as near contact for the secant stiffness
CONTACT_GUARD = 1.0


@dataclass(frozen=True)
class CohesiveLaw:
    """Parameters of a traction-separation law (SI units).

    Attributes
    ----------
    strength: normal strength t_n in Pa.
    toughness: mode-I toughness G_c in J/m^2.
    law: "bilinear" or "exponential".
    stiffness_factor: bilinear K0 = factor * t_n / delta_f (dimensionless).
    shear_weight: beta of the effective opening.
    mixed_mode: "effective" or "benzeggagh-kenane".
    bk_exponent: eta of the Benzeggagh-Kenane criterion.
    shear_toughness_ratio: G_IIc / G_Ic.
    residual: residual stiffness as a fraction of the initial stiffness.
    contact_factor: compressive penalty stiffness as a fraction of the initial stiffness.
    viscosity: viscous regularisation time eta in s (0 = off).
    contact_smoothing: half-width of the smoothed open/closed transition, as a fraction of the
        opening at peak traction (bilinear t_n/K0, exponential delta_c).
    """

    strength: float
    toughness: float
    law: str = "bilinear"
    stiffness_factor: float = 50.0
    shear_weight: float = 1.0
    mixed_mode: str = "effective"
    bk_exponent: float = 2.0
    shear_toughness_ratio: float = 1.0
    residual: float = 1e-6
    contact_factor: float = 1.0
    viscosity: float = 0.0
    contact_smoothing: float = 0.05

    @classmethod
    def from_config(cls, cohesive, family) -> "CohesiveLaw":
        """Law of one interface family from the config's ``cohesive`` section and the family."""
        return cls(strength=family.strength, toughness=family.toughness, law=cohesive.law,
                   stiffness_factor=cohesive.initial_stiffness_factor,
                   shear_weight=cohesive.shear_weight, mixed_mode=cohesive.mixed_mode,
                   bk_exponent=cohesive.bk_exponent,
                   shear_toughness_ratio=cohesive.shear_toughness_ratio,
                   residual=cohesive.residual_stiffness,
                   contact_factor=cohesive.contact_stiffness_factor,
                   viscosity=cohesive.viscosity,
                   contact_smoothing=cohesive.contact_smoothing)

    @property
    def final_opening(self) -> float:
        """Bilinear final opening delta_f = 2 G_c / t_n (m)."""
        return 2.0 * self.toughness / self.strength

    @property
    def critical_opening(self) -> float:
        """Exponential characteristic opening delta_c = G_c / (e t_n) (m)."""
        return self.toughness / (E_NUMBER * self.strength)

    @property
    def initial_stiffness(self) -> float:
        """Initial stiffness K0 (Pa/m): bilinear factor t_n/delta_f; exponential e t_n/delta_c."""
        if self.law == "exponential":
            return E_NUMBER * self.strength / self.critical_opening
        return self.stiffness_factor * self.strength / self.final_opening


def mode_toughness(law: CohesiveLaw, shear_share: np.ndarray) -> np.ndarray:
    """Toughness (J/m^2) for the shear share B of the effective opening (BK criterion)."""
    if law.mixed_mode != "benzeggagh-kenane":
        return np.full_like(shear_share, law.toughness, dtype=float)
    g2 = law.shear_toughness_ratio * law.toughness
    return law.toughness + (g2 - law.toughness) * shear_share ** law.bk_exponent


def peak_opening(law: CohesiveLaw) -> float:
    """Opening at peak traction (m): t_n/K0 (bilinear) or delta_c (exponential)."""
    if law.law == "exponential":
        return law.critical_opening
    return law.strength / law.initial_stiffness


def smooth_macaulay(x: np.ndarray, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """C1 approximation of max(x, 0) and its derivative: exact for |x| >= eps, the quadratic
    (x + eps)^2 / (4 eps) in between (eps = 0: the plain bracket)."""
    if eps <= 0:
        return np.maximum(x, 0.0), (x > 0).astype(float)
    band = np.abs(x) < eps
    m = np.where(band, (x + eps) ** 2 / (4 * eps), np.maximum(x, 0.0))
    dm = np.where(band, (x + eps) / (2 * eps), (x > 0).astype(float))
    return m, dm


def _effective(law: CohesiveLaw, delta: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Effective opening, shear share, and the smoothed normal opening with its slope."""
    dn, dm = smooth_macaulay(delta[:, 0], law.contact_smoothing * peak_opening(law))
    dt2 = delta[:, 1] ** 2 + delta[:, 2] ** 2
    de2 = dn ** 2 + law.shear_weight ** 2 * dt2
    share = np.divide(law.shear_weight ** 2 * dt2, de2, out=np.zeros_like(de2), where=de2 > 0)
    return np.sqrt(de2), share, dn, dm


def damage_of(law: CohesiveLaw, kappa: np.ndarray, shear_share: np.ndarray | None = None
              ) -> tuple[np.ndarray, np.ndarray]:
    """Damage d(kappa) in [0, 1] and its derivative dd/dkappa (1/m) for a history kappa (m)."""
    kappa = np.asarray(kappa, dtype=float)
    if law.law == "exponential":
        dc = law.critical_opening
        d = 1.0 - np.exp(-kappa / dc)
        return d, np.exp(-kappa / dc) / dc
    share = np.zeros_like(kappa) if shear_share is None else shear_share
    df = 2.0 * mode_toughness(law, share) / law.strength
    k0 = law.initial_stiffness
    d0 = law.strength / k0
    soft = (kappa > d0) & (kappa < df)
    zero = np.zeros_like(kappa)
    d = np.where(kappa >= df, 1.0, np.divide(df * (kappa - d0), kappa * (df - d0), out=zero.copy(),
                                             where=soft))
    dd = np.divide(df * d0, kappa ** 2 * (df - d0), out=zero.copy(), where=soft)
    return d, dd


def evaluate(law: CohesiveLaw, delta: np.ndarray, kappa_old: np.ndarray,
             damage_old: np.ndarray | None = None, dt: float = 0.0,
             stiffness: bool = True) -> dict[str, np.ndarray]:
    """Traction (Pa), consistent tangent (Pa/m) and trial history of openings ``delta``.

    Parameters
    ----------
    law: the traction-separation law.
    delta: (k,3) openings in the local frame (normal, tangential, tangential), m.
    kappa_old: (k,) committed history (largest effective opening so far), m.
    damage_old: (k,) committed (regularised) damage, needed when law.viscosity > 0.
    dt: time step in s (viscous regularisation).
    stiffness: also return the tangent and secant stiffness; without, the result keeps what
        :func:`stiffness_of` needs to add them later (a line search's trial states need
        tractions and energies only).

    Returns traction (k,3), with ``stiffness`` the tangent (k,3,3) and the secant stiffness
    (k,3,3; positive definite: the tangent at frozen damage), kappa (k,) and damage (k,) of
    this trial state, the intermediate arrays :func:`stiffness_of` reads ("_state"), and its
    energy per unit area (J/m^2): the stored energy plus the dissipation D(kappa), whose
    derivative in the openings is the traction (the step's energy, rate-independent laws);
    commit ``kappa`` and ``damage`` only after the step converged.
    """
    delta = np.atleast_2d(np.asarray(delta, dtype=float))
    de, share, dn, dm = _effective(law, delta)
    loading = de > kappa_old
    kappa = np.where(loading, de, kappa_old)
    d, dd = damage_of(law, kappa, share)
    if law.viscosity > 0:
        prev = np.zeros_like(d) if damage_old is None else damage_old
        w = dt / (law.viscosity + dt) if dt > 0 else 0.0
        d = prev + w * (d - prev)
        dd = w * dd
    k0 = law.initial_stiffness
    beta2 = law.shear_weight ** 2
    # tractions: the damaged elastic law (plus the residual stiffness) on the open part <dn>
    # of the normal opening, the contact penalty on the closed part dn - <dn>
    stiff = (1.0 - d) * k0 + law.residual * k0
    contact = law.contact_factor * k0
    traction = np.empty_like(delta)
    traction[:, 0] = stiff * dn + contact * (delta[:, 0] - dn)
    traction[:, 1:] = (stiff * beta2)[:, None] * delta[:, 1:]
    energy = 0.5 * np.einsum("ki,ki->k", traction, delta) + dissipated_energy(law, kappa)
    out = {"traction": traction, "kappa": kappa, "damage": d, "energy": energy,
           "_state": (delta, de, dn, dm, dd, loading, stiff)}
    if stiffness:
        out.update(stiffness_of(law, out))
    return out


def stiffness_of(law: CohesiveLaw, evaluated: dict) -> dict[str, np.ndarray]:
    """Consistent tangent and secant stiffness (k,3,3; Pa/m) of a state from :func:`evaluate`:
    the damaged elastic stiffness, plus on loading points the softening part (d grows with
    delta_e)."""
    delta, de, dn, dm, dd, loading, stiff = evaluated["_state"]
    k0 = law.initial_stiffness
    beta2 = law.shear_weight ** 2
    contact = law.contact_factor * k0
    tangent = np.zeros((len(delta), 3, 3))
    tangent[:, 0, 0] = stiff * dm + contact * (1.0 - dm)
    tangent[:, 1, 1] = tangent[:, 2, 2] = stiff * beta2
    secant_tangent = tangent.copy()
    # a damaged face just open is given the contact stiffness in the alternate minimisation's
    # matrix (not in the tractions): its soft secant would let the next iterate close it deep
    # into the contact penalty
    near = delta[:, 0] < CONTACT_GUARD * peak_opening(law)
    secant_tangent[:, 0, 0] = np.where(near, np.maximum(secant_tangent[:, 0, 0], contact),
                                       secant_tangent[:, 0, 0])
    grow = np.flatnonzero(loading & (dd > 0) & (de > 0))
    if len(grow):
        dir_t = np.empty((len(grow), 3))  # d(traction)/d(d) = -K0 (<dn>, beta^2 dt)
        dir_t[:, 0] = dn[grow]
        dir_t[:, 1:] = beta2 * delta[grow, 1:]
        g = dir_t.copy()  # d(delta_e)/d(delta) = (<dn> <dn>', beta^2 dt) / delta_e
        g[:, 0] *= dm[grow]
        g /= de[grow, None]
        tangent[grow] -= (k0 * dd[grow])[:, None, None] * (dir_t[:, :, None] * g[:, None, :])
    return {"tangent": tangent, "secant": secant_tangent}


def dissipated_energy(law: CohesiveLaw, kappa: np.ndarray) -> np.ndarray:
    """Energy (J/m^2) dissipated at a point whose history is kappa (mode I, rate-independent):
    the work to open it to kappa minus the elastic energy recovered along the secant."""
    kappa = np.asarray(kappa, dtype=float)
    if law.law == "exponential":
        dc, tn = law.critical_opening, law.strength
        work = tn * E_NUMBER * dc * (1.0 - np.exp(-kappa / dc) * (1.0 + kappa / dc))
        elastic = 0.5 * tn * kappa ** 2 / dc * np.exp(1.0 - kappa / dc)
        return work - elastic
    df, tn = law.final_opening, law.strength
    d0 = tn / law.initial_stiffness
    k = np.minimum(kappa, df)
    soft_work = tn / (df - d0) * (df * (k - d0) - 0.5 * (k ** 2 - d0 ** 2))
    work = np.where(k > d0, 0.5 * tn * d0 + soft_work, 0.5 * law.initial_stiffness * k ** 2)
    t_k = np.where(k > d0, tn * (df - k) / (df - d0), law.initial_stiffness * k)
    # the elastic range dissipates nothing (the difference below is round-off there)
    return np.where(kappa >= df, 0.5 * tn * df, np.where(k > d0, work - 0.5 * t_k * k, 0.0))
