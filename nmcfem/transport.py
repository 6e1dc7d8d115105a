"""Li transport in a particle: the backward-Euler diffusion step with its surface flux, held
surface nodes (Dirichlet) and, on a cut mesh, the interface conductances.

The weak form lives in :mod:`nmcfem.physics.diffusion`; this module owns the unknown c, the
operator and its solver. The surface loading is set from outside: a uniform outward flux
(C-rate), the nodes held at a Li fraction (:meth:`TransportProblem.hold`), and the current of
crack faces open to the electrolyte.
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
from nmcfem.geometry import OUTER_SURFACE
from nmcfem.materials import MaterialFields
from nmcfem.physics import diffusion
from nmcfem.physics.electrochemistry import FARADAY, GAS_CONSTANT, Kinetics
from nmcfem.solvers import LinearSolver, solve_options
from nmcfem.surface_reaction import CURRENT, SurfaceReaction

SECONDS_PER_HOUR = 3600.0
#: quadrature degree of the surface reaction terms (exact for quartic integrands on a facet)
REACTION_QUADRATURE_DEGREE = 4
#: the reference triangle's vertices: a nodal (lumped) quadrature of surface terms
VERTICES_OF_TRIANGLE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])


class TransportProblem:
    """Backward-Euler Li transport dc/dt = div(D grad c) on the particle.

    Parameters
    ----------
    domain: ParticleDomain (mesh, facet tags).
    cfg: configuration (``loading``, ``solver.diffusion``, the grain's c_max).
    materials: the diffusivity fields.
    V: scalar P1 space of the concentration.
    sigma_h: nodal hydrostatic stress (Pa) of the stress-assisted flux, or None.
    coupling: interface transport of a cut mesh (:class:`nmcfem.cohesive.transport.
        InterfaceTransport`), or None.
    linear: linear-algebra path, "direct" or "iterative" (:func:`nmcfem.solvers.linear_path`).
    """

    def __init__(self, domain: Any, cfg: Config, materials: MaterialFields,
                 V: dolfinx.fem.FunctionSpace, sigma_h: dolfinx.fem.Function | None = None,
                 coupling: Any = None, linear: str = "iterative"):
        mesh = domain.mesh
        self.comm, self.cfg, self.coupling = mesh.comm, cfg, coupling
        self.c_max = cfg.materials.grain.c_max
        self.timings = {"assembly": 0.0, "solve": 0.0}
        self.V = V
        x0 = cfg.loading.x_initial
        self.c = dolfinx.fem.Function(V, name="c")
        self.c_old = dolfinx.fem.Function(V, name="c_old")
        self.c.x.array[:] = x0 * self.c_max
        self.c_old.x.array[:] = x0 * self.c_max
        self.x = dolfinx.fem.Function(V, name="x")
        self.x.x.array[:] = self.c.x.array / self.c_max
        self.ds = ufl.Measure("ds", domain=mesh, subdomain_data=domain.facet_tags)
        one = dolfinx.fem.Constant(mesh, 1.0)
        self.volume = self._integrate(one * ufl.dx)
        self.outer_area = self._integrate(one * self.ds(OUTER_SURFACE))
        self.flux_value = self._surface_flux()
        # outward flux per surface node: the C-rate flux, or 0 where the surface is held
        self.flux = dolfinx.fem.Function(V, name="surface_flux")
        self.flux.x.array[:] = self.flux_value
        self.held = np.zeros(0, dtype=np.int32)  # local DOFs (with ghosts) held at bc_value
        self.crack_flux = 0.0  # mol/m^2/s on crack faces open to the electrolyte
        self.dt = dolfinx.fem.Constant(mesh, 1.0)
        c, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        D = diffusion.diffusivity(materials.d_perp, materials.d_par, materials.axis)
        stress_term = None
        if sigma_h is not None:
            ld = cfg.loading
            factor = ld.partial_molar_volume / (GAS_CONSTANT * ld.temperature)
            stress_term = (dolfinx.fem.Constant(mesh, factor), sigma_h)
        a_c, L_c = diffusion.backward_euler_forms(c, v, self.c_old, self.dt, D,
                                                  self.ds(OUTER_SURFACE), self.flux, stress_term)
        self.a_c, self.L_c = dolfinx.fem.form(a_c), dolfinx.fem.form(L_c)
        ec = cfg.electrochemistry
        table = read_ocp_table(ec.ocp_table) if ec.ocp == "table" else None
        self.ds_outer = self.ds(OUTER_SURFACE)
        #: thickness (m) of the passivation layer grown on the outer surface (or None)
        self.film = dolfinx.fem.Function(V, name="passivation_thickness") \
            if cfg.passivation.enabled else None

        # UFL would integrate the exponentials and tanh of Butler-Volmer with a quadrature
        # degree of 10 and more (and assemble 30x slower); P1 concentrations need far less
        pa = cfg.passivation
        throttled = pa.enabled and pa.throttles_transport
        # a film's concentration drop is solved node by node: the reaction is then integrated
        # at the nodes too (vertex quadrature), so that its elimination from Newton is exact
        ds_reaction = self.ds(OUTER_SURFACE, metadata=(
            {"quadrature_rule": "custom", "quadrature_degree": 1,
             "quadrature_points": VERTICES_OF_TRIANGLE,
             "quadrature_weights": np.full(3, 1.0 / 6.0)} if throttled
            else {"quadrature_degree": REACTION_QUADRATURE_DEGREE}))
        film = (self.film, cfg.materials.shell.D_L, None) if throttled else None
        self.reaction = SurfaceReaction(self.c, self.c_max, ds_reaction,
                                        Kinetics(ec, self.c_max, cfg.loading.temperature, table),
                                        film)
        #: Butler-Volmer kinetics of experiment steps: the step is a Newton iteration on c and V
        self.butler_volmer = cfg.experiment.steps is not None and ec.kinetics == "butler-volmer"
        self.reaction_active = False  # set by the protocol for its cc, cv and rest steps
        if self.butler_volmer:
            r = self.reaction
            # where more Li slows the reaction (dN/dc < 0: the exchange current's vacancy
            # factor near a full surface on charge) the derivative is left out of the matrix,
            # which would lose its positive definiteness; the iteration then converges linearly
            # there, to the same solution
            a_r, L_r = diffusion.linearised_reaction_forms(c, v, self.c, r.N,
                                                           ufl.max_value(r.N_c, 0.0), r.ds)
            self.a_newton = dolfinx.fem.form(a_c + a_r)  # for lifting held values
            self.a_react = dolfinx.fem.form(a_r)
            self.L_newton = dolfinx.fem.form(L_c + L_r)
            self.b_volt = dolfinx.fem.petsc.create_vector(V)
            # the bulk operator changes only with dt: assembled once, the surface added to it
            self.A_bulk = dolfinx.fem.petsc.create_matrix(self.a_c)
            self.A_newton: PETSc.Mat | None = None
            self._bulk_dt: float | None = None
        self._li_old = 0.0  # mol: total Li of the committed state (set below)
        self.current = 0.0  # A: net reaction current of the last step, positive on charge
        self.A_c = dolfinx.fem.petsc.create_matrix(self.a_c)
        self.b_c = dolfinx.fem.petsc.create_vector(V)
        self._faces_vec: PETSc.Vec | None = None  # values of crack faces at global rows
        self.ksp = LinearSolver(self.comm, self.A_c, solve_options(cfg.solver, linear, "diffusion"),
                                "diffusion")
        self.bcs: list = []
        self._assembled_dt: float | None = None
        self._bc_global = np.zeros(0, dtype=np.int64)
        self._bc_value = 0.0
        self._bc_diag = 1.0  # diagonal of held rows, set with the operator
        outer = dolfinx.fem.locate_dofs_topological(V, 2, domain.facet_tags.find(OUTER_SURFACE))
        self.outer_dofs_all = outer  # local, with ghosts
        if self.reaction.film is not None:
            self.reaction.film = (*self.reaction.film[:2], outer)
        self.outer_dofs = outer[outer < V.dofmap.index_map.size_local]
        self.grain_dofs = materials.grain_dofs(V)

        self._total_li = dolfinx.fem.form(self.c * ufl.dx)
        self._li_old = self.total_li()
        #: the current (A) of 1C: the particle's capacity c_max V F over one hour
        self.one_c_current = self.c_max * self.volume * FARADAY / SECONDS_PER_HOUR

    def _integrate(self, expr) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(expr)),
                                   op=MPI.SUM)

    def _surface_flux(self) -> float:
        """Outward Li flux j (mol/m^2/s) of a galvanostatic C-rate on the discrete particle."""
        ld = self.cfg.loading
        if ld.mode != "galvanostatic" or self.cfg.experiment.steps is not None:
            return 0.0  # an experiment's protocol sets the current of each step
        sign = 1.0 if ld.direction == "charge" else -1.0
        return sign * ld.c_rate * self.c_max * self.volume / (self.outer_area * SECONDS_PER_HOUR)

    # --- boundary conditions ---------------------------------------------------------------

    def hold(self, dofs: np.ndarray, value: float) -> None:
        """Hold the local DOFs ``dofs`` (with ghosts; replacing the held set) at the
        concentration ``value`` (mol/m^3), with no surface flux there (collective)."""
        self.held = np.asarray(dofs, dtype=np.int32)
        self.flux.x.array[self.held] = 0.0
        constant = dolfinx.fem.Constant(self.c.function_space.mesh, value)
        self.bcs = [dolfinx.fem.dirichletbc(constant, self.held, self.V)] if len(self.held) \
            else []
        self._assembled_dt = None
        imap = self.V.dofmap.index_map
        glob = imap.local_to_global(self.held.astype(np.int32))
        self._bc_global = np.unique(np.concatenate(self.comm.allgather(glob))).astype(np.int64)
        self._bc_value = value

    def share_current(self, exposed_area: float) -> None:
        """Galvanostatic current shared by the outer surface and crack faces open to the
        electrolyte (``exposed_area`` in m^2): the same current density everywhere, the same
        total current."""
        j = self.flux_value * self.outer_area / (self.outer_area + exposed_area)
        self.flux.x.array[:] = j
        self.flux.x.array[self.held] = 0.0
        self.crack_flux = j if exposed_area > 0 else 0.0

    # --- stepping --------------------------------------------------------------------------

    def set_uniform_current(self, current: float, exposed_area: float = 0.0) -> None:
        """A uniform outward flux carrying ``current`` (A, positive on charge), shared with
        crack faces open to the electrolyte (``exposed_area``, m^2)."""
        self.flux_value = current / (FARADAY * self.outer_area)
        self.share_current(exposed_area)

    def solve(self, dt: float) -> int:
        """Backward-Euler step of length dt (s) from c_old; returns Krylov iterations. Under
        Butler-Volmer kinetics a Newton iteration on c (and V under constant current); the
        step's reaction current and particle potential follow (``current``, ``voltage``)."""
        if self.reaction_active:
            its = self._solve_reaction(dt)
            self.current = self.reaction.total_current() + self.crack_face_current()
        else:
            its = self._solve_linear(dt)
            self.current = FARADAY * (self._li_old - self.total_li()) / dt
            self.reaction.voltage_for(self.current)
        return its

    @property
    def voltage(self) -> float:
        """Particle potential (V vs Li/Li+) of the trial or last accepted step."""
        return float(self.reaction.V.value)

    def _solve_reaction(self, dt: float) -> int:
        """Newton iteration of a backward-Euler step with the Butler-Volmer surface flux; under
        constant current each iteration also updates V (a bordered system: two solves with one
        matrix). Raises SolverError when it does not converge."""
        r, ec = self.reaction, self.cfg.electrochemistry
        self.dt.value = dt
        self._assembled_dt = None
        its = 0
        c = self.c.x.petsc_vec
        c_it, c_volt = c.duplicate(), c.duplicate()
        try:
            for _ in range(ec.max_newton_iterations):
                t0 = time.perf_counter()
                c.copy(c_it)
                r.update_film()
                if self._bulk_dt != dt:
                    self.A_bulk.zeroEntries()
                    dolfinx.fem.petsc.assemble_matrix(self.A_bulk, self.a_c)
                    self.A_bulk.assemble()
                    self._bulk_dt = dt
                if self.A_newton is None:
                    self.A_newton = self.A_bulk.duplicate(copy=True)
                A = self.A_newton
                # the surface terms couple DOFs of one facet: inside the bulk pattern
                self.A_bulk.copy(A, structure=PETSc.Mat.Structure.SAME_NONZERO_PATTERN)
                dolfinx.fem.petsc.assemble_matrix(A, self.a_react)
                A.assemble()
                faces = self._face_terms(c)
                operator = A if self.coupling is None else \
                    self.coupling.operator(A, self._bc_global)
                if faces is not None:
                    operator.setDiagonal(self._face_vector(faces.rows, faces.diagonal),
                                         addv=PETSc.InsertMode.ADD_VALUES)
                self.ksp.set_operator(operator)
                self._assemble_rhs(self.b_c, self.L_newton, self.a_newton,
                                   extra=None if faces is None else (faces.rows, faces.rhs))
                if r.control == CURRENT:
                    self._assemble_rhs(self.b_volt, r.rhs_volt_form(), self.a_newton,
                                       homogeneous=True, extra=None if faces is None
                                       else (faces.rows, faces.rhs_volt))
                    lin = r.linearise()
                    if faces is not None:
                        grad = self._face_vector(faces.rows, faces.gradient).array_r
                        lin = (lin[0] + faces.current, lin[1] + grad, lin[2] + faces.d_dV)
                t1 = time.perf_counter()
                its += self.ksp.solve(self.b_c, c)
                dV = 0.0
                if r.control == CURRENT:
                    its += self.ksp.solve(self.b_volt, c_volt)
                    dV = r.voltage_update(lin, c_it.array_r, c.array_r, c_volt.array_r)
                    c.axpy(dV, c_volt)
                    r.V.value = float(r.V.value) + dV
                self.c.x.scatter_forward()
                self.timings["assembly"] += t1 - t0
                self.timings["solve"] += time.perf_counter() - t1
                change = self.comm.allreduce(
                    float(np.max(np.abs(c.array_r - c_it.array_r), initial=0.0)),
                    op=MPI.MAX) / self.c_max
                if not np.isfinite(change):
                    break
                if change < ec.newton_tolerance and abs(dV) < 1e-9:
                    self.update_x()
                    return its
        finally:
            c_it.destroy()
            c_volt.destroy()
        self.update_x()
        raise SolverError(f"surface reaction: Newton did not converge in "
                          f"{ec.max_newton_iterations} iterations "
                          f"(electrochemistry.max_newton_iterations) at dt = {dt:.3g} s")

    def _face_terms(self, c: PETSc.Vec):
        """Reaction terms of wetted crack faces at the iterate c, or None (collective)."""
        faces = self.coupling.faces if self.coupling is not None else None
        if faces is None:
            return None
        return faces.linearise(c, float(self.reaction.V.value))

    def _face_vector(self, rows: np.ndarray, values: np.ndarray) -> PETSc.Vec:
        """A vector of the concentration space holding ``values`` added at the global
        ``rows`` (collective)."""
        if self._faces_vec is None:
            self._faces_vec = dolfinx.fem.petsc.create_vector(self.V)
        vec = self._faces_vec
        with vec.localForm() as local:
            local.set(0.0)
        vec.setValues(rows.astype(PETSc.IntType), values, addv=PETSc.InsertMode.ADD_VALUES)
        vec.assemble()
        return vec

    def crack_face_current(self) -> float:
        """Reaction current (A) of wetted crack faces at the present c and V (collective)."""
        faces = self._face_terms(self.c.x.petsc_vec)
        return faces.current if faces is not None else 0.0

    def _assemble_rhs(self, b: PETSc.Vec, L: Any, a: Any, homogeneous: bool = False,
                      extra: tuple[np.ndarray, np.ndarray] | None = None) -> None:
        """Assemble the right-hand side ``L`` into ``b`` with the held DOFs' values (zero for
        ``homogeneous``), the interface terms and ``extra`` (global rows, values added)."""
        with b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, L)
        if self.bcs:
            dolfinx.fem.petsc.apply_lifting(b, [a], [self.bcs],
                                            alpha=0.0 if homogeneous else 1.0)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if self.coupling is not None:
            self.coupling.add_rhs(b, self._bc_global, 0.0 if homogeneous else self._bc_value,
                                  0.0, extra)
        if self.bcs:
            dolfinx.fem.petsc.set_bc(b, self.bcs, alpha=0.0 if homogeneous else 1.0)

    def _solve_linear(self, dt: float) -> int:
        """Backward-Euler step with an imposed surface flux and held nodes."""
        t0 = time.perf_counter()
        coupling = self.coupling
        if self._assembled_dt != dt or (coupling is not None and coupling.changed):
            self.dt.value = dt
            self.A_c.zeroEntries()
            # Dirichlet rows get a diagonal of the size of the others (a nodal volume / dt), not
            # 1: a 1e18-fold outlier breaks the AMG smoothers' eigenvalue estimates
            self._bc_diag = self.volume / self.V.dofmap.index_map.size_global / dt
            dolfinx.fem.petsc.assemble_matrix(self.A_c, self.a_c, bcs=self.bcs,
                                              diag=self._bc_diag)
            self.A_c.assemble()
            self.ksp.set_operator(self.A_c if coupling is None else
                                  coupling.operator(self.A_c, self._bc_global))
            self._assembled_dt = dt
        with self.b_c.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b_c, self.L_c)
        if self.bcs:
            dolfinx.fem.petsc.apply_lifting(self.b_c, [self.a_c], [self.bcs])
        self.b_c.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if coupling is not None:
            coupling.add_rhs(self.b_c, self._bc_global, self._bc_value, self.crack_flux)
        if self.bcs:
            dolfinx.fem.petsc.set_bc(self.b_c, self.bcs, alpha=self._bc_diag)
        t1 = time.perf_counter()
        its = self.ksp.solve(self.b_c, self.c.x.petsc_vec)
        self.c.x.scatter_forward()
        self.timings["assembly"] += t1 - t0
        self.timings["solve"] += time.perf_counter() - t1
        self.update_x()
        return its

    def update_x(self) -> None:
        """Li fraction x = c / c_max from the concentration."""
        self.x.x.array[:] = self.c.x.array / self.c_max

    def dx_max(self) -> float:
        """Largest change of the grains' Li fraction over the trial step (collective)."""
        dofs = self.grain_dofs
        local = np.max(np.abs(self.c.x.array[dofs] - self.c_old.x.array[dofs]),
                       initial=0.0) / self.c_max
        return self.comm.allreduce(local, op=MPI.MAX)

    def accept(self) -> None:
        """The trial concentration becomes the previous state of the next step."""
        self.c_old.x.array[:] = self.c.x.array
        self._li_old = self.total_li()
        self.reaction.accept()

    def reject(self) -> None:
        """Return to the previous state."""
        self.c.x.array[:] = self.c_old.x.array
        self.update_x()
        self.reaction.reject()

    # --- results ---------------------------------------------------------------------------

    def total_li(self) -> float:
        """Total Li in the particle (mol)."""
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(self._total_li), op=MPI.SUM)

    def mean_x(self) -> float:
        """Volume-averaged Li fraction."""
        return self.total_li() / (self.c_max * self.volume)

    def surface_range(self, exclude: np.ndarray | None = None) -> tuple[float, float]:
        """Smallest and largest Li fraction on the outer surface (collective).

        Parameters
        ----------
        exclude: local DOFs left out (e.g. the held ones).
        """
        dofs = self.outer_dofs
        if exclude is not None and len(exclude):
            dofs = np.setdiff1d(dofs, exclude)
        xs = self.x.x.array[dofs]
        lo = self.comm.allreduce(float(np.min(xs, initial=np.inf)), op=MPI.MIN)
        hi = self.comm.allreduce(float(np.max(xs, initial=-np.inf)), op=MPI.MAX)
        return lo, hi

    def reacting_surface_range(self) -> tuple[float, float]:
        """Smallest and largest Li fraction of the reacting face of the outer surface: the
        surface itself, or the outer side of a throttling passivation layer (collective)."""
        r = self.reaction
        if r.film is None:
            return self.surface_range()
        dofs = self.outer_dofs
        xs = (self.c.x.array[dofs] - r.drop.x.array[dofs]) / self.c_max
        lo = self.comm.allreduce(float(np.min(xs, initial=np.inf)), op=MPI.MIN)
        hi = self.comm.allreduce(float(np.max(xs, initial=-np.inf)), op=MPI.MAX)
        return lo, hi

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.ksp.destroy()
        self.A_c.destroy()
        if self.butler_volmer:
            for obj in (self.A_bulk, self.A_newton, self.b_volt):
                if obj is not None:
                    obj.destroy()
        self.b_c.destroy()
        if self._faces_vec is not None:
            self._faces_vec.destroy()
