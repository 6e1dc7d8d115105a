"""Li transport: dc/dt = div(D grad c) with anisotropic D per grain and a slow shell.

D = D_perp (I - n n^T) + D_par n n^T: in a grain D_perp = D_ab, D_par = D_c (layers
perpendicular to the c axis n conduct fast); in the shell D_perp = D_par = D_L.
Backward Euler in time; galvanostatic loading is an outward normal flux j (mol/m^2/s) on the
outer surface, potentiostatic loading a fixed surface concentration (a Dirichlet condition
applied by the solver). The optional stress-assisted flux follows Fick's law with a chemical
potential mu = mu0 + R T ln c - Omega sigma_h (e.g. Zhang, Shyy & Sastry, J. Electrochem. Soc.
154, A910 (2007)): J = -D grad c + D c Omega/(R T) grad sigma_h.
"""

from __future__ import annotations

import ufl


def diffusivity(d_perp, d_par, n):
    """Diffusivity tensor D_perp (I - n n^T) + D_par n n^T (m^2/s)."""
    M = ufl.outer(n, n)
    return d_perp * (ufl.Identity(3) - M) + d_par * M


def backward_euler_forms(c, v, c_old, dt, D, ds_flux, flux, stress_term=None):
    """Forms of one backward-Euler step of Li transport.

    int (c - c_old)/dt v dx + int D grad c . grad v dx + int j v ds = 0,
    optionally - int D c Omega/(R T) grad(sigma_h) . grad v dx.

    Parameters
    ----------
    c, v: trial and test functions (c in mol/m^3).
    c_old: concentration of the previous step (mol/m^3).
    dt: time step (s).
    D: diffusivity tensor (m^2/s).
    ds_flux: surface measure where the flux acts.
    flux: outward Li flux j (mol/m^2/s); positive on charge (delithiation).
    stress_term: (Omega/(R T) in m^3/J, sigma_h in Pa) or None.
    """
    a = (c / dt) * v * ufl.dx + ufl.inner(ufl.dot(D, ufl.grad(c)), ufl.grad(v)) * ufl.dx
    if stress_term is not None:
        factor, sigma_h = stress_term
        a -= factor * c * ufl.inner(ufl.dot(D, ufl.grad(sigma_h)), ufl.grad(v)) * ufl.dx
    L = (c_old / dt) * v * ufl.dx - flux * v * ds_flux
    return a, L


def linearised_reaction_forms(c, v, c_it, N, N_c, ds_reaction):
    """Forms of one Newton iteration for a surface reaction flux N(c) (mol/m^2/s, outward),
    linearised about the iterate c_it: N(c) ~ N(c_it) + dN/dc (c - c_it).

    The returned a and L add to :func:`backward_euler_forms` (with its flux at zero):
    a = int dN/dc c v ds, L = -int (N(c_it) - dN/dc c_it) v ds.

    Parameters
    ----------
    c, v: trial and test functions; c_it: the current iterate (mol/m^3).
    N, N_c: the flux and its derivative with respect to c at c_it (m/s).
    ds_reaction: surface measure where the reaction takes place.
    """
    a = N_c * c * v * ds_reaction
    L = -(N - N_c * c_it) * v * ds_reaction
    return a, L
