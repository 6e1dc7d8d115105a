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
from nmcfem.geometry import OUTER_SURFACE
from nmcfem.materials import MaterialFields
from nmcfem.physics import diffusion
from nmcfem.solvers import LinearSolver, solve_options

SECONDS_PER_HOUR = 3600.0
#: universal gas constant (J/mol/K), CODATA 2018
GAS_CONSTANT = 8.314462618


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
        self.A_c = dolfinx.fem.petsc.create_matrix(self.a_c)
        self.b_c = dolfinx.fem.petsc.create_vector(V)
        self.ksp = LinearSolver(self.comm, self.A_c, solve_options(cfg.solver, linear, "diffusion"),
                                "diffusion")
        self.bcs: list = []
        self._assembled_dt: float | None = None
        self._bc_global = np.zeros(0, dtype=np.int64)
        self._bc_value = 0.0
        self._bc_diag = 1.0  # diagonal of held rows, set with the operator
        outer = dolfinx.fem.locate_dofs_topological(V, 2, domain.facet_tags.find(OUTER_SURFACE))
        self.outer_dofs_all = outer  # local, with ghosts
        self.outer_dofs = outer[outer < V.dofmap.index_map.size_local]
        self.grain_dofs = materials.grain_dofs(V)

        self._total_li = dolfinx.fem.form(self.c * ufl.dx)

    def _integrate(self, expr) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(expr)),
                                   op=MPI.SUM)

    def _surface_flux(self) -> float:
        """Outward Li flux j (mol/m^2/s) of a galvanostatic C-rate on the discrete particle."""
        ld = self.cfg.loading
        if ld.mode != "galvanostatic":
            return 0.0
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

    def solve(self, dt: float) -> int:
        """Backward-Euler step of length dt (s) from c_old; returns Krylov iterations."""
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

    def reject(self) -> None:
        """Return to the previous state."""
        self.c.x.array[:] = self.c_old.x.array
        self.update_x()

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

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.ksp.destroy()
        self.A_c.destroy()
        self.b_c.destroy()
