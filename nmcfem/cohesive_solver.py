"""Zero-thickness cohesive interface elements on a duplicated-vertex mesh (assembly + state).

Each interface triangle pairs three "+" vertices with three "-" vertices at the same places.
Its traction-separation law is integrated with nodal (Newton-Cotes) quadrature — one point per
vertex pair, weight area/3 — the classic choice that avoids traction oscillations in interface
elements (Schellekens & de Borst, Int. J. Numer. Meth. Eng. 36, 43 (1993)). The same pairs carry
the Li transport across interfaces as a conductance (1 - d) g per unit area.

Matrices are assembled in PETSc's coordinate (COO) format: the pattern of every point's four
blocks (++, +-, -+, --) is fixed when the interfaces are built, so each Newton iteration only
sets values (vectorised, off-process entries allowed). Every rank assembles the points whose
"+" vertex it owns. The displacements of all interface vertices are shared with one reduction
per evaluation, so the committed history is identical on every rank and the result does not
depend on the partition.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx

from nmcfem.physics.cohesive import FULLY_CRACKED, CohesiveLaw, dissipated_energy, evaluate
from nmcfem.problem import SolverError, prefixed_options

#: the four blocks of an interface point: (row side, column side, sign)
_BLOCKS = ((0, 0, 1.0), (0, 1, -1.0), (1, 0, -1.0), (1, 1, 1.0))


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


def pair_matrix(V: dolfinx.fem.FunctionSpace, plus: np.ndarray, minus: np.ndarray
                ) -> PETSc.Mat:
    """An AIJ matrix on V with the COO pattern of the interface pairs (one bs x bs block for
    each of the ++, +-, -+, -- couplings of every pair).

    Parameters
    ----------
    V: function space (block size bs).
    plus, minus: (p,) global DOF blocks of the two sides of the pairs this rank assembles.
    """
    bs = V.dofmap.index_map_bs
    imap = V.dofmap.index_map
    n = imap.size_local * bs
    N = imap.size_global * bs
    A = PETSc.Mat().create(V.mesh.comm)
    A.setSizes(((n, N), (n, N)), bsize=bs)
    A.setType(PETSc.Mat.Type.AIJ)
    rows, cols = _coo_indices(plus, minus, bs)
    A.setPreallocationCOO(rows, cols)
    return A


def _coo_indices(plus: np.ndarray, minus: np.ndarray, bs: int) -> tuple[np.ndarray, np.ndarray]:
    """Row and column indices of the pair blocks, ordered (point, block, row comp, col comp)."""
    sides = np.stack([plus, minus], axis=1)  # (p,2)
    comp = np.arange(bs)
    rows = [bs * sides[:, r, None, None] + comp[None, :, None] + 0 * comp[None, None, :]
            for r, _, _ in _BLOCKS]
    cols = [bs * sides[:, c, None, None] + 0 * comp[None, :, None] + comp[None, None, :]
            for _, c, _ in _BLOCKS]
    as_int = PETSc.IntType
    return (np.stack(rows, axis=1).reshape(-1).astype(as_int),
            np.stack(cols, axis=1).reshape(-1).astype(as_int))


def _coo_values(blocks: np.ndarray) -> np.ndarray:
    """COO values for per-point (p,bs,bs) blocks K: [K, -K, -K, K] in the order of
    :func:`_coo_indices`."""
    return np.stack([s * blocks for _, _, s in _BLOCKS], axis=1).reshape(-1)


def _add_pattern(base: PETSc.Mat, extra: PETSc.Mat) -> PETSc.Mat:
    """A copy of ``base`` whose pattern also holds the entries of ``extra`` (values of base)."""
    out = base.duplicate(copy=True)
    extra_zero = extra.duplicate(copy=False)
    extra_zero.zeroEntries()
    out.axpy(1.0, extra_zero, structure=PETSc.Mat.Structure.DIFFERENT_NONZERO_PATTERN)
    extra_zero.destroy()
    return out


class CohesiveInterfaces:
    """Interface elements of one or more laws over the pairs of a cut mesh, with history.

    Parameters
    ----------
    W: P1 vector space of the displacement (m) on the cut mesh.
    plus, minus: (k,3) input-vertex triples of the two faces of each interface triangle.
    normal: (k,3) unit normals from minus into plus; area: (k,) m^2.
    laws: the CohesiveLaw of each family; law_index: (k,) family of each triangle.
    n_input: number of input vertices of the cut mesh.
    V: scalar P1 space of the concentration, when Li transport crosses the interfaces.
    """

    def __init__(self, W, plus, minus, normal, area, laws, n_input: int,
                 law_index: np.ndarray | None = None, V=None):
        self.W, self.V = W, V
        self.comm = W.mesh.comm
        self.laws: list[CohesiveLaw] = laws if isinstance(laws, list) else [laws]
        plus = np.asarray(plus, dtype=np.int64).reshape(-1, 3)
        minus = np.asarray(minus, dtype=np.int64).reshape(-1, 3)
        k = len(plus)
        self.n_triangles = k
        self.plus_vertex, self.minus_vertex = plus, minus
        self.law_index = np.zeros(k, dtype=int) if law_index is None else np.asarray(law_index)
        self.point_law = np.repeat(self.law_index, 3)
        self.area = np.asarray(area, dtype=float)
        self.weight = np.repeat(self.area / 3.0, 3)  # nodal quadrature weight per point (m^2)
        frames = _local_frames(np.asarray(normal, dtype=float)) if k else np.zeros((0, 3, 3))
        self.frames = np.repeat(frames, 3, axis=0)  # per point
        glob_u, _ = input_vertex_blocks(W, n_input, self.comm)
        self.pu = glob_u[plus.reshape(-1)]
        self.mu = glob_u[minus.reshape(-1)]
        # interface vertices whose values every rank needs, and where each point reads them
        self.vertices = np.unique(np.concatenate([plus.ravel(), minus.ravel()]))
        self.pos_plus = np.searchsorted(self.vertices, plus.reshape(-1))
        self.pos_minus = np.searchsorted(self.vertices, minus.reshape(-1))
        self.vertex_block_u = glob_u[self.vertices]
        lo, hi = W.dofmap.index_map.local_range
        self.mine = np.flatnonzero((self.pu >= lo) & (self.pu < hi))
        self.K = pair_matrix(W, self.pu[self.mine], self.mu[self.mine])
        self.K_secant = pair_matrix(W, self.pu[self.mine], self.mu[self.mine])
        if V is not None:
            glob_c, _ = input_vertex_blocks(V, n_input, self.comm)
            self.pc, self.mc = glob_c[plus.reshape(-1)], glob_c[minus.reshape(-1)]
            lo_c, hi_c = V.dofmap.index_map.local_range
            self.mine_c = np.flatnonzero((self.pc >= lo_c) & (self.pc < hi_c))
            self.G = pair_matrix(V, self.pc[self.mine_c], self.mc[self.mine_c])
        n_points = 3 * k
        self.kappa = np.zeros(n_points)
        self.damage = np.zeros(n_points)
        self.delta = np.zeros((n_points, 3))  # committed openings (local frame, m)
        self.traction = np.zeros((n_points, 3))  # committed tractions (local frame, Pa)
        self.work = 0.0  # J: work done on the interfaces so far (trapezoidal in time)
        self.last_step_grew = False  # whether the last accepted step increased any damage
        self.trial: dict[str, np.ndarray] = {}
        self.secant = False  # tangent of the Newton iterations: consistent, or secant
        self.reject_step()

    # --- evaluation ------------------------------------------------------------------------

    def _gather(self, vec: PETSc.Vec, blocks: np.ndarray, bs: int) -> np.ndarray:
        """(m,bs) values of ``vec`` at the global DOF blocks ``blocks``, on every rank."""
        arr = vec.getArray(readonly=True).reshape(-1, bs)
        lo = vec.getOwnershipRange()[0] // bs
        own = (blocks >= lo) & (blocks < lo + len(arr))
        vals = np.zeros((len(blocks), bs))
        vals[own] = arr[blocks[own] - lo]
        self.comm.Allreduce(MPI.IN_PLACE, vals, op=MPI.SUM)
        return vals

    def openings(self, u: PETSc.Vec) -> np.ndarray:
        """(p,3) openings u+ - u- at every point, in the local frame (normal first), m."""
        disp = self._gather(u, self.vertex_block_u, 3)
        jump = disp[self.pos_plus] - disp[self.pos_minus]
        return np.einsum("kij,kj->ki", self.frames, jump)

    def evaluate(self, u: PETSc.Vec, dt: float = 0.0) -> dict[str, np.ndarray]:
        """Openings, tractions, tangents and trial history at every point for displacement u."""
        delta = self.openings(u)
        p = len(delta)
        out = {"delta": delta, "traction": np.zeros((p, 3)), "tangent": np.zeros((p, 3, 3)),
               "secant": np.zeros((p, 3, 3)), "kappa": self.kappa.copy(),
               "damage": self.damage.copy()}
        for li, law in enumerate(self.laws):
            sel = self.point_law == li
            if not np.any(sel):
                continue
            res = evaluate(law, delta[sel], self.kappa[sel], self.damage[sel], dt, self.secant)
            for key in ("traction", "tangent", "secant", "kappa", "damage"):
                out[key][sel] = res[key]
        self.trial = out
        return out

    def add_residual(self, u: PETSc.Vec, F: PETSc.Vec, dt: float = 0.0) -> None:
        """Add the interface forces (N) to F (global indices, ADD_VALUES; F.assemble() after)."""
        res = self.evaluate(u, dt)
        m = self.mine
        force = np.einsum("kji,kj->ki", self.frames[m], res["traction"][m]) \
            * self.weight[m, None]
        rows = np.concatenate([3 * self.pu[m, None] + np.arange(3),
                               3 * self.mu[m, None] + np.arange(3)]).reshape(-1)
        F.setValues(rows.astype(PETSc.IntType), np.concatenate([force, -force]).reshape(-1),
                    addv=PETSc.InsertMode.ADD_VALUES)

    def tangent_matrix(self, secant: bool = False) -> PETSc.Mat:
        """The interface tangent (N/m) of the last evaluation — consistent, or the secant
        stiffness (positive definite) — as a COO matrix."""
        m = self.mine
        R = self.frames[m]
        key = "secant" if secant else "tangent"
        blocks = np.einsum("kai,kab,kbj->kij", R, self.trial[key][m], R) \
            * self.weight[m, None, None]
        A = self.K_secant if secant else self.K
        A.setValuesCOO(_coo_values(blocks), addv=PETSc.InsertMode.INSERT_VALUES)
        A.assemble()
        return A

    # --- transport across the interfaces ---------------------------------------------------

    def conductance_matrix(self, conductance: float, blocks_flux: bool,
                           bc_dofs: np.ndarray | None = None) -> PETSc.Mat:
        """Interface Li conductance (m^3/s per mol/m^3): g (1 - d) w for every pair, with the
        committed damage d; entries in rows or columns of ``bc_dofs`` (global) are left out
        (their Dirichlet values enter through :meth:`conductance_lifting`).

        Parameters
        ----------
        conductance: intact conductance g per unit area (m/s).
        blocks_flux: whether damage throttles the flux (False: always intact).
        bc_dofs: sorted global DOFs with a Dirichlet condition, or None.
        """
        m = self.mine_c
        g = conductance * self.weight[m] * (1.0 - self.damage[m] if blocks_flux else 1.0)
        vals = _coo_values(g[:, None, None]).reshape(-1, 4)
        if bc_dofs is not None and len(bc_dofs):
            sides = np.stack([self.pc[m], self.mc[m]], axis=1)
            fixed = np.isin(sides, bc_dofs)
            for b, (r, c, _) in enumerate(_BLOCKS):
                vals[:, b] = np.where(fixed[:, r] | fixed[:, c], 0.0, vals[:, b])
        self.G.setValuesCOO(vals.reshape(-1), addv=PETSc.InsertMode.INSERT_VALUES)
        self.G.assemble()
        return self.G

    def conductance_lifting(self, b: PETSc.Vec, conductance: float, blocks_flux: bool,
                            bc_dofs: np.ndarray, bc_value: float) -> None:
        """Move the conductance couplings to Dirichlet DOFs (value ``bc_value`` in mol/m^3)
        to the right-hand side ``b`` (global indices, ADD_VALUES; assemble b after)."""
        if not len(bc_dofs):
            return
        m = self.mine_c
        g = conductance * self.weight[m] * (1.0 - self.damage[m] if blocks_flux else 1.0)
        sides = np.stack([self.pc[m], self.mc[m]], axis=1)
        fixed = np.isin(sides, bc_dofs)
        rows, vals = [], []
        for r, c, s in _BLOCKS:
            sel = ~fixed[:, r] & fixed[:, c]
            rows.append(sides[sel, r])
            vals.append(-s * g[sel] * bc_value)
        b.setValues(np.concatenate(rows).astype(PETSc.IntType), np.concatenate(vals),
                    addv=PETSc.InsertMode.ADD_VALUES)

    def add_face_flux(self, b: PETSc.Vec, flux: float, points: np.ndarray) -> None:
        """Add the outward Li flux ``flux`` (mol/m^2/s) on both faces of the given points to the
        transport right-hand side b (lumped, global indices; assemble b after)."""
        sel = np.intersect1d(points, self.mine_c)
        rows = np.concatenate([self.pc[sel], self.mc[sel]]).astype(PETSc.IntType)
        vals = -flux * np.concatenate([self.weight[sel], self.weight[sel]])
        b.setValues(rows, vals, addv=PETSc.InsertMode.ADD_VALUES)

    # --- history ---------------------------------------------------------------------------

    def toughness_used(self, kappa: np.ndarray) -> np.ndarray:
        """(p,) fraction of the toughness dissipated at each point for the history kappa."""
        out = np.zeros(len(kappa))
        for li, law in enumerate(self.laws):
            sel = self.point_law == li
            out[sel] = dissipated_energy(law, kappa[sel]) / law.toughness
        return out

    def damage_growth(self) -> float:
        """Largest increase, over the points, of the fraction of the toughness dissipated
        (dissipated energy / G_c, a damage measure linear in energy) from the committed to the
        trial state. The stiffness damage d is not used: it reaches 0.5 within the first few
        per cent of the softening branch, where almost no energy is spent."""
        if not self.n_triangles:
            return 0.0
        return float(np.max(self.toughness_used(self.trial["kappa"])
                            - self.toughness_used(self.kappa)))

    def accept_step(self) -> bool:
        """Commit the last evaluation (after a converged step); return whether damage grew."""
        new = self.trial
        # interface work of the step, trapezoidal in the opening path
        dw = 0.5 * np.einsum("ki,ki->k", self.traction + new["traction"],
                             new["delta"] - self.delta)
        self.work += float(np.sum(dw * self.weight))
        grew = bool(np.any(new["damage"] > self.damage))
        self.last_step_grew = grew
        self.kappa, self.damage = new["kappa"].copy(), new["damage"].copy()
        self.delta, self.traction = new["delta"].copy(), new["traction"].copy()
        return grew

    def reject_step(self) -> None:
        """Forget the trial history (the step is redone)."""
        self.trial = {"delta": self.delta.copy(), "traction": self.traction.copy(),
                      "tangent": np.zeros((len(self.kappa), 3, 3)),
                      "secant": np.zeros((len(self.kappa), 3, 3)),
                      "kappa": self.kappa.copy(), "damage": self.damage.copy()}

    def state(self) -> dict[str, np.ndarray]:
        """Committed history as arrays (identical on every rank), for checkpoints."""
        return {"cohesive_kappa": self.kappa, "cohesive_damage": self.damage,
                "cohesive_delta": self.delta, "cohesive_traction": self.traction,
                "cohesive_work": np.array(self.work),
                "cohesive_last_step_grew": np.array(self.last_step_grew)}

    def restore(self, arrays: dict[str, np.ndarray]) -> None:
        """Adopt a committed history saved by :meth:`state`."""
        if arrays["cohesive_kappa"].shape != self.kappa.shape:
            raise ValueError("the checkpoint's interface history does not fit this mesh")
        self.kappa = np.array(arrays["cohesive_kappa"], dtype=float)
        self.damage = np.array(arrays["cohesive_damage"], dtype=float)
        self.delta = np.array(arrays["cohesive_delta"], dtype=float)
        self.traction = np.array(arrays["cohesive_traction"], dtype=float)
        self.work = float(arrays["cohesive_work"])
        self.last_step_grew = bool(arrays.get("cohesive_last_step_grew", False))
        self.reject_step()

    # --- results ---------------------------------------------------------------------------

    def triangle_damage(self) -> np.ndarray:
        """(k,) mean committed damage of each interface triangle."""
        return self.damage.reshape(-1, 3).mean(axis=1)

    def fully_cracked(self) -> np.ndarray:
        """(p,) whether each point has dissipated (almost) all its toughness."""
        return self.toughness_used(self.kappa) >= FULLY_CRACKED

    def point_dissipation(self) -> np.ndarray:
        """(p,) energy dissipated per unit area at every point (J/m^2), closed form."""
        out = np.zeros(len(self.kappa))
        for li, law in enumerate(self.laws):
            sel = self.point_law == li
            out[sel] = dissipated_energy(law, self.kappa[sel])
        return out

    def diagnostics(self) -> dict[str, Any]:
        """Cracked areas (m^2), dissipated energy (J), openings (m) and tractions (Pa) of the
        committed state; the same on every rank."""
        w = self.weight
        full = self.fully_cracked()
        partial = (self.damage > 0) & ~full
        stored = 0.5 * np.einsum("ki,ki->k", self.traction, self.delta)
        dissipated = self.point_dissipation()
        toughness = np.array([law.toughness for law in self.laws])[self.point_law] \
            if len(self.laws) else np.zeros(0)
        return {
            "cracked_area_full [m^2]": float(w[full].sum()),
            "cracked_area_partial [m^2]": float(w[partial].sum()),
            # the work done on the interfaces less the energy they store (includes viscous
            # dissipation), and the rate-independent closed form of the history
            "dissipated_energy [J]": float(self.work - np.sum(stored * w)),
            "dissipated_energy_closed_form [J]": float(np.sum(dissipated * w)),
            "toughness_times_cracked_area [J]": float(np.sum((toughness * w)[full])),
            "dissipated_energy_partial [J]": float(np.sum((dissipated * w)[partial])),
            "max_opening [m]": float(np.max(self.delta[:, 0], initial=0.0)),
            "max_damage [-]": float(np.max(self.damage, initial=0.0)),
            "max_cohesive_normal_traction [Pa]": float(np.max(self.traction[:, 0],
                                                              initial=0.0)),
        }

    def destroy(self) -> None:
        """Free the PETSc matrices."""
        self.K.destroy()
        self.K_secant.destroy()
        if self.V is not None:
            self.G.destroy()


def _owned_bc_rows(bcs: list, V) -> np.ndarray:
    """Global indices of the owned DOFs constrained by ``bcs``."""
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local * bs
    lo = V.dofmap.index_map.local_range[0] * bs
    rows = [bc.dof_indices()[0][bc.dof_indices()[0] < n_owned] for bc in bcs]
    local = np.unique(np.concatenate(rows)) if rows else np.zeros(0, dtype=np.int32)
    return (local + lo).astype(PETSc.IntType)


#: first Krylov tolerance of a Newton solve (Eisenstat-Walker) in a step after one that grew
#: the damage: measured on the default particle, 1e-2 instead of 1e-6 cuts the Krylov
#: iterations of cracking steps from about 70 to 45 at the same Newton count
GROWING_CRACK_RTOL0 = 1e-2
#: a Newton attempt whose residual fell by less than 1/STALL_FACTOR over the last STALL_WINDOW
#: iterations is stopped: where interface points switch between loading and unloading (the
#: kink of the damage history) the residual of the default particle sat at one value for 20
#: iterations, or crept down by 5-10 % per iteration, and the step's three attempts cost
#: 20-25 s where a converging step costs 0.5 s (measured); the time loop then cuts the step,
#: and the shorter step converges
STALL_WINDOW = 6
STALL_FACTOR = 0.5


class CohesiveEquilibrium:
    """Newton solver (PETSc SNES) for K u + F_cohesive(u) = b on a cut mesh.

    The bulk stiffness K is constant; the Jacobian K + K_cohesive(u) keeps one sparsity
    pattern (the bulk pattern plus the interface pairs), so each Newton iteration only copies
    K and adds the interface tangent. The preconditioner is built from K plus the interfaces'
    secant stiffness, which stays positive definite where the consistent tangent of softening
    points is not (so smoothed-aggregation AMG and its Chebyshev smoothers apply); a Krylov
    method (GMRES) solves with the consistent Jacobian. The preconditioner is built from the
    committed state and kept for all Newton iterations of a step, and for the following steps
    until the committed damage changes: before the first crack the problem is linear and one
    AMG setup serves the whole elastic stage.

    Parameters
    ----------
    K: assembled bulk stiffness (N/m).
    interfaces: the cohesive elements.
    options: PETSc options of the SNES and its KSP/PC (no prefix), e.g. the config's
        ``solver.nonlinear``.
    bcs: Dirichlet conditions (their DOFs keep the values in u), or [].
    nullspace: rigid-body null space of a free body, removed from the solution, or None.
    direct_options: PETSc options of a KSP with a direct factorisation of the consistent
        tangent, tried with exact Newton when the iterative linear solves fail (grains held
        only by the residual stiffness of broken interfaces defeat the AMG), or None.
    """

    def __init__(self, K: PETSc.Mat, interfaces: CohesiveInterfaces, options: dict,
                 bcs: list | None = None, nullspace: PETSc.NullSpace | None = None,
                 direct_options: dict | None = None):
        self.K, self.interfaces = K, interfaces
        self.comm = interfaces.comm
        self.bc_rows = _owned_bc_rows(bcs or [], interfaces.W)
        self.nullspace = nullspace
        interfaces.evaluate(K.createVecRight())
        self.J = _add_pattern(K, interfaces.tangent_matrix())
        self.P = self.J.duplicate(copy=False)
        if nullspace is not None:
            for A in (self.J, self.P):
                A.setNullSpace(nullspace)
                A.setNearNullSpace(nullspace)
        self.b = K.createVecLeft()
        self.F = K.createVecLeft()
        self.dt = 0.0
        self.snes = PETSc.SNES().create(self.comm)
        self.snes.setOptionsPrefix(prefixed_options(self, "cohesive", options))
        self.snes.setFunction(self._residual, self.F)
        self.snes.setJacobian(self._jacobian, self.J, self.P)
        self.snes.setFromOptions()
        self.rtol, self.atol, self.stol, self.max_it = self.snes.getTolerances()[:4]
        self._fnorms: list[float] = []
        self._step_atol = self.atol  # absolute tolerance of the current step (N)
        self.snes.setConvergenceTest(self._converged)
        self.direct_ksp = None
        if direct_options:
            self.direct_ksp = PETSc.KSP().create(self.comm)
            self.direct_ksp.setOptionsPrefix(prefixed_options(self, "cohesive_direct",
                                                              direct_options))
            self.direct_ksp.setFromOptions()
        self._direct = False
        self._pc_damage: np.ndarray | None = None  # committed damage the AMG was built at
        self._build_pc = False
        self.ew_rtol0 = self.snes.getParamsEW()["rtol_0"] if self.snes.getUseEW() else None
        self.ksp_rtol = self.snes.getKSP().getTolerances()[0]

    def _residual(self, snes, x: PETSc.Vec, F: PETSc.Vec) -> None:
        self.K.mult(x, F)
        F.axpy(-1.0, self.b)
        self.interfaces.add_residual(x, F, self.dt)
        F.assemble()
        if len(self.bc_rows):
            F.setValues(self.bc_rows, np.zeros(len(self.bc_rows)))
            F.assemble()

    def _converged(self, snes, its: int, norms: tuple[float, float, float]) -> int:
        """PETSc's default tests (absolute, relative to the first residual, step, iteration
        count, NaN) plus the stall test of STALL_WINDOW / STALL_FACTOR."""
        xnorm, ynorm, fnorm = norms
        reasons = PETSc.SNES.ConvergedReason
        if its == 0:
            self._fnorms = []
        self._fnorms.append(fnorm)
        if not np.isfinite(fnorm):
            return reasons.DIVERGED_FUNCTION_NANORINF
        if fnorm <= self._step_atol:
            return reasons.CONVERGED_FNORM_ABS
        if its > 0 and fnorm <= self.rtol * self._fnorms[0]:
            return reasons.CONVERGED_FNORM_RELATIVE
        if its > 0 and ynorm <= self.stol * xnorm:
            return reasons.CONVERGED_SNORM_RELATIVE
        if its >= self.max_it:
            return reasons.DIVERGED_MAX_IT
        if its >= STALL_WINDOW and fnorm > STALL_FACTOR * self._fnorms[its - STALL_WINDOW]:
            return reasons.DIVERGED_LOCAL_MIN
        return reasons.CONVERGED_ITERATING

    def _jacobian(self, snes, x: PETSc.Vec, J: PETSc.Mat, P: PETSc.Mat) -> None:
        self.interfaces.evaluate(x, self.dt)
        subset = PETSc.Mat.Structure.SUBSET_NONZERO_PATTERN
        targets = [(self.J, self.interfaces.secant)]
        if self._direct:  # the factorisation is of the Jacobian itself
            targets.append((self.P, self.interfaces.secant))
        elif self._build_pc:  # the first Jacobian of a step whose preconditioner is rebuilt
            targets.append((self.P, True))
            self._build_pc = False
        for A, secant in targets:
            self.K.copy(A, structure=subset)
            A.axpy(1.0, self.interfaces.tangent_matrix(secant), structure=subset)
            if len(self.bc_rows):
                A.zeroRowsColumns(self.bc_rows, 1.0)

    def solve(self, b: PETSc.Vec, u: dolfinx.fem.Function, dt: float = 0.0) -> dict[str, Any]:
        """Solve for u (m) under the bulk load b (N); u holds the start and Dirichlet values.

        The residual tolerance is max(snes_atol, snes_rtol * |b|, snes_rtol * |F(u_start)|), so
        a step with a small load change is not solved to round-off. Returns Newton and Krylov
        iterations and the SNES reason; raises ``SolverError`` when Newton fails.
        """
        b.copy(self.b)
        self.dt = dt
        x = u.x.petsc_vec
        self._step_atol = max(self.atol, self.rtol * b.norm())  # for the convergence test
        start = x.copy()
        its = lits = 0
        # Newton with the consistent tangent; where it cycles between loading and unloading
        # at the history kink, again from the start with the secant stiffness
        line_search = self.snes.getLineSearch()
        kind = line_search.getType()
        damage = self.interfaces.damage
        self._build_pc = self._pc_damage is None or not np.array_equal(damage, self._pc_damage)
        if self.ew_rtol0 is not None:
            # while cracks grow Newton needs several iterations whatever the first solve's
            # accuracy; in the elastic stage one accurate solve is the whole step
            growing = self.interfaces.last_step_grew
            self.snes.setParamsEW(rtol_0=max(self.ew_rtol0, GROWING_CRACK_RTOL0) if growing
                                  else self.ew_rtol0)
        if self._build_pc:
            self._pc_damage = damage.copy()
        # P is assembled at most once per step; PETSc skips the setup of an unchanged P.
        # Attempts from the same start: inexact Newton; Newton with exact linear solves (an
        # inexact direction can stall the line search at a kink of the damage history, and
        # exact Newton from that stalled point stalls too: measured); the secant fixed-point
        # iteration
        inexact = self.ew_rtol0 is not None
        linear_failed = False
        attempts = [(False, True)] * inexact + [(False, False), (True, False)]
        for n, (secant, ew) in enumerate(attempts):
            if n:
                start.copy(x)
            if secant:
                # the secant is no derivative: a fixed-point iteration takes full steps
                line_search.setType(PETSc.SNESLineSearch.Type.BASIC)
            self.snes.setUseEW(ew)
            if not ew:  # Eisenstat-Walker leaves its last tolerance in the KSP
                self.snes.getKSP().setTolerances(rtol=self.ksp_rtol)
            self.interfaces.secant = secant
            self.snes.solve(None, x)
            reason = self.snes.getConvergedReason()
            its += self.snes.getIterationNumber()
            lits += self.snes.getLinearSolveIterations()
            if reason > 0:
                break
            linear_failed = linear_failed or \
                reason == PETSc.SNES.ConvergedReason.DIVERGED_LINEAR_SOLVE
        self.interfaces.secant = False
        line_search.setType(kind)
        if reason < 0 and linear_failed and self.direct_ksp is not None:
            start.copy(x)
            reason, n_its, n_lits = self._solve_direct(x)
            its, lits = its + n_its, lits + n_lits
        self.snes.setUseEW(inexact)
        start.destroy()
        if reason < 0:
            name = _snes_reason(reason)
            if reason == PETSc.SNES.ConvergedReason.DIVERGED_LOCAL_MIN:
                name = (f"stalled (residual down by less than {1 / STALL_FACTOR:g}x in "
                        f"{STALL_WINDOW} iterations)")
            raise SolverError(f"cohesive Newton solve did not converge: {name} after {its} "
                              f"iterations (residual {self.snes.getFunctionNorm():.3e} N); the "
                              f"step is cut (solver.nonlinear sets the SNES/KSP options)")
        if self.nullspace is not None:
            self.nullspace.remove(x)
        u.x.scatter_forward()
        # the history of the converged state (the last Jacobian may predate the last update)
        self.interfaces.evaluate(x, dt)
        return {"newton_its": its, "krylov_its": lits, "snes_reason": _snes_reason(reason)}

    def _solve_direct(self, x: PETSc.Vec) -> tuple[int, int, int]:
        """Exact Newton from x with the direct KSP; returns (reason, Newton its, Krylov its)."""
        iterative = self.snes.getKSP()
        self._direct = True
        self.snes.setUseEW(False)
        self.snes.setKSP(self.direct_ksp)
        try:
            self.snes.solve(None, x)
        finally:
            self.snes.setKSP(iterative)
            self._direct = False
            self._pc_damage = None  # P holds a Jacobian now: rebuild the AMG's next step
        return (self.snes.getConvergedReason(), self.snes.getIterationNumber(),
                self.snes.getLinearSolveIterations())

    def destroy(self) -> None:
        """Free the PETSc objects."""
        if self.direct_ksp is not None:
            self.direct_ksp.destroy()
        self.snes.destroy()
        self.J.destroy()
        self.P.destroy()
        self.b.destroy()
        self.F.destroy()


def _snes_reason(reason: int) -> str:
    for name in dir(PETSc.SNES.ConvergedReason):
        if not name.startswith("_") and getattr(PETSc.SNES.ConvergedReason, name) == reason:
            return name
    return str(reason)
