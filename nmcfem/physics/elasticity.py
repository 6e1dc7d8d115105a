"""Small-strain chemo-elasticity: div sigma = 0, sigma = C_g : (eps(u) - eps_ch(x)).

The grain stiffness is hexagonal (transversely isotropic about the c axis n); it is written in
Spencer's axis-invariant form (A. J. M. Spencer, "Deformations of Fibre-reinforced Materials",
1972), which needs only n per grain:

    sigma = lam tr(e) I + 2 muT e + alpha (tr(e) M + (n.e.n) I) + 2 (muL - muT)(e M + M e)
            + beta (n.e.n) M,          M = n n^T,

with lam = C12, muT = C66, muL = C44, alpha = C13 - C12, beta = C11 + C33 - 2 C13 - 4 C44
(see ``nmcfem.crystal.transverse_coefficients``); the isotropic shell is the case
alpha = beta = 0, muT = muL. The chemical strain of a grain is eps_a (I - M) + eps_c M.
"""

from __future__ import annotations

import ufl


def strain(u):
    """Small strain tensor eps(u) = sym(grad u) (dimensionless; u in m)."""
    return ufl.sym(ufl.grad(u))


def axis_projector(n):
    """M = n n^T for the unit c axis n."""
    return ufl.outer(n, n)


def chemical_strain(eps_a, eps_c, n, active):
    """Chemical strain eps_a (I - M) + eps_c M, switched off where ``active`` = 0 (shell).

    Parameters
    ----------
    eps_a, eps_c: in-plane and c-axis strains relative to x = 1 (dimensionless).
    n: unit c axis per grain.
    active: 1 in grains, 0 in the shell.
    """
    M = axis_projector(n)
    return active * (eps_a * (ufl.Identity(3) - M) + eps_c * M)


def stress(e, n, k):
    """Transversely isotropic stress (Pa) for strain e, axis n and coefficients k (Pa).

    Parameters
    ----------
    e: elastic strain tensor.
    n: unit c axis.
    k: mapping with UFL coefficients ``lam, muT, muL, alpha, beta`` (Pa).
    """
    M = axis_projector(n)
    eye = ufl.Identity(3)
    tr = ufl.tr(e)
    nen = ufl.inner(n, ufl.dot(e, n))
    return (k["lam"] * tr * eye + 2 * k["muT"] * e + k["alpha"] * (tr * M + nen * eye)
            + 2 * (k["muL"] - k["muT"]) * (ufl.dot(e, M) + ufl.dot(M, e)) + k["beta"] * nen * M)


def equilibrium_forms(u, v, n, k, eps_ch):
    """Bilinear and linear forms of div sigma = 0 with a free surface.

    a(u, v) = int sigma(eps(u)) : eps(v) dx,   L(v) = int sigma(eps_ch) : eps(v) dx.
    """
    a = ufl.inner(stress(strain(u), n, k), strain(v)) * ufl.dx
    L = ufl.inner(stress(eps_ch, n, k), strain(v)) * ufl.dx
    return a, L


def elastic_energy_density(u, n, k, eps_ch):
    """Stored elastic energy per volume 1/2 sigma : (eps(u) - eps_ch) (J/m^3)."""
    e = strain(u) - eps_ch
    return 0.5 * ufl.inner(stress(e, n, k), e)


def chemical_work_increment(u_old, eps_ch_old, u, eps_ch, n, k):
    """Work per volume done by the chemical strain over a step (J/m^3), trapezoidal in time:
    -1/2 (sigma_old + sigma) : (eps_ch - eps_ch_old). With equilibrium at both ends of the
    step it equals the change of the bulk elastic energy plus the (trapezoidal) work done on
    the interfaces, the balance the time series checks."""
    s_old = stress(strain(u_old) - eps_ch_old, n, k)
    s_new = stress(strain(u) - eps_ch, n, k)
    return -0.5 * ufl.inner(s_old + s_new, eps_ch - eps_ch_old)


def von_mises(s):
    """Von Mises equivalent stress sqrt(3/2 dev(s):dev(s)) (Pa)."""
    d = ufl.dev(s)
    return ufl.sqrt(1.5 * ufl.inner(d, d))


def hydrostatic(s):
    """Hydrostatic stress tr(s)/3 (Pa)."""
    return ufl.tr(s) / 3.0
