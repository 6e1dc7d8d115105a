"""Finite-element two-block bar with one cohesive interface, pulled apart under displacement
control: peak traction t_n and dissipated energy G_c x area (bilinear and exponential)."""

from types import SimpleNamespace

import numpy as np
import pytest
import ufl
from mpi4py import MPI

import dolfinx
import dolfinx.fem.petsc

from nmcfem.cohesive_solver import CohesiveInterfaces, solve_equilibrium
from nmcfem.geometry import GB_OFFSET, orient_positive
from nmcfem.interfaces import split_interfaces
from nmcfem.mesh import create_distributed
from nmcfem.physics.cohesive import CohesiveLaw

L, W = 1e-6, 0.5e-6  # block length and width (m)
E_BLOCK = 1e14  # Pa: stiff blocks, so the opening is the applied displacement
TN, GC = 200e6, 1.0


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


def pull(law_name, steps, end, comm=MPI.COMM_WORLD):
    data = two_blocks()
    law = CohesiveLaw(strength=TN, toughness=GC, law=law_name, residual=0.0)
    cut = split_interfaces(data)
    arrays = SimpleNamespace(points=cut.points, tets=cut.tets, cell_tags=data.cell_tags,
                             facets=np.zeros((0, 3), dtype=np.int64),
                             facet_tags=np.zeros(0, dtype=np.int32))
    mesh, _, _ = create_distributed(arrays if comm.rank == 0 else None, comm)
    V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    eps = lambda w: ufl.sym(ufl.grad(w))  # noqa: E731
    a = dolfinx.fem.form(E_BLOCK * ufl.inner(eps(u), eps(v)) * ufl.dx)  # nu = 0
    interfaces = CohesiveInterfaces(V, cut.plus, cut.minus, cut.normal, cut.area, law,
                                    len(cut.points))
    left = dolfinx.fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 0.0))
    right = dolfinx.fem.locate_dofs_geometrical(V, lambda x: np.isclose(x[0], 2 * L))
    pull_value = dolfinx.fem.Constant(mesh, np.zeros(3))
    bcs = [dolfinx.fem.dirichletbc(np.zeros(3), left, V),
           dolfinx.fem.dirichletbc(pull_value, right, V)]
    uh = dolfinx.fem.Function(V)
    b = dolfinx.fem.petsc.create_vector(V)
    force, opening = [0.0], [0.0]
    area = W * W
    for d in np.linspace(0, end, steps)[1:]:
        pull_value.value = np.array([d, 0.0, 0.0])
        dolfinx.fem.petsc.set_bc(uh.x.petsc_vec, bcs)
        uh.x.scatter_forward()
        solve_equilibrium(a, b, bcs, uh, interfaces)
        interfaces.accept_step()
        # interface traction from the opening (uniform across the bar)
        delta = interfaces.openings(uh.x.petsc_vec)
        from nmcfem.physics.cohesive import evaluate

        t = evaluate(law, delta.reshape(-1, 3), interfaces.kappa.reshape(-1))["traction"][:, 0]
        force.append(float(np.mean(t)) * area)
        opening.append(float(np.mean(delta[:, :, 0])))
    return np.array(opening), np.array(force), interfaces, law, area


@pytest.mark.parametrize("law_name,end_factor,steps", [("bilinear", 1.05, 221),
                                                       ("exponential", 25.0, 301)])
def test_two_block_bar(law_name, end_factor, steps):
    probe = CohesiveLaw(strength=TN, toughness=GC, law=law_name)
    scale = probe.final_opening if law_name == "bilinear" else probe.critical_opening
    opening, force, interfaces, law, area = pull(law_name, steps, end_factor * scale)
    traction = force / area
    work = float(np.sum(0.5 * (force[1:] + force[:-1]) * np.diff(opening)))
    diag = interfaces.diagnostics()
    print(f"{law_name}: peak {traction.max() / 1e6:.2f} MPa, work {work / area:.4f} J/m^2, "
          f"dissipated {diag['dissipated_energy [J]'] / area:.4f} J/m^2, cracked "
          f"{diag['cracked_area_full [m^2]'] / area:.2f} of the area")
    assert traction.max() == pytest.approx(TN, rel=0.01)
    assert work / area == pytest.approx(GC, rel=0.02)
    assert diag["dissipated_energy [J]"] == pytest.approx(GC * area, rel=0.02)
    assert diag["cracked_area_full [m^2]"] == pytest.approx(area, rel=1e-9)
