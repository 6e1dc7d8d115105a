"""Closed-form solutions for verification (Crank, The Mathematics of Diffusion, 2nd ed. 1975;
Cheng & Verbrugge, J. Power Sources 190, 453 (2009))."""

import numpy as np
from scipy.optimize import brentq

N_TERMS = 200


def sphere_flux_roots(n: int = N_TERMS) -> np.ndarray:
    """First n positive roots of a cot(a) = 1 (i.e. tan a = a), Crank eq. 6.44."""
    roots = []
    for k in range(1, n + 1):
        lo, hi = k * np.pi + 1e-9, k * np.pi + np.pi / 2 - 1e-9
        roots.append(brentq(lambda a: np.tan(a) - a, lo, hi))
    return np.array(roots)


_ROOTS = sphere_flux_roots()


def crank_constant_flux(r: np.ndarray, t: float, R: float, D: float, j: float, c0: float
                        ) -> np.ndarray:
    """c(r, t) in a sphere losing Li at a constant outward surface flux j (Crank eq. 6.44).

    c - c0 = -(j R/D) [3 tau + r^2/(2R^2) - 3/10
                       - (2R/r) sum sin(a_n r/R) / (a_n^2 sin a_n) exp(-a_n^2 tau)],  tau = D t/R^2.
    """
    r = np.maximum(np.asarray(r, dtype=float), 1e-12 * R)
    tau = D * t / R ** 2
    a = _ROOTS[:, None]
    series = np.sum(np.sin(a * r / R) / (a ** 2 * np.sin(a)) * np.exp(-a ** 2 * tau), axis=0)
    return c0 - (j * R / D) * (3 * tau + r ** 2 / (2 * R ** 2) - 0.3 - (2 * R / r) * series)


def crank_uptake(tau: float, n: int = N_TERMS) -> float:
    """M_t / M_inf for a sphere with fixed surface concentration (Crank eq. 6.20)."""
    k = np.arange(1, n + 1)
    return 1.0 - 6.0 / np.pi ** 2 * np.sum(np.exp(-k ** 2 * np.pi ** 2 * tau) / k ** 2)


def sphere_stresses(r: np.ndarray, eps_of_r, R: float, E: float, nu: float
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Radial and hoop stress (Pa) of a free sphere with isotropic eigenstrain eps(r).

    sigma_r = 2E/(1-nu) [I(R) - I(r)],  sigma_t = E/(1-nu) [2 I(R) + I(r) - eps(r)],
    I(r) = r^-3 int_0^r eps(s) s^2 ds  (Cheng & Verbrugge 2009, with Omega C/3 -> eps).
    """
    s = np.linspace(0.0, R, 4001)
    e = eps_of_r(s)
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (e[1:] * s[1:] ** 2 + e[:-1] * s[:-1] ** 2)
                                           * np.diff(s))])
    r = np.asarray(r, dtype=float)
    I_r = np.interp(r, s, cum) / np.maximum(r, 1e-12 * R) ** 3
    I_R = cum[-1] / R ** 3
    sig_r = 2 * E / (1 - nu) * (I_R - I_r)
    sig_t = E / (1 - nu) * (2 * I_R + I_r - eps_of_r(r))
    return sig_r, sig_t
