"""PETSc plumbing shared by the sub-problems: prefixed options, a checked linear solver,
rigid-body modes and readable converged reasons.

Solver options come from the config as plain dicts (``solver.*``) and are put into PETSc's
options database under a prefix unique to the solver that reads them. No physics here.
"""

from __future__ import annotations

import itertools
import math
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
        self.krylov = self.ksp.getType() != PETSc.KSP.Type.PREONLY
        if self.krylov:
            self.ksp.setInitialGuessNonzero(True)
        self.reusing = False  # whether the preconditioner is one of an earlier operator

    def set_operator(self, A: PETSc.Mat, reuse: bool = False) -> None:
        """Use a new (re-assembled) operator from the next solve on. With ``reuse`` (and a
        Krylov method), keep the preconditioner (factorisation or AMG hierarchy) of the
        operator set before: the Krylov method corrects for the change, and a solve that does
        not converge on it is repeated with a preconditioner of A."""
        self.ksp.setOperators(A)
        self.reusing = reuse and self.krylov
        self.ksp.getPC().setReusePreconditioner(self.reusing)

    def solve(self, b: PETSc.Vec, x: PETSc.Vec) -> int:
        """Solve A x = b; return the iteration count or raise :class:`SolverError`."""
        self.ksp.solve(b, x)
        reason = self.ksp.getConvergedReason()
        its = self.ksp.getIterationNumber()
        if reason < 0 and self.reusing:
            self.reusing = False
            self.ksp.getPC().setReusePreconditioner(False)
            x.set(0.0)  # a fresh factorisation needs no guess (and the failed iterate may be nan)
            self.ksp.solve(b, x)
            reason = self.ksp.getConvergedReason()
            its += self.ksp.getIterationNumber()
        if reason < 0:
            raise SolverError(f"{self.name} solve did not converge: {reason_name(reason)} after "
                              f"{its} iterations (residual {self.ksp.getResidualNorm():.3e}); "
                              f"adjust solver.{self.name} options (e.g. ksp_max_it, pc_type)")
        return its

    def destroy(self) -> None:
        """Free the PETSc objects."""
        self.ksp.destroy()


class RigidBodyModes:
    """The six rigid-body modes of a P1 vector space, orthonormal: as a PETSc null space (for
    the stiffness matrix and AMG's near-nullspace) and removed from vectors reproducibly.

    With the six vectors allocated one by one, PETSc's dot products against them rounded
    differently from process to process (their summation path depended on where the vectors
    happened to lie in memory): the same run differed in the last bits of its load, and a snap
    amplified that to a few % of the quick cracking case's cracked area (1.4 % and 2.4 % apart
    in repeated runs). The modes now share one block of memory, and :meth:`remove` sums exactly
    rounded (``math.fsum``): a run on one rank is bitwise repeatable (``tests/test_rigid_modes.py``;
    on several, MUMPS's distributed factorisation still rounds differently from run to run).

    Parameters
    ----------
    W: P1 vector space of the displacement (m).
    """

    def __init__(self, W: dolfinx.fem.FunctionSpace):
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
        n, n_global = n_local * bs, W.dofmap.index_map.size_global * bs
        # one block, so that PETSc's dot products see the same memory layout in every run
        self._owned = np.array([b.array[:n] for b in basis])
        self.comm = W.mesh.comm
        self._vectors = [PETSc.Vec().createWithArray(row, size=(n, n_global), bsize=bs,
                                                     comm=self.comm) for row in self._owned]
        #: the PETSc null space of the same modes
        self.petsc = PETSc.NullSpace().create(vectors=self._vectors, comm=self.comm)

    def remove(self, v: PETSc.Vec) -> None:
        """Remove from v (owned entries; collective) its components along the modes."""
        values = v.array
        local = np.array([math.fsum(values * mode) for mode in self._owned])
        for c, mode in zip(self.comm.allreduce(local, op=MPI.SUM), self._owned):
            values -= c * mode

    def destroy(self) -> None:
        """Free the PETSc null space and the vectors wrapping the modes."""
        self.petsc.destroy()
        for vector in self._vectors:
            vector.destroy()


def owned_rows(bcs: list, V: dolfinx.fem.FunctionSpace) -> np.ndarray:
    """Global indices (PETSc integers) of the owned DOFs constrained by the conditions ``bcs``."""
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local * bs
    lo = V.dofmap.index_map.local_range[0] * bs
    rows = [bc.dof_indices()[0][bc.dof_indices()[0] < n_owned] for bc in bcs]
    local = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int32)
    return (local + lo).astype(PETSc.IntType)


#: the KSP of each solve on the direct path: a factorisation applied once (elasticity), or
#: reused as the preconditioner of GMRES for the matrices of later iterations: the cracking
#: step's, and the Li transport's Newton iterations within a step, whose matrices differ only
#: in the linearised surface reaction (GMRES then ends in a few iterations, in one on a fresh
#: factorisation; default particle, 1 rank: 134 instead of 508 factorisations, the whole run
#: ~12 % faster with cracks and without). Right-preconditioned, so that GMRES stops on the
#: true residual, not on the residual seen through a stale factor; the transport's to 1e-12 of
#: |b|, a thousandth of the Newton iteration's tolerance on the Li fraction.
_DIRECT_KSP = {"diffusion": {"ksp_type": "gmres", "ksp_pc_side": "right", "ksp_rtol": 1e-12,
                             "ksp_max_it": 30},
               "elasticity": {"ksp_type": "preonly"},
               "cracking": {"ksp_type": "gmres", "ksp_pc_side": "right", "ksp_gmres_restart": 100,
                            "ksp_max_it": 300}}


def linear_path(solver: Any, displacement_unknowns: int) -> str:
    """"direct" or "iterative": the config's ``solver.linear``, with "auto" resolved by the
    problem size (direct up to ``solver.direct_max_unknowns`` displacement unknowns)."""
    if solver.linear != "auto":
        return solver.linear
    return "direct" if displacement_unknowns <= solver.direct_max_unknowns else "iterative"


def solve_options(solver: Any, path: str, which: str) -> dict:
    """PETSc options of one solve ("diffusion", "elasticity" or "cracking") on a linear-algebra
    path ("direct" or "iterative") from the config's ``solver`` section."""
    if path == "direct":
        return {**_DIRECT_KSP[which], **dict(solver.direct)}
    return dict(getattr(solver, which))


def rigid_mode_pins(W: dolfinx.fem.FunctionSpace) -> np.ndarray:
    """Global indices (PETSc integers, owned by this rank) of six displacement DOFs whose fixing
    removes the six rigid-body modes of a free body without constraining its deformation (a
    3-2-1 support): all three components at a vertex A, the two components most nearly
    perpendicular to AB at the vertex B farthest from A, and the component most nearly normal to
    the plane ABC at the vertex C farthest from the line AB. Under a self-equilibrated load the
    support carries no force, so the solution is the free body's up to a rigid motion. The
    choice depends only on the coordinates, not on the partition (collective)."""
    comm = W.mesh.comm
    n_owned = W.dofmap.index_map.size_local
    xyz = W.tabulate_dof_coordinates()[:n_owned]
    blocks = W.dofmap.index_map.local_range[0] + np.arange(n_owned)

    def extreme(score: np.ndarray) -> tuple[np.ndarray, int]:
        # largest score, ties broken by the global block, the same on every rank
        i = int(np.argmax(score)) if len(score) else -1
        mine = (score[i], -blocks[i]) if i >= 0 else (-np.inf, 0)
        best = comm.allreduce(mine, op=MPI.MAX)
        owner = comm.allreduce(comm.rank if i >= 0 and (score[i], -blocks[i]) == best else -1,
                               op=MPI.MAX)
        point = comm.bcast(xyz[i] if comm.rank == owner else None, root=owner)
        return np.asarray(point), -int(best[1])

    a, ga = extreme(-xyz[:, 0])
    b, gb = extreme(np.linalg.norm(xyz - a, axis=1))
    ab = (b - a) / np.linalg.norm(b - a)
    off = (xyz - a) - np.outer((xyz - a) @ ab, ab)
    c, gc = extreme(np.linalg.norm(off, axis=1))
    normal = np.cross(b - a, c - a)
    pins = [3 * ga + k for k in range(3)]
    pins += [3 * gb + int(k) for k in np.argsort(np.abs(ab))[:2]]
    pins += [3 * gc + int(np.argmax(np.abs(normal)))]
    lo, hi = 3 * blocks[0] if n_owned else 0, 3 * (blocks[-1] + 1) if n_owned else 0
    return np.array([p for p in pins if lo <= p < hi], dtype=PETSc.IntType)
