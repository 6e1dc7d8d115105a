"""The checked linear solver: a factorisation reused for a changed matrix (the Li transport's
Newton iterations within a step), and a new one where the old no longer serves."""

import numpy as np
import pytest
from mpi4py import MPI
from petsc4py import PETSc

from nmcfem.config import Config
from nmcfem.solvers import LinearSolver, solve_options

N = 200  # unknowns of the test matrix


def _matrix(surface: float) -> PETSc.Mat:
    """A backward-Euler diffusion matrix of a 1D chain (mass 1, conductance 10 between
    neighbours) plus ``surface`` on the last node's diagonal (a linearised surface reaction)."""
    A = PETSc.Mat().createAIJ([N, N], nnz=3, comm=MPI.COMM_SELF)
    for i in range(N):
        A.setValue(i, i, 1.0 + 10.0 * ((i > 0) + (i < N - 1)) + (surface if i == N - 1 else 0))
        for j in (i - 1, i + 1):
            if 0 <= j < N:
                A.setValue(i, j, -10.0)
    A.assemble()
    return A


def _refill(A: PETSc.Mat, surface: float) -> None:
    """Change A's values in place to those of ``_matrix(surface)``."""
    B = _matrix(surface)
    B.copy(A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
    B.destroy()


@pytest.fixture
def solver():
    """The diffusion solve of the direct path, on the default config's options."""
    A = _matrix(1.0)
    ls = LinearSolver(MPI.COMM_SELF, A, solve_options(Config().solver, "direct", "diffusion"),
                      "diffusion")
    yield ls, A
    ls.destroy()
    A.destroy()


def _residual(A: PETSc.Mat, b: PETSc.Vec, x: PETSc.Vec) -> float:
    r = b.duplicate()
    A.mult(x, r)
    r.axpy(-1.0, b)
    out = r.norm() / b.norm()
    r.destroy()
    return out


def _factorisations(ls: LinearSolver) -> int:
    """How often the preconditioner was set up: PETSc bumps the factor matrix's state at every
    numerical factorisation."""
    return ls.ksp.getPC().getFactorMatrix().stateGet()


def _first_solve(ls: LinearSolver, A: PETSc.Mat) -> tuple[PETSc.Vec, PETSc.Vec, int]:
    """Solve with a fresh factorisation of A; return b, x and the factorisations so far."""
    b = A.createVecLeft()
    b.setArray(np.linspace(1.0, 2.0, N))
    x = b.duplicate()
    ls.set_operator(A)
    assert ls.solve(b, x) == 1  # a fresh factorisation: GMRES ends at once
    return b, x, _factorisations(ls)


def test_a_reused_factorisation_solves_the_changed_matrix(solver):
    ls, A = solver
    b, x, fresh = _first_solve(ls, A)
    _refill(A, 3.0)  # the surface term of the next Newton iteration
    ls.set_operator(A, reuse=True)
    x.set(0.0)
    its = ls.solve(b, x)
    assert 1 < its <= 10, its
    assert _factorisations(ls) == fresh, "the changed matrix was factorised again"
    assert _residual(A, b, x) < 1e-11
    # without reuse the changed matrix is factorised
    ls.set_operator(A)
    x.set(0.0)
    assert ls.solve(b, x) == 1
    assert _factorisations(ls) > fresh


def test_a_reused_factorisation_that_no_longer_serves_is_replaced(solver):
    ls, A = solver
    b, x, fresh = _first_solve(ls, A)
    _refill(A, 1e6)  # far from the factorised matrix: GMRES's budget runs out on it
    ls.ksp.setTolerances(max_it=2)
    ls.set_operator(A, reuse=True)
    x.set(0.0)
    ls.solve(b, x)
    assert _factorisations(ls) > fresh
    assert _residual(A, b, x) < 1e-11
    assert not ls.reusing
