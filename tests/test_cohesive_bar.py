"""Finite-element two-block bar with one cohesive interface, pulled apart under displacement
control: peak traction t_n and dissipated energy G_c x area (bilinear and exponential)."""

from types import SimpleNamespace

import numpy as np
import pytest
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx
import dolfinx.fem.petsc
import ufl

from nmcfem.cohesive.cutting import split_interfaces
from nmcfem.cohesive.interfaces import CohesiveInterfaces, statistics
from nmcfem.cohesive.law import CohesiveLaw
from nmcfem.cohesive.step_solver import CohesiveEquilibrium
from nmcfem.errors import SolverError
from nmcfem.geometry import GB_OFFSET, orient_positive
from nmcfem.mesh import create_distributed

L, W = 1e-6, 0.5e-6  # block length and width (m)
E_BLOCK = 1e14  # Pa: stiff blocks, so the opening is the applied displacement
TN, GC = 200e6, 1.0
#: the cracking step's iteration, tight; MUMPS factorisations reused by GMRES
SETTINGS = SimpleNamespace(rtol=1e-10, atol=1e-14, max_iterations=200, memory=5, newton=True,
                           negative_curvature=True, krylov_limit=20,
                           solves_per_factorisation=6, symmetric_factorisation=True)
LINEAR = {"ksp_type": "gmres", "ksp_pc_side": "right", "pc_type": "lu",
          "pc_factor_mat_solver_type": "mumps"}


def two_blocks(nx=2, ny=1):
    """Structured tetrahedral box [0, 2L] x [0, W]^2, region 1 left of x = L, 2 right."""
    xs = np.linspace(0, 2 * L, 2 * nx + 1)
    ys = np.linspace(0, W, ny + 1)
    X, Y, Z = np.meshgrid(xs, ys, ys, indexing="ij")
    pts = np.stack([X.ravel(), Y.ravel(), Z.ravel()], axis=1)
    idx = np.arange(len(pts)).reshape(len(xs), len(ys), len(ys))
    tets = []
    for i in range(len(xs) - 1):
        for j in range(ny):
            for k in range(ny):
                c = [idx[i + a, j + b, k + d] for a in (0, 1) for b in (0, 1) for d in (0, 1)]
                # Kuhn split of the cube along the 0-7 diagonal (conformal between cubes)
                for path in ((1, 3), (1, 5), (2, 3), (2, 6), (4, 5), (4, 6)):
                    p1, p2 = path
                    tets.append([c[0], c[p1], c[p1 | p2], c[7]])
    tets = orient_positive(pts, np.array(tets))
    cent = pts[tets].mean(axis=1)
    tags = np.where(cent[:, 0] < L, 1, 2).astype(np.int32)
    faces = np.sort(np.concatenate([tets[:, [1, 2, 3]], tets[:, [0, 2, 3]], tets[:, [0, 1, 3]],
                                    tets[:, [0, 1, 2]]]), axis=1)
    faces = np.unique(faces, axis=0)
    on_mid = np.all(np.isclose(pts[faces][:, :, 0], L), axis=1)
    data = SimpleNamespace(points=pts, tets=tets, cell_tags=tags, facets=faces[on_mid],
                           facet_tags=np.full(on_mid.sum(), GB_OFFSET, dtype=np.int32))
    return data


def _eps(w):
    return ufl.sym(ufl.grad(w))


def cut_blocks(data, law, comm):
    """The blocks' P1 displacement space (m) on the mesh cut along their interface, and the
    interface's cohesive points with ``law``."""
    cut = split_interfaces(data)
    arrays = SimpleNamespace(points=cut.points, tets=cut.tets, cell_tags=data.cell_tags,
                             facets=np.zeros((0, 3), dtype=np.int64),
                             facet_tags=np.zeros(0, dtype=np.int32))
    mesh, _, _ = create_distributed(arrays if comm.rank == 0 else None, comm)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    return V, CohesiveInterfaces(V, cut.plus, cut.minus, cut.normal, cut.area, law,
                                 len(cut.points))


def pull(law_name, steps, end, comm=MPI.COMM_WORLD, path=None, settings=SETTINGS, linear=LINEAR,
         **law_options):
    """Open the bar's interface along a displacement path (m, (n,3) end displacements of the
    right face; default: a straight pull to ``end`` in ``steps`` steps), with the step solver's
    ``settings`` and PETSc options ``linear``. Returns the mean normal opening and mean traction
    (local frame) per step, the interfaces, law and area."""
    law = CohesiveLaw(strength=TN, toughness=GC, law=law_name,
                      **{"residual": 0.0, **law_options})
    V, interfaces = cut_blocks(two_blocks(), law, comm)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = dolfinx.fem.form(E_BLOCK * ufl.inner(_eps(u), _eps(v)) * ufl.dx)  # nu = 0
    left = dolfinx.fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = dolfinx.fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 2 * L))
    pull_value = dolfinx.fem.Constant(V.mesh, np.zeros(3))
    bcs = [dolfinx.fem.dirichletbc(np.zeros(3), left, V),
           dolfinx.fem.dirichletbc(pull_value, right, V)]
    K = dolfinx.fem.petsc.assemble_matrix(a)
    K.assemble()
    solver = CohesiveEquilibrium(K, interfaces, settings, linear, bcs=bcs)
    uh = dolfinx.fem.Function(V)
    b = dolfinx.fem.petsc.create_vector(V)
    if path is None:
        path = np.outer(np.linspace(0, end, steps)[1:], [1.0, 0.0, 0.0])
    opening, traction = [np.zeros(3)], [np.zeros(3)]
    for d in path:
        pull_value.value = np.asarray(d, dtype=float)
        dolfinx.fem.petsc.set_bc(uh.x.petsc_vec, bcs)
        uh.x.scatter_forward()
        solver.solve(b, uh)
        interfaces.history.commit()
        # the interface is loaded uniformly: its mean opening and traction describe the bar
        opening.append(interfaces.history.delta.mean(axis=0))
        traction.append(interfaces.history.traction.mean(axis=0))
    solver.destroy()
    return np.array(opening), np.array(traction), interfaces, law, W * W


@pytest.mark.parametrize("law_name,end_factor,steps", [("bilinear", 1.05, 221),
                                                       ("exponential", 25.0, 301)])
def test_two_block_bar(law_name, end_factor, steps):
    probe = CohesiveLaw(strength=TN, toughness=GC, law=law_name)
    scale = probe.final_opening if law_name == "bilinear" else probe.critical_opening
    opening, trac, interfaces, law, area = pull(law_name, steps, end_factor * scale)
    traction, opening = trac[:, 0], opening[:, 0]
    work = float(np.sum(0.5 * (traction[1:] + traction[:-1]) * np.diff(opening))) * area
    diag = statistics(interfaces)
    print(f"{law_name}: peak {traction.max() / 1e6:.2f} MPa, work {work / area:.4f} J/m^2, "
          f"dissipated {diag['dissipated_energy [J]'] / area:.4f} J/m^2, cracked "
          f"{diag['cracked_area_full [m^2]'] / area:.2f} of the area")
    assert traction.max() == pytest.approx(TN, rel=0.01)
    assert work / area == pytest.approx(GC, rel=0.02)
    assert diag["dissipated_energy [J]"] == pytest.approx(GC * area, rel=0.02)
    assert diag["cracked_area_full [m^2]"] == pytest.approx(area, rel=1e-9)


def test_alternate_minimisation_alone_reaches_the_newton_solution():
    """Without Newton steps (quasi-Newton / alternate minimisation only) the bar follows the
    same traction-separation curve; linear solves that cannot converge fail clearly."""
    end = 1.05 * CohesiveLaw(strength=TN, toughness=GC).final_opening
    reference = pull("bilinear", 41, end)[1][:, 0]
    for memory in (0, 5):
        settings = SimpleNamespace(**{**vars(SETTINGS), "newton": False, "memory": memory,
                                      "max_iterations": 2000})
        traction = pull("bilinear", 41, end, settings=settings)[1][:, 0]
        assert np.allclose(traction, reference, rtol=1e-6, atol=1e-6 * TN), memory
    hopeless = {"ksp_type": "gmres", "pc_type": "none", "ksp_max_it": 1}
    with pytest.raises(SolverError, match="did not converge"):
        pull("bilinear", 41, end, linear=hopeless)


def test_bar_under_compression_does_not_damage():
    law = CohesiveLaw(strength=TN, toughness=GC)
    end = -2.0 * law.final_opening
    opening, traction, interfaces, law, area = pull("bilinear", 11, end)
    # no damage; the history holds only round-off of the (zero) shear opening
    assert np.all(interfaces.history.damage == 0)
    assert np.all(interfaces.history.kappa < 1e-9 * law.final_opening)
    # the contact penalty carries the load: traction = K0 x (negative) opening
    assert traction[-1, 0] == pytest.approx(law.initial_stiffness * opening[-1, 0], rel=1e-6)
    assert traction[-1, 0] < -10 * TN


def test_bar_unloaded_before_failure_follows_the_secant():
    law = CohesiveLaw(strength=TN, toughness=GC)
    peak = 0.4 * law.final_opening  # on the softening branch
    up = np.linspace(0, peak, 41)[1:]
    down = np.linspace(peak, 0.1 * peak, 31)[1:]
    again = np.linspace(0.1 * peak, peak, 31)[1:]
    path = np.outer(np.concatenate([up, down, again]), [1.0, 0.0, 0.0])
    opening, traction, interfaces, _, _ = pull("bilinear", 0, 0, path=path)
    n_up = len(up)
    secant = traction[n_up, 0] / opening[n_up, 0]
    back = slice(n_up + 1, n_up + len(down) + 1)
    assert np.allclose(traction[back, 0], secant * opening[back, 0], rtol=1e-6)
    reload = slice(n_up + len(down) + 1, None)
    assert np.allclose(traction[reload, 0], secant * opening[reload, 0], rtol=1e-6)
    # the history (and so the damage) did not change while unloading and reloading
    assert interfaces.history.kappa.max() == pytest.approx(opening[n_up, 0], rel=1e-6)


@pytest.mark.parametrize("angle_deg", [45.0, 90.0])
def test_bar_in_mixed_mode_follows_the_effective_opening(angle_deg):
    """Opening at an angle to the normal: the effective traction sqrt(t_n^2 + t_t^2/beta^2)
    peaks at t_n where the effective opening reaches t_n/K0, and the work is G_c."""
    beta = 0.7
    law = CohesiveLaw(strength=TN, toughness=GC, shear_weight=beta)
    a = np.radians(angle_deg)
    direction = np.array([np.cos(a), np.sin(a), 0.0])
    # the effective opening grows at sqrt(cos^2 + beta^2 sin^2) per unit of path
    rate = np.sqrt(np.cos(a) ** 2 + beta ** 2 * np.sin(a) ** 2)
    end = 1.05 * law.final_opening / rate
    path = np.outer(np.linspace(0, end, 301)[1:], direction)
    opening, traction, interfaces, _, area = pull("bilinear", 0, 0, path=path,
                                                  shear_weight=beta)
    t_eff = np.sqrt(traction[:, 0] ** 2 + np.sum(traction[:, 1:] ** 2, axis=1) / beta ** 2)
    assert t_eff.max() == pytest.approx(TN, rel=0.01)
    work = np.sum(0.5 * np.einsum("ki,ki->k", traction[1:] + traction[:-1],
                                  np.diff(opening, axis=0)))
    assert work == pytest.approx(GC, rel=0.02)
    diag = statistics(interfaces)
    assert diag["cracked_area_full [m^2]"] == pytest.approx(area, rel=1e-9)
    assert diag["dissipated_energy [J]"] == pytest.approx(GC * area, rel=0.02)


def test_a_reused_factorisation_serves_until_it_is_stale():
    """The cracking solves' preconditioner: the first solve factorises; a changed matrix is
    solved by GMRES on the old factorisation, counted in ``served``, until marked stale (the
    step solver does so at the start of a step once solver.interface.solves_per_factorisation
    solves were served); a solve that a stale factorisation cannot finish in krylov_limit
    iterations is repeated on a fresh one."""
    from nmcfem.cohesive.step_solver import ReusedPreconditioner

    n = 60
    A = PETSc.Mat().createAIJ([n, n], nnz=3, comm=MPI.COMM_SELF)
    for i in range(n):  # 1D Laplacian, regular
        A.setValue(i, i, 2.0)
        if i:
            A.setValue(i, i - 1, -1.0)
            A.setValue(i - 1, i, -1.0)
    A.assemble()
    lin = ReusedPreconditioner(A, LINEAR, krylov_limit=6)
    b, x = A.createVecLeft(), A.createVecLeft()
    b.set(1.0)
    lin.solve(b, x, 1e-10)
    assert lin.setups == 1
    r = b.duplicate()
    for k in range(1, 9):  # small changes: the old factorisation serves three solves
        A.shift(2e-4)
        lin.stale = lin.served >= 3
        its = lin.solve(b, x, 1e-10)
        refreshed = k % 3 == 0
        assert lin.setups == 1 + k // 3
        assert its == 1 if refreshed else 1 < its <= 6  # a fresh factorisation is exact
        A.mult(x, r)
        r.axpy(-1.0, b)
        assert r.norm() <= 1e-9 * b.norm()
    # a large change: the stale factorisation cannot finish in krylov_limit, a fresh one does
    d = A.getDiagonal()
    d.array[:] *= np.linspace(1.0, 50.0, n)
    A.setDiagonal(d)
    lin.served, setups = 0, lin.setups  # not a scheduled refresh
    its = lin.solve(b, x, 1e-10)
    assert lin.setups == setups + 1 and its > 6
    A.mult(x, r)
    r.axpy(-1.0, b)
    assert r.norm() <= 1e-9 * b.norm()
    lin.destroy()
    A.destroy()


def test_the_symmetric_part_preconditions_a_nonsymmetric_matrix():
    """With ``symmetric``, a MUMPS LU in the options becomes an LDL^T factorisation of (A +
    A^T) / 2: GMRES still solves the slightly non-symmetric, indefinite A to the tolerance, in a
    few iterations, where LU of A needs one."""
    from nmcfem.cohesive.step_solver import ReusedPreconditioner

    n = 60
    A = PETSc.Mat().createAIJ([n, n], nnz=3, comm=MPI.COMM_SELF)
    for i in range(n):  # a 1D Laplacian shifted to be indefinite, made slightly non-symmetric
        A.setValue(i, i, 2.0 - 0.3)
        if i:
            A.setValue(i, i - 1, -1.0 * (1 + 0.01 * np.sin(i)))
            A.setValue(i - 1, i, -1.0)
    A.assemble()
    b, x, r = A.createVecLeft(), A.createVecLeft(), A.createVecLeft()
    b.setArray(np.cos(np.arange(n)))
    for symmetric, most in ((False, 1), (True, 6)):
        lin = ReusedPreconditioner(A, LINEAR, krylov_limit=20, symmetric=symmetric)
        its = lin.solve(b, x, 1e-10)
        assert lin.symmetric is symmetric and 1 <= its <= most
        assert lin.ksp.getPC().getType() == ("cholesky" if symmetric else "lu")
        A.mult(x, r)
        r.axpy(-1.0, b)
        assert r.norm() <= 1e-9 * b.norm()
        lin.destroy()
    A.destroy()


def test_amg_keeps_a_loose_block_in_its_coarse_space():
    """A block held only by the residual stiffness of its broken interface (a grain that has
    come loose) is an almost rigid body on its own: AMG sees its rigid motions on the coarse
    levels only through the near-nullspace of rigid-body modes that the cracking solves give
    it. With them GMRES + AMG solves the system in a fraction of the iterations it needs
    without (blocks of 8 x 4 x 4 cubes, at least three levels forced)."""
    from nmcfem.cohesive.step_solver import ReusedPreconditioner

    law = CohesiveLaw(strength=TN, toughness=GC, law="bilinear", residual=1e-6)
    V, interfaces = cut_blocks(two_blocks(nx=8, ny=4), law, MPI.COMM_SELF)
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    K = dolfinx.fem.petsc.assemble_matrix(
        dolfinx.fem.form(1e11 * (ufl.inner(_eps(u), _eps(v)) + 0.5 * ufl.div(u) * ufl.div(v))
                         * ufl.dx))
    K.assemble()
    interfaces.history.kappa[:] = 10 * law.final_opening  # every point broken
    interfaces.history.damage[:] = 1.0
    left = dolfinx.fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    bcs = [dolfinx.fem.dirichletbc(np.zeros(3), left, V)]  # the right block is loose
    amg = {"ksp_type": "gmres", "ksp_pc_side": "right", "ksp_max_it": 500, "pc_type": "gamg",
           "pc_gamg_coarse_eq_limit": 50, "mg_levels_ksp_type": "chebyshev",
           "mg_levels_pc_type": "sor"}
    solver = CohesiveEquilibrium(K, interfaces, SETTINGS, amg, bcs=bcs)
    b = solver.A.createVecLeft()
    b.setRandom()
    counts = {}
    for label, lin in (("with", solver.linear),
                       ("without", ReusedPreconditioner(solver.A, amg, krylov_limit=500))):
        x = b.duplicate()
        counts[label] = lin.solve(b, x, 1e-8)
        r = b.duplicate()
        solver.A.mult(x, r)
        r.axpy(-1.0, b)
        assert r.norm() <= 1e-7 * b.norm(), label
        levels = lin.ksp.getPC().getMGLevels()
        assert levels >= 3, levels
    print(f"GMRES + AMG on a loose block: {counts['with']} iterations with the rigid-body "
          f"modes, {counts['without']} without")
    assert counts["with"] < 0.5 * counts["without"]
    lin.destroy()
    solver.destroy()
