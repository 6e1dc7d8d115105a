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

from nmcfem.config import Config
from nmcfem.geometry import OUTER_SURFACE, SHELL_CORE
from nmcfem.materials import MaterialFields
from nmcfem.physics import diffusion
from nmcfem.physics.electrochemistry import FARADAY, GAS_CONSTANT
from nmcfem.reaction_step import ButlerVolmerStep, outer_surface_reaction
from nmcfem.solvers import LinearSolver, solve_options

SECONDS_PER_HOUR = 3600.0
#: facet tags of the core's surface: under the shell, or the outer surface without one
CORE_SURFACE = (OUTER_SURFACE, SHELL_CORE)


def _on_facets(V: dolfinx.fem.FunctionSpace, tags: Any, values: tuple[int, ...]) -> np.ndarray:
    """Local DOFs (with ghosts) of V on the facets tagged with any of ``values``, as every rank
    sharing a DOF sees it: a rank may hold a surface vertex without holding a surface facet at
    it (collective)."""
    marker = dolfinx.fem.Function(V)
    facets = np.concatenate([tags.find(v) for v in values])
    marker.x.array[dolfinx.fem.locate_dofs_topological(V, 2, facets)] = 1.0
    marker.x.scatter_reverse(dolfinx.la.InsertMode.add)
    marker.x.scatter_forward()
    return np.flatnonzero(marker.x.array > 0).astype(np.int32)


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
        self.c, self.c_old, self.x = (dolfinx.fem.Function(V, name=n) for n in ("c", "c_old", "x"))
        self.c.x.array[:] = self.c_old.x.array[:] = cfg.loading.x_initial * self.c_max
        self.x.x.array[:] = self.c.x.array / self.c_max
        self.ds = ufl.Measure("ds", domain=mesh, subdomain_data=domain.facet_tags)
        one = dolfinx.fem.Constant(mesh, 1.0)
        self.volume = self._integrate(one * ufl.dx)
        self.ds_outer = self.ds(OUTER_SURFACE)
        self.outer_area = self._integrate(one * self.ds_outer)
        self.flux_value = self._surface_flux()
        # outward flux per surface node: the C-rate flux, or 0 where the surface is held
        self.flux = dolfinx.fem.Function(V, name="surface_flux")
        self.flux.x.array[:] = self.flux_value
        self.held = np.zeros(0, dtype=np.int32)  # local DOFs (with ghosts) held at bc_value
        self.crack_flux = 0.0  # mol/m^2/s on crack faces open to the electrolyte
        self.dt = dolfinx.fem.Constant(mesh, 1.0)
        c, v = ufl.TrialFunction(V), ufl.TestFunction(V)
        D = diffusion.diffusivity(materials.d_perp, materials.d_par, materials.axis)
        ld = cfg.loading
        stress_term = None if sigma_h is None else (dolfinx.fem.Constant(
            mesh, ld.partial_molar_volume / (GAS_CONSTANT * ld.temperature)), sigma_h)
        a_c, L_c = diffusion.backward_euler_forms(c, v, self.c_old, self.dt, D,
                                                  self.ds_outer, self.flux, stress_term)
        self.a_c, self.L_c = dolfinx.fem.form(a_c), dolfinx.fem.form(L_c)
        #: thickness (m) of the passivation layer grown on the outer surface (or None)
        self.film = dolfinx.fem.Function(V, name="passivation_thickness") \
            if cfg.passivation.enabled else None
        outer = dolfinx.fem.locate_dofs_topological(V, 2, domain.facet_tags.find(OUTER_SURFACE))
        self.outer_dofs_all = outer  # local, with ghosts
        self.outer_dofs = outer[outer < V.dofmap.index_map.size_local]
        self.reaction = outer_surface_reaction(self.c, self.ds, OUTER_SURFACE, cfg, self.film,
                                               outer)
        #: Butler-Volmer kinetics of experiment steps: the step is a Newton iteration on c and V
        self.butler_volmer = (cfg.experiment.steps is not None
                              and cfg.electrochemistry.kinetics == "butler-volmer")
        self.reaction_active = False  # set by the protocol for its cc, cv and rest steps
        self.newton = ButlerVolmerStep(self, a_c, L_c, c, v) if self.butler_volmer else None
        self.current = 0.0  # A: net reaction current of the last step, positive on charge
        self.A_c = dolfinx.fem.petsc.create_matrix(self.a_c)
        self.b_c = dolfinx.fem.petsc.create_vector(V)
        self.ksp = LinearSolver(self.comm, self.A_c, solve_options(cfg.solver, linear, "diffusion"),
                                "diffusion")
        self.bcs: list = []
        self._assembled_dt: float | None = None
        self.held_global_rows = np.zeros(0, dtype=np.int64)  # of the held DOFs, every rank's
        self._bc_value = 0.0
        self._bc_diag = 1.0  # diagonal of held rows, set with the operator
        self.grain_dofs = materials.grain_dofs(V)
        #: DOFs (with ghosts) on the core's surface, for the step control of a cut mesh
        self.core_surface_dofs = coupling and _on_facets(V, domain.facet_tags, CORE_SURFACE)
        self._total_li = dolfinx.fem.form(self.c * ufl.dx)
        self._li_old = self.total_li()  # mol: total Li of the committed state
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
        self.held_global_rows = np.unique(np.concatenate(self.comm.allgather(glob))).astype(
            np.int64)
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

    def invalidate_operator(self) -> None:
        """The linear step's operator must be assembled again (another solver used the KSP)."""
        self._assembled_dt = None

    def solve(self, dt: float) -> int:
        """Backward-Euler step of length dt (s) from c_old; returns Krylov iterations. Under
        Butler-Volmer kinetics a Newton iteration on c (and V under constant current); the
        step's reaction current and particle potential follow (``current``, ``voltage``)."""
        if self.reaction_active:
            its = self.newton.solve(dt)
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

    def crack_face_current(self) -> float:
        """Reaction current (A) of wetted crack faces at the present c and V (collective)."""
        faces = self.face_terms(self.c.x.petsc_vec)
        return faces.current if faces is not None else 0.0

    def face_terms(self, c: PETSc.Vec):
        """Reaction terms of wetted crack faces at the iterate c, or None (collective)."""
        faces = self.coupling.faces if self.coupling is not None else None
        if faces is None:
            return None
        return faces.linearise(c, float(self.reaction.V.value))

    def assemble_rhs(self, b: PETSc.Vec, L: Any, a: Any, homogeneous: bool = False,
                     extra: tuple[np.ndarray, np.ndarray] | None = None, bc_scale: float = 1.0,
                     crack_flux: float = 0.0) -> None:
        """Assemble the right-hand side ``L`` into ``b`` with the held DOFs' values (zero for
        ``homogeneous``; scaled by ``bc_scale``, the held rows' diagonal), the interface terms
        (with the outward flux ``crack_flux`` of open crack faces, mol/m^2/s) and ``extra``
        (global rows, values added)."""
        alpha = 0.0 if homogeneous else 1.0
        with b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(b, L)
        if self.bcs:
            dolfinx.fem.petsc.apply_lifting(b, [a], [self.bcs], alpha=alpha)
        b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if self.coupling is not None:
            self.coupling.add_rhs(b, self.held_global_rows, alpha * self._bc_value, crack_flux,
                                  extra)
        if self.bcs:
            dolfinx.fem.petsc.set_bc(b, self.bcs, alpha=alpha * bc_scale)

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
                                  coupling.operator(self.A_c, self.held_global_rows))
            self._assembled_dt = dt
        self.assemble_rhs(self.b_c, self.L_c, self.a_c, bc_scale=self._bc_diag,
                          crack_flux=self.crack_flux)
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
        """Largest change of the grains' Li fraction over the trial step, cracked grain-boundary
        faces inside the core left out (``InterfaceTransport.quiet_face_dofs``; collective)."""
        dofs = self.grain_dofs if self.coupling is None else np.setdiff1d(
            self.grain_dofs, self.coupling.quiet_face_dofs(self.core_surface_dofs))
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
        return self._range(self.x.x.array[dofs])

    def reacting_surface_range(self) -> tuple[float, float]:
        """Smallest and largest Li fraction of the reacting face of the outer surface: the
        surface itself, or the outer side of a throttling passivation layer (collective)."""
        r, dofs = self.reaction, self.outer_dofs
        if r.film is None:
            return self.surface_range()
        return self._range((self.c.x.array[dofs] - r.drop.x.array[dofs]) / self.c_max)

    def _range(self, values: np.ndarray) -> tuple[float, float]:
        """Smallest and largest of ``values`` over all ranks (collective)."""
        return (self.comm.allreduce(float(np.min(values, initial=np.inf)), op=MPI.MIN),
                self.comm.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX))

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.ksp.destroy()
        self.A_c.destroy()
        if self.newton is not None:
            self.newton.destroy()
        self.b_c.destroy()
