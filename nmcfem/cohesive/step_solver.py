"""The equilibrium of a cut body with cohesive interfaces at a given load, with the
irreversible damage update solved inside the step.

At the step's load b (the chemical strain of the step's Li field) the solver finds u with

    K u + f(u; kappa(u)) = b,     kappa(u) = max(kappa_old, delta_e(u))  at every point,

K the bulk stiffness and f the interface forces of the traction-separation law with the history
kappa. F(u) = K u + f - b is the gradient of the step's energy

    E(u) = 1/2 u.K.u - b.u + sum_points w [stored(delta, kappa(u)) + D(kappa(u))],

continuously differentiable because the dissipation D grows exactly as fast as the stored
energy falls where a point loads. Every iteration lowers E:

- Newton's direction on the consistent tangent, with a backtracking (Armijo) line search on E,
  where it is a descent direction and the line search succeeds: quadratic convergence once the
  set of loading points has settled;
- where E is concave along Newton's direction d (d.J.d < 0: the tangent J is indefinite, as at
  the saddle a cracking front passes before a patch snaps open, towards which Newton converges),
  a step downhill along +-d, its length doubled while E keeps falling: a direction of negative
  curvature in the sense of Moré & Sorensen (Math. Program. 16, 1 (1979)), which crosses the
  saddle where the quasi-Newton steps below would creep past it (quick_cracks to x = 0.5: 577
  iterations instead of 774);
- otherwise a quasi-Newton (L-BFGS) step on E preconditioned by the secant stiffness, which is
  symmetric positive definite. Without memory this step is alternate minimisation: a linear
  solve at frozen damage, then the damage update (Farrell & Maurini, Int. J. Numer. Meth. Eng.
  109, 648 (2017)). It always descends, so an unstable crack advance (a snap) is followed to the
  equilibrium it ends in, inside the step. Along a snap the iterates creep in one direction:
  its step length doubles while E keeps falling (over-relaxation), and halves where E rises (a
  crack face pushed into contact).

The linear solves reuse one preconditioner while it serves: a direct factorisation (or an AMG
hierarchy) of the matrix of an earlier iteration or step preconditions GMRES on the current
matrix. It is rebuilt when one solve on it has not converged in ``krylov_limit`` iterations
(an AMG hierarchy: in twice its fresh solve's, where that is more), and at the start of a step
once it has served ``solves_per_factorisation`` solves: at about five Krylov iterations a
solve, that many solves cost what a new factorisation does in back-substitutions. On the
default particle this halves the factorisations of refactorising at every step in which damage
grew, for the same Krylov iterations (docs/cracking_cost_profile.md).
The rule counts solves, not Krylov iterations, and acts between steps only, so that the
factorisations fall on the same solves on any number of ranks: round-off can move a Krylov
count by one, and inside a snap a factorisation one solve earlier or later changes the path.
(An AMG hierarchy's aggregates follow the partition, so that path depends on the number of
ranks whatever the rule.)
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx

from nmcfem.cohesive.assembly import BulkPlusPairs
from nmcfem.cohesive.interfaces import CohesiveInterfaces
from nmcfem.errors import SolverError
from nmcfem.solvers import (
    RigidBodyModes,
    owned_rows,
    prefixed_options,
    reason_name,
    rigid_mode_pins,
)

#: doublings (and halvings) of the quasi-Newton step that its line search tries at most
STEP_LENGTH_TRIALS = 8
#: bounds of the linear solves' relative tolerance (the forcing term of inexact Newton)
ETA_MAX, ETA_MIN = 0.1, 1e-10
#: Armijo's sufficient-decrease factor of the Newton line search
ARMIJO = 1e-4
#: step halvings the Newton line search tries before the iteration takes a quasi-Newton step
NEWTON_HALVINGS = 5
#: a Newton step that divides the residual by at least this factor is taken whatever the
#: energy says (close to the solution energy differences are round-off)
NEWTON_DECREASE = 0.5
#: after a Newton step failed, Newton is tried again once the residual has fallen below this
#: fraction of where it failed, or after NEWTON_WAIT quasi-Newton steps (measured on the quick
#: cracking particle to x = 0.5: waiting 2 steps halved the iterations of waiting for the
#: residual alone, 4 and 8 did not do better)
NEWTON_RETRY = 0.5
NEWTON_WAIT = 2
#: a reused AMG hierarchy is rebuilt once a solve needs more than this many times the Krylov
#: iterations of its fresh solve (a fresh hierarchy takes ~20-30 where a fresh factorisation
#: takes one, so ``krylov_limit`` alone rebuilt it for every other solve: quick cracking particle
#: to x = 0.85 on AMG, 113 -> 35 hierarchies and 9.5 -> 7.7 s; 3 gave 31 and 6.9 s, but on the
#: default particle at half its element sizes, 2 ranks, 2 and 3 were level with krylov_limit
#: alone at ~107 s)
REUSED_AMG_ITERATIONS = 2
#: MUMPS's ICNTL(7) for METIS ordering: on the quick cracking particle's symmetric factors it
#: cut factorisations by a third and back-substitutions by a sixth against MUMPS's own choice
MUMPS_METIS = 5


class ReusedPreconditioner:
    """Krylov solves with the current matrix A, preconditioned by a factorisation (or AMG
    hierarchy) of P, the matrix of an earlier solve. P is refreshed from A, and its
    preconditioner rebuilt, when a solve on it has not converged in ``reuse_limit()`` iterations
    (the solve is then repeated), or before the next solve when marked ``stale``.

    With ``symmetric`` and a MUMPS LU in the options, P is the symmetric part (A + A^T) / 2 and
    is factorised by LDL^T (MUMPS's symmetric indefinite factorisation, METIS ordering unless
    the options name one). The consistent tangent is symmetric but where points switch between
    loading and unloading, so GMRES needs as many iterations as with LU of A, while the factors
    hold about half the entries: the factorisation costs less, and so does each
    back-substitution where the factors fit the cache (quick cracking particle: 49 -> 34 ms and
    1.9 -> 1.1 ms per Krylov iteration; the default particle's back-substitutions barely gain).

    An AMG hierarchy is built with the rigid-body modes as its near-nullspace: restricted to an
    aggregate they are its rigid motions, so a grain that has come loose (held only by the
    residual stiffness of its cracked boundaries) keeps its own rigid motions on the coarse
    levels instead of defeating the smoother. Default particle at 0.5x its element sizes
    (37,668 unknowns, 2 ranks, whole run with cracks): 7,516 -> 4,566 Krylov iterations and 115
    -> 83 hierarchies, 131 -> 106 s, against MUMPS's 140 s (docs/cracking_cost_profile.md).

    Parameters
    ----------
    A: the operator (its values change between solves, its pattern does not).
    options: PETSc options of the KSP and its PC (no prefix).
    krylov_limit: Krylov iterations a solve gets on a reused preconditioner.
    symmetric: factorise the symmetric part where the options ask for a MUMPS LU.
    near_nullspace: the rigid-body modes (for an AMG preconditioner), or None.
    """

    def __init__(self, A: PETSc.Mat, options: dict, krylov_limit: int, symmetric: bool = False,
                 near_nullspace: PETSc.NullSpace | None = None):
        self.A, self.krylov_limit = A, krylov_limit
        self.served = 0  # solves on the present preconditioner
        self.fresh_its = 1  # Krylov iterations of the last solve on a fresh preconditioner
        self.symmetric = symmetric and options.get("pc_type") == "lu" and \
            options.get("pc_factor_mat_solver_type") == "mumps"
        if self.symmetric:
            options = {"mat_mumps_icntl_7": MUMPS_METIS, **options, "pc_type": "cholesky"}
        self.P = A.duplicate(copy=True)
        if near_nullspace is not None:
            self.P.setNearNullSpace(near_nullspace)
        self.At = None  # A^T, where P is the symmetric part
        self.ksp = PETSc.KSP().create(A.getComm())
        self.ksp.setOptionsPrefix(prefixed_options(self, "cracking", options))
        self.ksp.setOperators(A, self.P)
        self.ksp.setFromOptions()
        self.max_it = self.ksp.getTolerances()[3]  # Krylov iterations of a fresh preconditioner
        self.fresh = False  # whether P equals the current A
        self.stale = False  # whether the next solve must rebuild the preconditioner first
        self.setups = 0  # preconditioner set-ups (factorisations) so far
        # s: solves that built the preconditioner (with their one Krylov iteration), and the rest
        self.timings = {"factorisations": 0.0, "Krylov iterations": 0.0}

    def refresh(self) -> None:
        """Copy A into P: the next solve rebuilds the preconditioner."""
        self.A.copy(self.P, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        if self.symmetric:
            # A's pattern is symmetric (bulk stiffness, pairs coupled both ways, pins); were it
            # not, P would only precondition worse: GMRES solves with A itself
            self.At = self.A.transpose(self.At)
            self.P.axpy(1.0, self.At, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
            self.P.scale(0.5)
            self.P.setOption(PETSc.Mat.Option.SYMMETRIC, True)
        self.fresh = True
        self.setups += 1
        self.served = 0

    def reuse_limit(self) -> int:
        """Krylov iterations a solve gets on a reused preconditioner: ``krylov_limit``, or
        REUSED_AMG_ITERATIONS times what the last fresh preconditioner needed where that is
        more (an AMG hierarchy; a fresh factorisation needs one)."""
        return max(self.krylov_limit, REUSED_AMG_ITERATIONS * self.fresh_its)

    def solve(self, b: PETSc.Vec, x: PETSc.Vec, rtol: float) -> int:
        """Solve A x = b to the relative tolerance rtol from x = 0; return the Krylov
        iterations (summed over a retry with a refreshed preconditioner)."""
        if not self.setups or self.stale:
            self.refresh()  # the first solve builds the preconditioner of the assembled A
            self.stale = False
        its = 0
        while True:
            x.set(0.0)
            # a reused preconditioner gets reuse_limit() iterations, a fresh one the options'
            self.ksp.setTolerances(rtol=rtol,
                                   max_it=self.max_it if self.fresh else self.reuse_limit())
            t0 = time.perf_counter()
            self.ksp.solve(b, x)
            self.timings["factorisations" if self.fresh else "Krylov iterations"] += \
                time.perf_counter() - t0
            n = self.ksp.getIterationNumber()
            its += n
            if self.fresh:
                self.fresh_its = n
            reason = self.ksp.getConvergedReason()
            if reason > 0:
                break
            if self.fresh:
                raise SolverError(
                    f"cracking step: linear solve did not converge ({reason_name(reason)}, "
                    f"{its} iterations) even with a fresh preconditioner; try "
                    f"solver.linear: direct")
            self.refresh()
        self.fresh = False
        self.served += 1
        return its

    def destroy(self) -> None:
        """Free the PETSc objects."""
        self.ksp.destroy()
        self.P.destroy()
        if self.At is not None:
            self.At.destroy()


class CohesiveEquilibrium:
    """Equilibrium with the irreversible interface history at a given load (see the module).

    Parameters
    ----------
    K: assembled bulk stiffness (N/m).
    interfaces: the cohesive elements.
    settings: the iteration's settings (``solver.interface``): rtol, atol (N), max_iterations,
        memory, newton, negative_curvature, krylov_limit, solves_per_factorisation,
        symmetric_factorisation.
    linear_options: PETSc options of the linear solves (KSP and PC, no prefix).
    bcs: Dirichlet conditions (their DOFs keep the values in u), or [].
    nullspace: rigid-body modes of a free body, removed from the solution, or None.
    """

    def __init__(self, K: PETSc.Mat, interfaces: CohesiveInterfaces, settings: Any,
                 linear_options: dict, bcs: list | None = None,
                 nullspace: RigidBodyModes | None = None):
        self.K, self.interfaces, self.settings = K, interfaces, settings
        self.comm = interfaces.comm
        self.nullspace = nullspace
        # a free body is held by a 3-2-1 support during the iteration: its matrices are then
        # regular, and the rigid motion is removed from the solution at the end
        pins = rigid_mode_pins(interfaces.W) if nullspace is not None else []
        self.bc_rows = np.union1d(owned_rows(bcs or [], interfaces.W), pins).astype(PETSc.IntType)
        self.constrained = self.comm.allreduce(len(self.bc_rows), op=MPI.SUM) > 0
        interfaces.evaluate(K.createVecRight())
        m = interfaces.mine
        self.operator = BulkPlusPairs(K, interfaces.pu[m], interfaces.mu[m], self.bc_rows)
        self.A = self.operator.A
        self._assemble(secant=True)
        # AMG's near-nullspace: the free body's rigid-body modes, or a held body's own
        self._modes = nullspace or RigidBodyModes(interfaces.W)
        self.linear = ReusedPreconditioner(self.A, linear_options, settings.krylov_limit,
                                           settings.symmetric_factorisation, self._modes.petsc)
        self.b = K.createVecLeft()
        self.F = K.createVecLeft()
        self.dx = K.createVecLeft()
        self.Jdx = K.createVecLeft()  # J dx, the curvature check's product
        self.dt = 0.0
        self.timings = {"equilibrium": 0.0, "interface evaluation": 0.0}  # s (all, within)

    # --- pieces of an iteration ------------------------------------------------------------

    def residual(self, x: PETSc.Vec) -> tuple[float, float]:
        """F(x) into self.F (evaluating the interfaces at x); return |F| (N) and E(x) (J)."""
        t0 = time.perf_counter()
        try:
            return self._residual(x)
        finally:
            self.timings["interface evaluation"] += time.perf_counter() - t0

    def _residual(self, x: PETSc.Vec) -> tuple[float, float]:
        self.K.mult(x, self.F)
        energy = 0.5 * self.F.dot(x) - self.b.dot(x)
        self.F.axpy(-1.0, self.b)
        energy += self.interfaces.add_residual(x, self.F, self.dt)
        self.F.assemble()
        if self.constrained:  # collective: every rank takes part, with or without rows
            self.F.setValues(self.bc_rows, np.zeros(len(self.bc_rows)))
            self.F.assemble()
        return self.F.norm(), energy

    def _assemble(self, secant: bool) -> None:
        """A = K + the interface stiffness of the last evaluation (secant, or consistent), with
        the supported rows and columns replaced by the identity."""
        self.operator.set(self.interfaces.tangent_blocks(secant=secant))

    def _newton_direction(self, rtol: float) -> int:
        """dx = -J^{-1} F on the consistent tangent J; returns Krylov iterations."""
        self._assemble(secant=False)
        self.F.scale(-1.0)
        its = self.linear.solve(self.F, self.dx, rtol)
        self.F.scale(-1.0)
        return its

    def _quasi_newton_direction(self, memory: list, rtol: float) -> int:
        """dx = -H F with the L-BFGS inverse Hessian of the pairs (s, y, 1/s.y) in ``memory``,
        whose initial H is the inverse secant stiffness at the current iterate (no pairs:
        the alternate-minimisation step); returns Krylov iterations."""
        q = self.F.copy()
        alphas = []
        for s, y, rho in reversed(memory):
            alphas.append(rho * s.dot(q))
            q.axpy(-alphas[-1], y)
        self._assemble(secant=True)
        its = self.linear.solve(q, self.dx, rtol)
        for (s, y, rho), a in zip(memory, reversed(alphas)):
            self.dx.axpy(a - rho * y.dot(self.dx), s)
        self.dx.scale(-1.0)
        q.destroy()
        return its

    def _negative_curvature(self) -> bool:
        """Whether the energy is concave along the Newton direction dx (dx.J.dx < 0 on the
        consistent tangent J in A); if so, dx is turned to point downhill."""
        self.A.mult(self.dx, self.Jdx)
        if self.dx.dot(self.Jdx) >= 0:
            return False
        if self.F.dot(self.dx) > 0:
            self.dx.scale(-1.0)
        return True

    @staticmethod
    def _forcing(eta: float, fnorm: float, previous: float | None) -> float:
        """Relative tolerance of the next linear solve (Eisenstat & Walker, SIAM J. Sci.
        Comput. 17, 16 (1996), choice 2 with gamma 0.9, alpha 2, safeguarded): loose while the
        residual falls slowly, tight where Newton converges quadratically. A loose solve with
        a reused factorisation takes a few Krylov iterations; an exact one would need a new
        factorisation at every iteration."""
        if previous is None:
            return ETA_MAX
        new = 0.9 * (fnorm / previous) ** 2
        if 0.9 * eta ** 2 > 0.1:
            new = max(new, 0.9 * eta ** 2)
        return float(np.clip(new, ETA_MIN, ETA_MAX))

    def _newton_line_search(self, x: PETSc.Vec, fnorm: float, energy: float
                            ) -> tuple[float, float] | None:
        """Move x along dx where that lowers E enough (Armijo, backtracking by halves) or the
        residual by NEWTON_DECREASE; return the new |F| and E, or None where dx is no descent
        direction or no step length helps (x, F and the interfaces' state as they were)."""
        slope = self.F.dot(self.dx)
        if slope >= 0:
            return None
        start = x.copy()
        alpha = 1.0
        try:
            for _ in range(NEWTON_HALVINGS + 1):
                start.copy(x)
                x.axpy(alpha, self.dx)
                new, new_energy = self.residual(x)
                if new_energy <= energy + ARMIJO * alpha * slope or new < NEWTON_DECREASE * fnorm:
                    return new, new_energy
                alpha *= 0.5
            start.copy(x)
            self.residual(x)  # F and the interfaces back at x
            return None
        finally:
            start.destroy()

    def _step_length_search(self, x: PETSc.Vec, fnorm: float, energy: float
                            ) -> tuple[float, float]:
        """Move x along the descent direction dx by the step length that lowers E: from 1,
        doubled while E keeps falling, or halved until it falls; return the new |F| and E.
        The full step is also taken where E does not fall but the residual falls below
        NEWTON_DECREASE of ``fnorm`` (N): near zero load E is a few 1e-28 J, and the contact
        smoothing's traction differs there from the gradient of the energy by more than that
        (the quick cracking particle's first step, at b = 0, stalled in alternate minimisation)."""
        start = x.copy()

        def trial(alpha: float) -> tuple[float, float]:
            start.copy(x)
            x.axpy(alpha, self.dx)
            return self.residual(x)

        best, (best_norm, best_energy) = 1.0, trial(1.0)
        if best_energy >= energy and best_norm < NEWTON_DECREASE * fnorm:
            start.destroy()
            return best_norm, best_energy
        last = best  # the step length whose state x, F and the interfaces hold
        factor = 2.0 if best_energy < energy else 0.5
        alpha = best * factor
        for _ in range(STEP_LENGTH_TRIALS):
            fnorm, e = trial(alpha)
            last = alpha
            if factor > 1 and e >= best_energy:
                break
            best, best_norm, best_energy = alpha, fnorm, e
            if factor < 1 and e < energy:
                break
            alpha *= factor
        if last != best:  # a worse trial came after the best: back to the best
            start.copy(x)
            x.axpy(best, self.dx)
            best_norm, best_energy = self.residual(x)
        start.destroy()
        return best_norm, best_energy

    # --- the step --------------------------------------------------------------------------

    def solve(self, b: PETSc.Vec, u: dolfinx.fem.Function, dt: float = 0.0) -> dict[str, Any]:
        """Solve for u (m) under the bulk load b (N); u holds the start and Dirichlet values.

        Converged when |F| <= max(atol, rtol max(|b|, |F(start)|)). Returns the iterations,
        the Newton steps among them, Krylov iterations and preconditioner set-ups; raises
        SolverError (u back at its start) when the iteration budget is spent."""
        s, start = self.settings, time.perf_counter()
        b.copy(self.b)
        self.dt, x = dt, u.x.petsc_vec
        x0 = x.copy()
        if self.linear.served >= s.solves_per_factorisation:
            self.linear.stale = True
        fnorm, energy = self.residual(x)
        # the load of the step: the bulk load, or (displacement control) the first residual
        tol = max(s.atol, s.rtol * max(b.norm(), fnorm))
        its = newton_its = curvature_its = lits = 0
        setups = self.linear.setups
        memory: list = []
        retry_below, wait = np.inf, 0
        eta, history = ETA_MAX, []
        try:
            while fnorm > tol:
                if its >= s.max_iterations:
                    x0.copy(x)
                    raise SolverError(
                        f"cracking step did not converge in solver.interface.max_iterations = "
                        f"{s.max_iterations} iterations (residual {fnorm:.3e} N, tolerance "
                        f"{tol:.3e} N); the step is cut")
                its += 1
                wait -= 1
                rtol = eta = self._forcing(eta, fnorm, history[-1] if history else None)
                history.append(fnorm)
                if s.newton and (fnorm < retry_below or wait <= 0):
                    lits += self._newton_direction(rtol)
                    if s.negative_curvature and self._negative_curvature():
                        fnorm, energy = self._step_length_search(x, fnorm, energy)
                        curvature_its += 1
                        continue
                    step = self._newton_line_search(x, fnorm, energy)
                    if step is not None:
                        fnorm, energy = step
                        newton_its += 1
                        continue
                    retry_below, wait = NEWTON_RETRY * fnorm, NEWTON_WAIT
                lits += self._quasi_newton_direction(memory, rtol)
                g_old, x_old = self.F.copy(), x.copy()
                fnorm, energy = self._step_length_search(x, fnorm, energy)
                self._remember(memory, x, x_old, g_old)
        finally:
            x0.destroy()
            for s_, y_, _ in memory:
                s_.destroy()
                y_.destroy()
            self.timings["equilibrium"] += time.perf_counter() - start
        if self.nullspace is not None:
            self.nullspace.remove(x)
        u.x.scatter_forward()
        self.interfaces.evaluate(x, dt)
        return {"interface_its": its, "newton_its": newton_its, "curvature_its": curvature_its,
                "krylov_its": lits, "pc_setups": self.linear.setups - setups}

    def restart_point(self) -> None:
        """Forget the preconditioner of earlier steps, as a run restarted here starts without
        one: the continued and the restarted run then take the same iterations."""
        self.linear.stale = True

    def _remember(self, memory: list, x: PETSc.Vec, x_old: PETSc.Vec, g_old: PETSc.Vec) -> None:
        """Keep the L-BFGS pair of the last step where it has positive curvature (x_old and
        g_old become the pair's vectors)."""
        x_old.aypx(-1.0, x)  # s = x - x_old
        g_old.aypx(-1.0, self.F)  # y = F - F_old
        sy = x_old.dot(g_old)
        if self.settings.memory and sy > 1e-12 * x_old.norm() * g_old.norm():
            memory.append((x_old, g_old, 1.0 / sy))
            if len(memory) > self.settings.memory:
                for v in memory.pop(0)[:2]:
                    v.destroy()
        else:
            x_old.destroy()
            g_old.destroy()

    def destroy(self) -> None:
        """Free the PETSc objects."""
        self.linear.destroy()
        self.operator.destroy()
        if self._modes is not self.nullspace:
            self._modes.destroy()
        for obj in (self.b, self.F, self.dx, self.Jdx):
            obj.destroy()
