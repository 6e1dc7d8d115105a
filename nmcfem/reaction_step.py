"""The Li transport step under Butler-Volmer kinetics: a Newton iteration on the concentration
c and, at constant current, on the particle potential V.

Each iteration assembles the backward-Euler operator with the linearised surface reaction (the
bulk part only when dt changes), adds the nodal terms of wetted crack faces, and solves the
bordered system of a current-controlled step with two right-hand sides and one matrix: the
Newton correction at fixed V and its sensitivity to V, combined so that the total reaction
current equals the applied one. The matrices of a step's iterations differ only in the surface
terms: the step's first is factorised, and its factorisation preconditions GMRES on the later
ones (on the direct path; an AMG hierarchy likewise on the iterative one).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx
import dolfinx.fem.petsc
import ufl

from nmcfem.config import Config, read_ocp_table
from nmcfem.errors import SolverError
from nmcfem.physics import diffusion
from nmcfem.physics.electrochemistry import Kinetics
from nmcfem.surface_reaction import CURRENT, SurfaceReaction

#: largest potential correction (V) of a converged Newton iteration at constant current
VOLTAGE_TOLERANCE = 1e-9
#: quadrature degree of the surface reaction terms (exact for quartic integrands on a facet)
REACTION_QUADRATURE_DEGREE = 4
#: the reference triangle's vertices: a nodal (lumped) quadrature of surface terms
VERTICES_OF_TRIANGLE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


def outer_surface_reaction(c: dolfinx.fem.Function, ds: ufl.Measure, tag: int, cfg: Config,
                           film: dolfinx.fem.Function | None, surface_dofs: np.ndarray
                           ) -> SurfaceReaction:
    """The Butler-Volmer reaction of the outer surface, through the passivation layer where it
    throttles the transport, at the open-circuit potential of the present surface (collective).

    Parameters
    ----------
    c: concentration (mol/m^3); ds: the facet measure with tags, ``tag`` the outer surface's.
    cfg: configuration (``electrochemistry``, ``passivation``, materials).
    film: the layer thickness (m, P1), or None; surface_dofs: local DOFs (with ghosts) of the
        surface.
    """
    ec, pa = cfg.electrochemistry, cfg.passivation
    c_max = cfg.materials.grain.c_max
    table = read_ocp_table(ec.ocp_table) if ec.ocp == "table" else None
    throttled = pa.enabled and pa.throttles_transport
    # UFL would integrate the exponentials and tanh of Butler-Volmer with a quadrature degree of
    # 10 and more (and assemble 30x slower): P1 concentrations need far less. A film's drop is
    # solved node by node: the reaction is then integrated at the nodes too (vertex
    # quadrature), so that its elimination from Newton is exact
    metadata = ({"quadrature_rule": "custom", "quadrature_degree": 1,
                 "quadrature_points": VERTICES_OF_TRIANGLE,
                 "quadrature_weights": np.full(3, 1.0 / 6.0)} if throttled
                else {"quadrature_degree": REACTION_QUADRATURE_DEGREE})
    reaction = SurfaceReaction(c, c_max, ds(tag, metadata=metadata),
                               Kinetics(ec, c_max, cfg.loading.temperature, table),
                               (film, cfg.materials.shell.D_L, surface_dofs) if throttled else None)
    reaction.set_rest()  # the series' first row reports the resting particle
    return reaction


class ButlerVolmerStep:
    """Newton iteration of one backward-Euler transport step with the Butler-Volmer flux.

    Parameters
    ----------
    transport: the :class:`nmcfem.transport.TransportProblem` whose c, solver, held nodes and
        interface coupling the step uses.
    a_c, L_c: UFL forms of the backward-Euler diffusion step (bilinear, linear).
    c, v: its trial and test functions.
    """

    def __init__(self, transport: Any, a_c: Any, L_c: Any, c: Any, v: Any):
        self.transport = transport
        r = transport.reaction
        # where more Li slows the reaction (dN/dc < 0: the exchange current's vacancy factor near
        # a full surface on charge) the derivative is left out of the matrix, which would lose
        # its positive definiteness; the iteration then converges linearly there, to the same
        # solution
        a_r, L_r = diffusion.linearised_reaction_forms(c, v, transport.c, r.N,
                                                       ufl.max_value(r.N_c, 0.0), r.ds)
        self.a_newton = dolfinx.fem.form(a_c + a_r)  # for lifting held values
        self.a_react = dolfinx.fem.form(a_r)
        self.L_newton = dolfinx.fem.form(L_c + L_r)
        self.b_volt = dolfinx.fem.petsc.create_vector(transport.V)
        # the bulk operator changes only with dt: assembled once, the surface added to it
        self.A_bulk = dolfinx.fem.petsc.create_matrix(transport.a_c)
        self.A_newton: PETSc.Mat | None = None
        self._bulk_dt: float | None = None
        self._faces_vec: PETSc.Vec | None = None  # values of crack faces at global rows

    def _operator(self, dt: float) -> PETSc.Mat:
        """The bulk operator of dt plus the linearised surface reaction at the iterate."""
        tr = self.transport
        if self._bulk_dt != dt:
            self.A_bulk.zeroEntries()
            dolfinx.fem.petsc.assemble_matrix(self.A_bulk, tr.a_c)
            self.A_bulk.assemble()
            self._bulk_dt = dt
        if self.A_newton is None:
            self.A_newton = self.A_bulk.duplicate(copy=True)
        A = self.A_newton
        # the surface terms couple DOFs of one facet: inside the bulk pattern
        self.A_bulk.copy(A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
        dolfinx.fem.petsc.assemble_matrix(A, self.a_react)
        A.assemble()
        return A

    def solve(self, dt: float) -> int:
        """Solve the step of length dt (s) into the transport's c (and the reaction's V under
        constant current); returns Krylov iterations. Raises SolverError when Newton does not
        converge in ``electrochemistry.max_newton_iterations``."""
        tr = self.transport
        r, ec = tr.reaction, tr.cfg.electrochemistry
        tr.dt.value = dt
        tr.invalidate_operator()
        its = 0
        c = tr.c.x.petsc_vec
        c_it, c_volt = c.duplicate(), c.duplicate()
        try:
            for k in range(ec.max_newton_iterations):
                t0 = time.perf_counter()
                c.copy(c_it)
                r.update_film()
                A = self._operator(dt)
                faces = tr.face_terms(c)
                operator = A if tr.coupling is None else \
                    tr.coupling.operator(A, tr.held_global_rows)
                if faces is not None:
                    operator.setDiagonal(self._face_vector(faces.rows, faces.diagonal),
                                         addv=PETSc.InsertMode.ADD_VALUES)
                # one factorisation a step: later iterations change only the surface terms
                tr.ksp.set_operator(operator, reuse=k > 0)
                tr.assemble_rhs(tr.b_c, self.L_newton, self.a_newton,
                                extra=None if faces is None else (faces.rows, faces.rhs))
                if r.control == CURRENT:
                    tr.assemble_rhs(self.b_volt, r.rhs_volt_form(), self.a_newton,
                                    homogeneous=True, extra=None if faces is None
                                    else (faces.rows, faces.rhs_volt))
                    lin = r.linearise()
                    if faces is not None:
                        grad = self._face_vector(faces.rows, faces.gradient).array_r
                        lin = (lin[0] + faces.current, lin[1] + grad, lin[2] + faces.d_dV)
                t1 = time.perf_counter()
                its += tr.ksp.solve(tr.b_c, c)
                dV = 0.0
                if r.control == CURRENT:
                    its += tr.ksp.solve(self.b_volt, c_volt)
                    dV = r.voltage_update(lin, c_it.array_r, c.array_r, c_volt.array_r)
                    c.axpy(dV, c_volt)
                    r.V.value = float(r.V.value) + dV
                tr.c.x.scatter_forward()
                tr.timings["assembly"] += t1 - t0
                tr.timings["solve"] += time.perf_counter() - t1
                change = tr.comm.allreduce(
                    float(np.max(np.abs(c.array_r - c_it.array_r), initial=0.0)),
                    op=MPI.MAX) / tr.c_max
                if not np.isfinite(change):
                    break
                if change < ec.newton_tolerance and abs(dV) < VOLTAGE_TOLERANCE:
                    tr.update_x()
                    return its
        finally:
            c_it.destroy()
            c_volt.destroy()
        tr.update_x()
        raise SolverError(f"surface reaction: Newton did not converge in "
                          f"{ec.max_newton_iterations} iterations "
                          f"(electrochemistry.max_newton_iterations) at dt = {dt:.3g} s")

    def _face_vector(self, rows: np.ndarray, values: np.ndarray) -> PETSc.Vec:
        """A vector of the concentration space holding ``values`` added at the global
        ``rows`` (collective)."""
        if self._faces_vec is None:
            self._faces_vec = dolfinx.fem.petsc.create_vector(self.transport.V)
        vec = self._faces_vec
        with vec.localForm() as local:
            local.set(0.0)
        vec.setValues(rows.astype(PETSc.IntType), values, addv=PETSc.InsertMode.ADD_VALUES)
        vec.assemble()
        return vec

    def destroy(self) -> None:
        """Free the PETSc objects."""
        for obj in (self.A_bulk, self.A_newton, self.b_volt, self._faces_vec):
            if obj is not None:
                obj.destroy()
