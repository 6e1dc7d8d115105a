"""The equilibrium of a cut body with cohesive interfaces at a given load: Newton (PETSc SNES)
on K u + F_cohesive(u) = b."""

from __future__ import annotations

from typing import Any

import numpy as np
from petsc4py import PETSc

import dolfinx

from nmcfem.cohesive.assembly import add_pattern
from nmcfem.cohesive.interfaces import CohesiveInterfaces
from nmcfem.errors import SolverError
from nmcfem.solvers import owned_rows, prefixed_options, reason_name


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
        self.bc_rows = owned_rows(bcs or [], interfaces.W)
        self.nullspace = nullspace
        interfaces.evaluate(K.createVecRight())
        self.J = add_pattern(K, interfaces.tangent_matrix())
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
        damage = self.interfaces.history.damage
        self._build_pc = self._pc_damage is None or not np.array_equal(damage, self._pc_damage)
        if self.ew_rtol0 is not None:
            # while cracks grow Newton needs several iterations whatever the first solve's
            # accuracy; in the elastic stage one accurate solve is the whole step
            growing = self.interfaces.history.last_step_grew
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
            name = reason_name(reason, PETSc.SNES.ConvergedReason)
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
        return {"newton_its": its, "krylov_its": lits, "snes_reason": reason_name(reason, PETSc.SNES.ConvergedReason)}

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
