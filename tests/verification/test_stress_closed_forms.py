"""Diffusion-induced stress in an isotropic sphere (Cheng & Verbrugge 2009) and a stress-free
crystal under uniform chemical strain."""

import numpy as np
import pytest
from mpi4py import MPI

from .closed_forms import crank_constant_flux, sphere_stresses
from .conftest import E_ISO, NU_ISO, advance, isotropic_sphere_config, make_problem

# runs simulations: make test-fast leaves these out
pytestmark = pytest.mark.slow

D, R = 7e-15, 5e-6
BETA = 0.02  # strain per unit change of x (config materials.grain.chemical_strain.beta)
N_BINS = 8


def _binned_stresses(p):
    """Volume-free bin averages of radial and hoop stress (Pa) over cell-centre radius bins."""
    n = p.domain.mesh.topology.index_map(3).size_local
    xyz = p.domain.mesh.geometry.x[p.domain.mesh.geometry.dofmaps[0][:n]].mean(axis=1)
    r = np.linalg.norm(xyz, axis=1)
    e = xyz / r[:, None]
    sig = p.mechanics.stress.x.array.reshape(-1, 3, 3)[:n]
    s_rr = np.einsum("ni,nij,nj->n", e, sig, e)
    s_tt = 0.5 * (np.trace(sig, axis1=1, axis2=2) - s_rr)
    edges = np.linspace(0.1 * R, R, N_BINS + 1)
    idx = np.digitize(r, edges) - 1
    sums = np.zeros((3, N_BINS))
    for k in range(N_BINS):
        m = idx == k
        sums[:, k] = [m.sum(), s_rr[m].sum(), s_tt[m].sum()]
    sums = p.comm.allreduce(sums, op=MPI.SUM)
    r_sum = p.comm.allreduce(np.array([r[idx == k].sum() for k in range(N_BINS)]), op=MPI.SUM)
    return r_sum / sums[0], sums[1] / sums[0], sums[2] / sums[0]


def test_galvanostatic_stresses_match_cheng_verbrugge(mesh_cache):
    p = make_problem(isotropic_sphere_config(0.45e-6), mesh_cache)
    j = p.transport.flux_value

    def eps(r):
        c_max = p.transport.c_max
        return BETA * (crank_constant_flux(r, p.t, R, D, j, c_max) / c_max - 1.0)

    worst = {}
    for tau in (0.2, 0.4, 0.7):
        steps = int(np.ceil((tau * R ** 2 / D - p.t) / 5.0))
        advance(p, [(tau * R ** 2 / D - p.t) / steps] * steps)
        p.solve_mechanics()
        rb, srr, stt = _binned_stresses(p)
        ex_r, ex_t = sphere_stresses(rb, eps, R, E_ISO, NU_ISO)
        scale = np.max(np.abs(ex_t))
        worst[tau] = (np.max(np.abs(srr - ex_r)) / scale, np.max(np.abs(stt - ex_t)) / scale)
    print("max |error| / max |hoop| (radial, hoop) per tau:", worst)
    assert max(max(v) for v in worst.values()) < 0.05
    # steady galvanostatic surface hoop stress: beta_c E j R / (5 D (1 - nu)), beta_c = BETA/c_max
    steady = BETA / p.transport.c_max * E_ISO * j * R / (5 * D * (1 - NU_ISO))
    surface_hoop = sphere_stresses(np.array([R]), eps, R, E_ISO, NU_ISO)[1][0]
    assert surface_hoop == pytest.approx(steady, rel=0.01)  # tau = 0.7: transients have decayed
    rb, srr, stt = _binned_stresses(p)
    fe_surface = np.polyval(np.polyfit(rb[-3:], stt[-3:], 2), R)  # extrapolate bins to r = R
    print(f"surface hoop: FE {fe_surface:.4g} Pa, closed form {steady:.4g} Pa")
    assert fe_surface == pytest.approx(steady, rel=0.05)


def test_free_crystal_under_uniform_chemical_strain_is_stress_free(mesh_cache):
    # anisotropic hexagonal grain with the tabulated strain, uniform x: free expansion
    cfg = isotropic_sphere_config(1.0e-6, ["materials.grain.C11=2.59e11",
                                           "materials.grain.C12=1.07e11",
                                           "materials.grain.C13=7.5e10",
                                           "materials.grain.C33=1.94e11",
                                           "materials.grain.C44=5.9e10",
                                           "materials.grain.chemical_strain.law=table",
                                           "geometry.orientation_seed=5"])
    p = make_problem(cfg, mesh_cache)
    p.transport.c.x.array[:] = 0.45 * p.transport.c_max
    p.restore(0.0)
    p.solve_mechanics()
    n = p.domain.mesh.topology.index_map(3).size_local
    sig = np.abs(p.mechanics.stress.x.array.reshape(-1, 9)[:n]).max(initial=0.0)
    strain = max(abs(p.mechanics.eps_a.x.array).max(), abs(p.mechanics.eps_c.x.array).max())
    ratio = p.comm.allreduce(sig, op=MPI.MAX) / (2.59e11 * strain)
    print(f"max |stress| / (C11 max|eps_ch|) = {ratio:.2e}")
    assert ratio < 1e-6
    # and the displacement is the free expansion: u = eps_ch x up to a rigid motion
    assert np.abs(p.mechanics.u.x.array).max() > 0.0
