"""Zero-thickness cohesive interface elements on a duplicated-vertex mesh (assembly + state).

Each interface triangle pairs three "+" vertices with three "-" vertices at the same places.
Its traction-separation law is integrated with nodal (Newton-Cotes) quadrature — one point per
vertex pair, weight area/3 — the classic choice that avoids traction oscillations in interface
elements. Residual and tangent go into the PETSc objects with global indices. The displacement
values of all interface vertices are shared with an allgather (simple and exactly
rank-independent; it scales with the interface size, which is what a later version should
replace by a scatter of the needed ghosts).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx

from nmcfem.physics.cohesive import FULLY_CRACKED, dissipated_energy, evaluate


def _local_frames(normal: np.ndarray) -> np.ndarray:
    """(k,3,3) rotations whose rows are (n, t1, t2) for unit normals n."""
    ref = np.eye(3)[np.argmin(np.abs(normal), axis=1)]
    t1 = np.cross(normal, ref)
    t1 /= np.linalg.norm(t1, axis=1)[:, None]
    t2 = np.cross(normal, t1)
    return np.stack([normal, t1, t2], axis=1)


def input_vertex_blocks(V: dolfinx.fem.FunctionSpace, n_input: int, comm: MPI.Comm
                        ) -> tuple[np.ndarray, np.ndarray]:
    """Global DOF block of every input vertex (same on all ranks) and, per rank, the local
    block of each input vertex (-1 where the vertex is not on this rank)."""
    mesh = V.mesh
    geom = mesh.geometry.dofmaps[0]
    dofs = V.dofmap.list
    imap = V.dofmap.index_map
    local = np.full(n_input, -1, dtype=np.int64)
    local[mesh.geometry.input_global_indices[geom.reshape(-1)]] = dofs.reshape(-1)
    owned = np.flatnonzero((local >= 0) & (local < imap.size_local))
    glob = np.full(n_input, -1, dtype=np.int64)
    parts = comm.allgather((owned, imap.local_range[0] + local[owned]))
    for idx, g in parts:
        glob[idx] = g
    return glob, local


class CohesiveInterfaces:
    """Interface elements of one law over a set of vertex pairs, with committed history.

    Parameters
    ----------
    V: P1 vector function space on the duplicated-vertex mesh.
    plus, minus: (k,3) input-vertex triples of the two faces of each interface triangle.
    normal: (k,3) unit normals from minus into plus; area: (k,) m^2.
    laws: one CohesiveLaw, or a list of laws with ``law_index`` (k,) choosing per triangle.
    n_input: number of input vertices of the mesh.
    """

    def __init__(self, V, plus, minus, normal, area, laws, n_input: int,
                 law_index: np.ndarray | None = None):
        self.V = V
        self.comm = V.mesh.comm
        self.laws = laws if isinstance(laws, list) else [laws]
        k = len(plus)
        self.law_index = np.zeros(k, dtype=int) if law_index is None else np.asarray(law_index)
        self.area = np.asarray(area, dtype=float)
        self.frames = _local_frames(np.asarray(normal, dtype=float)) if k else np.zeros((0, 3, 3))
        self.glob, self.local = input_vertex_blocks(V, n_input, self.comm)
        self.plus_g = self.glob[np.asarray(plus, dtype=np.int64)]
        self.minus_g = self.glob[np.asarray(minus, dtype=np.int64)]
        # interface vertices whose displacement every rank needs
        self.vertices = np.unique(np.concatenate([np.ravel(plus), np.ravel(minus)])).astype(
            np.int64)
        self._pos = {"plus": np.searchsorted(self.vertices, plus),
                     "minus": np.searchsorted(self.vertices, minus)}
        # each rank assembles the triangles whose first "+" vertex it owns
        imap = V.dofmap.index_map
        lo, hi = imap.local_range
        first = self.plus_g[:, 0] if k else np.zeros(0, dtype=np.int64)
        self.mine = np.flatnonzero((first >= lo) & (first < hi))
        self.kappa = np.zeros((k, 3))
        self.damage = np.zeros((k, 3))
        self.trial: dict[str, np.ndarray] = {"kappa": self.kappa.copy(),
                                             "damage": self.damage.copy()}

    def _interface_displacements(self, u: PETSc.Vec) -> np.ndarray:
        """(m,3) displacement of every interface vertex, identical on every rank."""
        bs = 3
        arr = u.getArray(readonly=True).reshape(-1, bs)
        lo = self.V.dofmap.index_map.local_range[0]
        g = self.glob[self.vertices]
        mine = (g >= lo) & (g < lo + len(arr))
        vals = np.zeros((len(self.vertices), bs))
        vals[mine] = arr[g[mine] - lo]
        return self.comm.allreduce(vals, op=MPI.SUM)

    def openings(self, u: PETSc.Vec) -> np.ndarray:
        """(k,3,3) openings u+ - u- at the three vertex pairs, in each triangle's local frame."""
        disp = self._interface_displacements(u)
        jump = disp[self._pos["plus"]] - disp[self._pos["minus"]]
        return np.einsum("kij,kpj->kpi", self.frames, jump)

    def _evaluate(self, u: PETSc.Vec, dt: float) -> tuple[np.ndarray, np.ndarray]:
        delta = self.openings(u)
        k = len(delta)
        traction = np.zeros((k, 3, 3))
        tangent = np.zeros((k, 3, 3, 3))
        kappa, damage = self.kappa.copy(), self.damage.copy()
        for li, law in enumerate(self.laws):
            sel = self.law_index == li
            if not np.any(sel):
                continue
            res = evaluate(law, delta[sel].reshape(-1, 3), self.kappa[sel].reshape(-1),
                           self.damage[sel].reshape(-1), dt)
            traction[sel] = res["traction"].reshape(-1, 3, 3)
            tangent[sel] = res["tangent"].reshape(-1, 3, 3, 3)
            kappa[sel] = res["kappa"].reshape(-1, 3)
            damage[sel] = res["damage"].reshape(-1, 3)
        self.trial = {"kappa": kappa, "damage": damage}
        return traction, tangent

    def add_residual(self, u: PETSc.Vec, F: PETSc.Vec, dt: float = 0.0) -> None:
        """Add the interface forces (N) to the residual F (global indices, ADD_VALUES)."""
        traction, _ = self._evaluate(u, dt)
        w = self.area[self.mine] / 3.0
        force = np.einsum("kji,kpj->kpi", self.frames[self.mine], traction[self.mine]) \
            * w[:, None, None]
        for sign, g in ((1.0, self.plus_g[self.mine]), (-1.0, self.minus_g[self.mine])):
            rows = (3 * g[..., None] + np.arange(3)).reshape(-1).astype(PETSc.IntType)
            F.setValues(rows, (sign * force).reshape(-1), addv=PETSc.InsertMode.ADD_VALUES)

    def add_jacobian(self, u: PETSc.Vec, J: PETSc.Mat, dt: float = 0.0) -> None:
        """Add the interface tangent (N/m) to J (global indices, ADD_VALUES)."""
        _, tangent = self._evaluate(u, dt)
        R = self.frames[self.mine]
        w = self.area[self.mine] / 3.0
        K = np.einsum("kai,kpab,kbj->kpij", R, tangent[self.mine], R) * w[:, None, None, None]
        for kk in range(len(self.mine)):
            for p in range(3):
                gp, gm = self.plus_g[self.mine[kk], p], self.minus_g[self.mine[kk], p]
                dof_p = (3 * gp + np.arange(3)).astype(PETSc.IntType)
                dof_m = (3 * gm + np.arange(3)).astype(PETSc.IntType)
                block = K[kk, p]
                for rows, cols, sign in ((dof_p, dof_p, 1.0), (dof_p, dof_m, -1.0),
                                         (dof_m, dof_p, -1.0), (dof_m, dof_m, 1.0)):
                    J.setValues(rows, cols, (sign * block).reshape(-1),
                                addv=PETSc.InsertMode.ADD_VALUES)

    def accept_step(self) -> None:
        """Commit the history of the last evaluation (after a converged step)."""
        self.kappa = self.trial["kappa"].copy()
        self.damage = self.trial["damage"].copy()

    def reject_step(self) -> None:
        """Forget the trial history (the step is redone)."""
        self.trial = {"kappa": self.kappa.copy(), "damage": self.damage.copy()}

    def diagnostics(self) -> dict[str, Any]:
        """Cracked areas (m^2), dissipated energy (J) and largest opening (m), committed state."""
        d = self.damage.mean(axis=1)
        energy = np.zeros(len(d))
        for li, law in enumerate(self.laws):
            sel = self.law_index == li
            energy[sel] = dissipated_energy(law, self.kappa[sel]).mean(axis=1)
        return {"cracked_area_full [m^2]": float(self.area[d >= FULLY_CRACKED].sum()),
                "cracked_area_partial [m^2]": float(self.area[(d > 0) & (d < FULLY_CRACKED)].sum()),
                "dissipated_energy [J]": float(np.sum(energy * self.area)),
                "max_opening [m]": float(self.kappa.max(initial=0.0))}


def _bc_rows(bcs: list, V) -> np.ndarray:
    """Global indices of the owned DOFs constrained by ``bcs``."""
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local * bs
    lo = V.dofmap.index_map.local_range[0] * bs
    rows = [bc.dof_indices()[0][bc.dof_indices()[0] < n_owned] for bc in bcs]
    local = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int32)
    return (local + lo).astype(PETSc.IntType)


def solve_equilibrium(a_form, b: PETSc.Vec, bcs: list, u: dolfinx.fem.Function,
                      interfaces: CohesiveInterfaces, dt: float = 0.0, rtol: float = 1e-9,
                      atol: float = 1e-12, max_it: int = 30,
                      options: dict | None = None) -> int:
    """Newton's method for K u - b + F_cohesive(u) = 0 with Dirichlet conditions ``bcs``.

    ``u`` must already hold the boundary values. Returns the Newton iterations; raises
    ``SolverError`` when the residual does not fall below max(rtol * first residual, atol) (N)
    within ``max_it`` steps, so the caller can cut the load step.

    Parameters
    ----------
    a_form: compiled bilinear form of the bulk (linear elasticity).
    b: assembled load vector (N) of the bulk (e.g. chemical strain), may be zero.
    bcs: Dirichlet conditions; u: displacement (m); interfaces: the cohesive elements.
    dt: step length (s) for viscous regularisation; rtol, atol: residual tolerances.
    options: PETSc options of the linear solves (default: MUMPS LU).
    """
    from nmcfem.problem import LinearSolver, SolverError
    import dolfinx.fem.petsc as fpetsc

    V = u.function_space
    rows = _bc_rows(bcs, V)
    K = fpetsc.assemble_matrix(a_form)
    K.assemble()
    x = u.x.petsc_vec
    r0 = None
    du = x.duplicate()
    for it in range(max_it + 1):
        R = x.duplicate()
        K.mult(x, R)
        R.axpy(-1.0, b)
        interfaces.add_residual(x, R, dt)
        R.assemble()
        R.setValues(rows, np.zeros(len(rows)))
        R.assemble()
        norm = R.norm()
        r0 = norm if r0 is None else r0
        if norm <= max(rtol * r0, atol):
            return it
        if it == max_it:
            break
        J = fpetsc.assemble_matrix(a_form)
        J.setOption(PETSc.Mat.Option.NEW_NONZERO_ALLOCATION_ERR, False)
        interfaces.add_jacobian(x, J, dt)
        J.assemble()
        J.zeroRowsColumns(rows, 1.0)
        solver = LinearSolver(interfaces.comm, J, options or {
            "ksp_type": "preonly", "pc_type": "lu", "pc_factor_mat_solver_type": "mumps"},
            "cohesive")
        R.scale(-1.0)
        solver.solve(R, du)
        solver.destroy()
        J.destroy()
        x.axpy(1.0, du)
        u.x.scatter_forward()
    raise SolverError(f"cohesive Newton iteration did not converge: residual {norm:.3e} N after "
                      f"{max_it} iterations (first {r0:.3e} N); the step is cut")
