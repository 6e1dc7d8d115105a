"""PETSc plumbing shared by the sub-problems: prefixed options, a checked linear solver,
rigid-body modes and readable converged reasons.

Solver options come from the config as plain dicts (``solver.*``) and are put into PETSc's
options database under a prefix unique to the solver that reads them. No physics here.
"""

from __future__ import annotations

import itertools
import weakref
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx

from nmcfem.errors import SolverError

_PREFIX_COUNTER = itertools.count()


def reason_name(reason: int, kind: type = PETSc.KSP.ConvergedReason) -> str:
    """Name of a PETSc converged reason (KSP by default; pass PETSc.SNES.ConvergedReason)."""
    for name in dir(kind):
        if not name.startswith("_") and getattr(kind, name) == reason:
            return name
    return str(reason)


def _delete_options(keys: list[str]) -> None:
    opts = PETSc.Options()
    for key in keys:
        opts.delValue(key)


def prefixed_options(owner: Any, name: str, options: dict) -> str:
    """Put ``options`` into PETSc's database under a prefix unique to ``owner``; return it.

    The options are removed when ``owner`` is garbage collected, so PETSc does not report them
    as unused at exit when a solver was never called.
    """
    prefix = f"nmcfem_{name}_{next(_PREFIX_COUNTER)}_"
    opts = PETSc.Options()
    keys = [f"{prefix}{key}" for key in options]
    for key, value in zip(keys, options.values()):
        opts[key] = value
    weakref.finalize(owner, _delete_options, keys)
    return prefix


class LinearSolver:
    """A PETSc KSP configured from an options dict, with convergence checking.

    Parameters
    ----------
    comm: communicator.
    A: operator matrix.
    options: PETSc options without prefix (e.g. {"ksp_type": "cg", "pc_type": "gamg"}).
    name: solve name used in error messages ("diffusion", "elasticity").
    """

    def __init__(self, comm: MPI.Comm, A: PETSc.Mat, options: dict, name: str):
        self.name = name
        self.ksp = PETSc.KSP().create(comm)
        self.ksp.setOptionsPrefix(prefixed_options(self, name, options))
        self.ksp.setOperators(A)
        # The options stay in the database under this solver's unique prefix: multigrid reads
        # its level options (mg_levels_*) only when the preconditioner is first set up.
        self.ksp.setFromOptions()
        # Fields change little between steps: start each solve from the last solution.
        if self.ksp.getType() != PETSc.KSP.Type.PREONLY:
            self.ksp.setInitialGuessNonzero(True)

    def set_operator(self, A: PETSc.Mat) -> None:
        """Use a new (re-assembled) operator from the next solve on."""
        self.ksp.setOperators(A)

    def solve(self, b: PETSc.Vec, x: PETSc.Vec) -> int:
        """Solve A x = b; return the iteration count or raise :class:`SolverError`."""
        self.ksp.solve(b, x)
        reason = self.ksp.getConvergedReason()
        its = self.ksp.getIterationNumber()
        if reason < 0:
            raise SolverError(f"{self.name} solve did not converge: {reason_name(reason)} after "
                              f"{its} iterations (residual {self.ksp.getResidualNorm():.3e}); "
                              f"adjust solver.{self.name} options (e.g. ksp_max_it, pc_type)")
        return its

    def destroy(self) -> None:
        """Free the PETSc objects."""
        self.ksp.destroy()


def rigid_body_modes(W: dolfinx.fem.FunctionSpace) -> PETSc.NullSpace:
    """Orthonormal PETSc null space of the six rigid-body modes of a P1 vector space."""
    x = W.tabulate_dof_coordinates()
    n_local = W.dofmap.index_map.size_local
    bs = W.dofmap.index_map_bs
    basis = [dolfinx.la.vector(W.dofmap.index_map, bs=bs, dtype=PETSc.ScalarType)
             for _ in range(6)]
    arrays = [b.array.reshape(-1, bs) for b in basis]
    for k in range(3):
        arrays[k][:n_local, k] = 1.0
    # rotations about the three axes
    arrays[3][:n_local, 0], arrays[3][:n_local, 1] = -x[:n_local, 1], x[:n_local, 0]
    arrays[4][:n_local, 0], arrays[4][:n_local, 2] = x[:n_local, 2], -x[:n_local, 0]
    arrays[5][:n_local, 2], arrays[5][:n_local, 1] = x[:n_local, 1], -x[:n_local, 2]
    dolfinx.la.orthonormalize(basis)
    vecs = [b.petsc_vec for b in basis]
    return PETSc.NullSpace().create(vectors=vecs, comm=W.mesh.comm)


def owned_rows(bcs: list, V: dolfinx.fem.FunctionSpace) -> np.ndarray:
    """Global indices (PETSc integers) of the owned DOFs constrained by the conditions ``bcs``."""
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local * bs
    lo = V.dofmap.index_map.local_range[0] * bs
    rows = [bc.dof_indices()[0][bc.dof_indices()[0] < n_owned] for bc in bcs]
    local = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int32)
    return (local + lo).astype(PETSc.IntType)
