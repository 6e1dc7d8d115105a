"""The rigid-body modes of the displacement space: orthonormal, removed exactly, and removed
with the same bits wherever the vectors lie in memory (a run must repeat bitwise)."""

import numpy as np
import pytest
from mpi4py import MPI

import dolfinx

from nmcfem.solvers import RigidBodyModes


@pytest.fixture(scope="module")
def space():
    mesh = dolfinx.mesh.create_box(MPI.COMM_WORLD, [[0.0, 0.0, 0.0], [2e-6, 1e-6, 1e-6]],
                                   [8, 5, 4], dolfinx.mesh.CellType.tetrahedron)
    return dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))


def _load(W, seed=1):
    """A PETSc vector of W with reproducible values of size ~1 (N)."""
    f = dolfinx.fem.Function(W)
    x = W.tabulate_dof_coordinates()[:, :1] * 1e6
    f.x.array[:] = np.sin(seed * np.arange(f.x.array.size) + np.repeat(x[:, 0], 3))
    return f


def test_modes_are_removed(space):
    modes = RigidBodyModes(space)
    f = _load(space)
    v = f.x.petsc_vec
    modes.remove(v)
    for mode in modes.petsc.getVecs():
        assert abs(v.dot(mode)) < 1e-13 * v.norm()
    before = v.array.copy()
    modes.remove(v)  # removing again changes nothing but round-off
    assert np.allclose(v.array, before, rtol=0, atol=1e-14 * np.abs(before).max())
    modes.destroy()


def test_removal_does_not_depend_on_where_the_vectors_lie(space):
    """Several mode sets and loads allocated at different places in memory give bitwise the
    same result, through the exact removal and through PETSc's null space."""
    results, petsc_results, junk = [], [], []
    for k in range(6):
        junk.append(np.empty(37 * k + 5))  # shift later allocations
        modes = RigidBodyModes(space)
        exact, via_petsc = _load(space), _load(space)
        modes.remove(exact.x.petsc_vec)
        modes.petsc.remove(via_petsc.x.petsc_vec)
        results.append(exact.x.array.copy())
        petsc_results.append(via_petsc.x.array.copy())
        modes.destroy()
    for r, p in zip(results[1:], petsc_results[1:]):
        assert np.array_equal(r, results[0])
        assert np.array_equal(p, petsc_results[0])
