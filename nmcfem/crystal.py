"""Crystal tensors of the layered grains: hexagonal stiffness, rotations, diffusivity, strain.

NMC811 (R-3m) is treated as transversely isotropic about the c axis with the five constants
C11, C12, C13, C33, C44 of Supplementary Table 1 (C66 = (C11 - C12)/2). Voigt order is
(11, 22, 33, 23, 13, 12) with engineering shear strains. NumPy only: the finite-element side
(``nmcfem.physics``) uses the equivalent axis-invariant form with the five coefficients of
:func:`transverse_coefficients`, which needs only the c axis of each grain.
"""

from __future__ import annotations

import numpy as np

from nmcfem.config import ChemicalStrain, GrainMaterial

VOIGT_PAIRS = ((0, 0), (1, 1), (2, 2), (1, 2), (0, 2), (0, 1))


def hexagonal_stiffness(C11: float, C12: float, C13: float, C33: float, C44: float) -> np.ndarray:
    """6x6 Voigt stiffness (Pa) of a hexagonal crystal with c along axis 3.

    Parameters
    ----------
    C11, C12, C13, C33, C44: elastic constants in Pa (C66 = (C11 - C12)/2).
    """
    C = np.zeros((6, 6))
    C[0, 0] = C[1, 1] = C11
    C[0, 1] = C[1, 0] = C12
    C[0, 2] = C[2, 0] = C[1, 2] = C[2, 1] = C13
    C[2, 2] = C33
    C[3, 3] = C[4, 4] = C44
    C[5, 5] = 0.5 * (C11 - C12)
    return C


def grain_stiffness(m: GrainMaterial) -> np.ndarray:
    """6x6 Voigt stiffness (Pa) of the grain material ``m`` in the crystal frame."""
    return hexagonal_stiffness(m.C11, m.C12, m.C13, m.C33, m.C44)


def isotropic_stiffness(E: float, nu: float) -> np.ndarray:
    """6x6 Voigt stiffness (Pa) of an isotropic material (E in Pa, nu dimensionless)."""
    lam = E * nu / ((1 + nu) * (1 - 2 * nu))
    mu = E / (2 * (1 + nu))
    C = np.zeros((6, 6))
    C[:3, :3] = lam
    C[np.arange(3), np.arange(3)] += 2 * mu
    C[np.arange(3, 6), np.arange(3, 6)] = mu
    return C


def voigt_to_tensor(C: np.ndarray) -> np.ndarray:
    """Fourth-order tensor C_ijkl (Pa) from a 6x6 Voigt stiffness."""
    T = np.zeros((3, 3, 3, 3))
    for a, (i, j) in enumerate(VOIGT_PAIRS):
        for b, (k, m) in enumerate(VOIGT_PAIRS):
            for ii, jj in {(i, j), (j, i)}:
                for kk, mm in {(k, m), (m, k)}:
                    T[ii, jj, kk, mm] = C[a, b]
    return T


def tensor_to_voigt(T: np.ndarray) -> np.ndarray:
    """6x6 Voigt stiffness from a fourth-order tensor with minor symmetries."""
    return np.array([[T[i, j, k, m] for (k, m) in VOIGT_PAIRS] for (i, j) in VOIGT_PAIRS])


def rotate_tensor(C: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotate a 6x6 Voigt stiffness by R (crystal -> lab) through the fourth-order tensor."""
    T = voigt_to_tensor(C)
    return tensor_to_voigt(np.einsum("ia,jb,kc,ld,abcd->ijkl", R, R, R, R, T))


def bond_matrix(R: np.ndarray) -> np.ndarray:
    """Bond stress-transformation matrix M (6x6) so that C_lab = M C M^T (Bond 1943)."""
    M = np.zeros((6, 6))
    for a, (i, j) in enumerate(VOIGT_PAIRS):
        for b, (k, m) in enumerate(VOIGT_PAIRS):
            M[a, b] = R[i, k] * R[j, m] + (R[i, m] * R[j, k] if k != m else 0.0)
    return M


def rotate_bond(C: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Rotate a 6x6 Voigt stiffness by R (crystal -> lab) with the Bond matrix."""
    M = bond_matrix(R)
    return M @ C @ M.T


def voigt_reuss_hill(C: np.ndarray) -> dict[str, float]:
    """Voigt, Reuss and Hill bulk/shear moduli (Pa), Hill Young's modulus and Poisson ratio.

    Hill, Proc. Phys. Soc. A 65, 349 (1952): the arithmetic mean of the Voigt (uniform strain)
    and Reuss (uniform stress) bounds of a random polycrystal.
    """
    S = np.linalg.inv(C)
    d, o, s = np.trace(C[:3, :3]), C[1, 2] + C[0, 2] + C[0, 1], np.trace(C[3:, 3:])
    K_v, G_v = (d + 2 * o) / 9.0, (d - o + 3 * s) / 15.0
    d, o, s = np.trace(S[:3, :3]), S[1, 2] + S[0, 2] + S[0, 1], np.trace(S[3:, 3:])
    K_r, G_r = 1.0 / (d + 2 * o), 15.0 / (4 * d - 4 * o + 3 * s)
    K_h, G_h = 0.5 * (K_v + K_r), 0.5 * (G_v + G_r)
    return {"K_voigt": K_v, "G_voigt": G_v, "K_reuss": K_r, "G_reuss": G_r, "K_hill": K_h,
            "G_hill": G_h, "E_hill": 9 * K_h * G_h / (3 * K_h + G_h),
            "nu_hill": (3 * K_h - 2 * G_h) / (2 * (3 * K_h + G_h))}


def young_modulus_along(C: np.ndarray, direction: np.ndarray) -> float:
    """Young's modulus (Pa) along a direction: 1 / (d d : S : d d).

    With the Voigt compliance S acting on engineering shear strains, the uniaxial stress
    d d has Voigt components w = (d1^2, d2^2, d3^2, d2 d3, d1 d3, d1 d2) and the strain along d
    is w . S w.
    """
    d = np.asarray(direction, dtype=float)
    d = d / np.linalg.norm(d)
    w = np.array([d[i] * d[j] for i, j in VOIGT_PAIRS])
    return float(1.0 / (w @ np.linalg.solve(C, w)))


def transverse_coefficients(C11: float, C12: float, C13: float, C33: float, C44: float
                            ) -> dict[str, float]:
    """Coefficients (Pa) of the axis-invariant transversely isotropic law (Spencer 1982).

    sigma = lam tr(e) I + 2 muT e + alpha (tr(e) M + (n.e.n) I) + 2 (muL - muT)(e M + M e)
            + beta (n.e.n) M,   with M = n n^T and n the c axis, reproduces the hexagonal C.
    """
    return {"lam": C12, "muT": 0.5 * (C11 - C12), "muL": C44, "alpha": C13 - C12,
            "beta": C11 + C33 - 2 * C13 - 4 * C44}


def isotropic_coefficients(E: float, nu: float) -> dict[str, float]:
    """Coefficients (Pa) of the same law for an isotropic material (alpha = beta = 0)."""
    mu = E / (2 * (1 + nu))
    return {"lam": E * nu / ((1 + nu) * (1 - 2 * nu)), "muT": mu, "muL": mu, "alpha": 0.0,
            "beta": 0.0}


def diffusivity_tensor(D_ab: float, D_c: float, n: np.ndarray) -> np.ndarray:
    """Diffusivity D_ab (I - n n^T) + D_c n n^T (m^2/s) for a unit c axis ``n``."""
    n = np.asarray(n, dtype=float) / np.linalg.norm(n)
    M = np.outer(n, n)
    return D_ab * (np.eye(3) - M) + D_c * M


def chemical_strain_components(cs: ChemicalStrain, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """In-plane and c-axis chemical strains eps_a(x), eps_c(x) relative to x = 1.

    ``law = table``: piecewise linear in x through the tabulated operando-XRD strains
    (Maerker et al., Chem. Mater. 31, 2545 (2019)), held constant beyond the table's ends.
    ``law = linear``: isotropic eps = beta (x - 1) (constant partial molar volume).

    Parameters
    ----------
    cs: chemical-strain section of the config.
    x: Li fractions (any shape).
    """
    x = np.asarray(x, dtype=float)
    if cs.law == "linear":
        eps = cs.beta * (x - 1.0)
        return eps, eps.copy()
    # np.interp needs ascending abscissae; the table is given from x = 1 downwards.
    xs = np.asarray(cs.strain_x)[::-1]
    return (np.interp(x, xs, np.asarray(cs.eps_a)[::-1]),
            np.interp(x, xs, np.asarray(cs.eps_c)[::-1]))


def chemical_strain_tensor(cs: ChemicalStrain, x: float, n: np.ndarray) -> np.ndarray:
    """Chemical strain tensor eps_a (I - n n^T) + eps_c n n^T in the lab frame at Li fraction x."""
    ea, ec = chemical_strain_components(cs, np.array([x]))
    n = np.asarray(n, dtype=float) / np.linalg.norm(n)
    M = np.outer(n, n)
    return float(ea[0]) * (np.eye(3) - M) + float(ec[0]) * M
