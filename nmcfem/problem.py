"""The coupled Li-transport / chemo-elasticity problem on a particle mesh.

Function spaces, per-grain material fields, loading, and the two linear solves of a staggered
step (c, then u). PETSc options come from the config as plain dicts; every solve checks its
converged reason and raises :class:`SolverError` with a clear message on failure, so the time
loop can cut the step. The physics itself lives in ``nmcfem.physics``.
"""

from __future__ import annotations

import itertools
import time
import weakref
from typing import Any

import numpy as np
from mpi4py import MPI
from petsc4py import PETSc

import dolfinx
import dolfinx.fem.petsc
import ufl

from nmcfem import NmcfemError
from nmcfem.config import Config
from nmcfem.crystal import (chemical_strain_components, isotropic_coefficients,
                            transverse_coefficients)
from nmcfem.geometry import GB_OFFSET, OUTER_SURFACE, SHELL, SHELL_CORE
from nmcfem.physics import diffusion, elasticity

SECONDS_PER_HOUR = 3600.0
#: universal gas constant (J/mol/K), CODATA 2018
GAS_CONSTANT = 8.314462618
_PREFIX_COUNTER = itertools.count()


class SolverError(NmcfemError):
    """A linear or nonlinear solve did not converge; the message names the solve and reason."""


def _reason_name(reason: int) -> str:
    for name in dir(PETSc.KSP.ConvergedReason):
        if not name.startswith("_") and getattr(PETSc.KSP.ConvergedReason, name) == reason:
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
            raise SolverError(f"{self.name} solve did not converge: {_reason_name(reason)} after "
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


class ChemoMechanicsProblem:
    """Li transport and chemo-elasticity on a particle, advanced by staggered steps.

    Parameters
    ----------
    domain: ParticleDomain (mesh, tags, radius in m).
    cfg: resolved configuration.
    rotations: (N,3,3) grain rotation matrices (columns a, b, c in the lab frame).
    """

    def __init__(self, domain: Any, cfg: Config, rotations: np.ndarray):
        self.domain, self.cfg = domain, cfg
        self.comm = domain.mesh.comm
        mesh = self.mesh = domain.mesh
        grain = cfg.materials.grain
        self.c_max = grain.c_max
        self.timings = {"assembly": 0.0, "solve": 0.0}
        self.t = 0.0
        if cfg.loading.stress_assisted and cfg.loading.partial_molar_volume <= 0:
            raise NmcfemError("loading.stress_assisted is on but loading.partial_molar_volume "
                              "= 0 m^3/mol: give Omega > 0")

        self.V = dolfinx.fem.functionspace(mesh, ("Lagrange", 1))
        self.W = dolfinx.fem.functionspace(mesh, ("Lagrange", 1, (3,)))
        Q0 = self.Q0 = dolfinx.fem.functionspace(mesh, ("DG", 0))
        Q0v = dolfinx.fem.functionspace(mesh, ("DG", 0, (3,)))
        self.T0 = dolfinx.fem.functionspace(mesh, ("DG", 0, (3, 3)))
        self._build_materials(rotations, Q0, Q0v)

        x0 = cfg.loading.x_initial
        self.c = dolfinx.fem.Function(self.V, name="c")
        self.c_old = dolfinx.fem.Function(self.V, name="c_old")
        self.c.x.array[:] = x0 * self.c_max
        self.c_old.x.array[:] = x0 * self.c_max
        self.x = dolfinx.fem.Function(self.V, name="x")
        self.eps_a = dolfinx.fem.Function(self.V, name="eps_a")
        self.eps_c = dolfinx.fem.Function(self.V, name="eps_c")
        self.u = dolfinx.fem.Function(self.W, name="u")
        self.u_old = dolfinx.fem.Function(self.W)
        self.sigma_h = dolfinx.fem.Function(self.V, name="sigma_h_nodal")
        self._update_x()

        self.dt = dolfinx.fem.Constant(mesh, 1.0)
        self.ds = ufl.Measure("ds", domain=mesh, subdomain_data=domain.facet_tags)
        one = dolfinx.fem.Constant(mesh, 1.0)
        self.volume = self._integrate(one * ufl.dx)
        self.outer_area = self._integrate(one * self.ds(OUTER_SURFACE))
        self.flux_value = self._surface_flux()
        # Outward flux per surface node: the C-rate flux, or 0 where the surface is clamped at
        # its limit (local constant-voltage hold)
        self.flux = dolfinx.fem.Function(self.V, name="surface_flux")
        self.flux.x.array[:] = self.flux_value
        self.clamped = np.zeros(0, dtype=np.int32)
        self.crack_flux = 0.0  # mol/m^2/s on crack faces open to the electrolyte
        self._build_forms()
        self.stress = dolfinx.fem.Function(self.T0, name="stress")
        self._stress_expr = dolfinx.fem.Expression(self._stress_ufl(),
                                                   self.T0.element.interpolation_points)
        self._gb_geometry()
        self.last: dict[str, Any] = {}

    # --- set-up ----------------------------------------------------------------------------

    def _build_materials(self, rotations: np.ndarray, Q0, Q0v) -> None:
        """DG0 fields of c axis, elastic coefficients, diffusivities and the grain indicator."""
        cfg, mesh = self.cfg, self.mesh
        n_cells = mesh.topology.index_map(3).size_local + mesh.topology.index_map(3).num_ghosts
        tag = np.full(n_cells, -1, dtype=np.int64)
        tag[self.domain.cell_tags.indices] = self.domain.cell_tags.values
        n_owned = mesh.topology.index_map(3).size_local
        if np.any(tag[:n_owned] < 0):
            raise NmcfemError("mesh: some cells carry no grain/shell tag; delete the mesh cache "
                              "folder and rebuild")
        self.cell_region = tag
        grain = cfg.materials.grain
        shell = cfg.materials.shell
        kg = transverse_coefficients(grain.C11, grain.C12, grain.C13, grain.C33, grain.C44)
        ks = isotropic_coefficients(shell.E, shell.nu)
        is_shell = tag == SHELL
        axes = np.zeros((n_cells, 3))
        axes[:, 2] = 1.0
        in_grain = ~is_shell & (tag > 0)
        axes[in_grain] = rotations[tag[in_grain] - 1, :, 2]
        self.axis = dolfinx.fem.Function(Q0v, name="c_axis")
        self.axis.x.array[:] = axes.reshape(-1)
        self.k = {}
        for name in kg:
            f = dolfinx.fem.Function(Q0, name=name)
            f.x.array[:] = np.where(is_shell, ks[name], kg[name])
            self.k[name] = f
        self.d_perp = dolfinx.fem.Function(Q0, name="D_perp")
        self.d_par = dolfinx.fem.Function(Q0, name="D_par")
        self.d_perp.x.array[:] = np.where(is_shell, shell.D_L, grain.D_ab)
        self.d_par.x.array[:] = np.where(is_shell, shell.D_L, grain.D_c)
        self.active = dolfinx.fem.Function(Q0, name="grain_indicator")
        self.active.x.array[:] = np.where(is_shell, 0.0, 1.0)
        self.grain_id = dolfinx.fem.Function(Q0, name="grain_id")
        self.grain_id.x.array[:] = tag
        # where the step control watches the Li fraction (see step)
        grain_dofs = np.unique(self.V.dofmap.list[np.flatnonzero(~is_shell)])
        self._grain_dofs = grain_dofs[grain_dofs < self.V.dofmap.index_map.size_local]

    def _surface_flux(self) -> float:
        """Outward Li flux j (mol/m^2/s) of a galvanostatic C-rate on the discrete particle."""
        ld = self.cfg.loading
        if ld.mode != "galvanostatic":
            return 0.0
        sign = 1.0 if ld.direction == "charge" else -1.0
        return sign * ld.c_rate * self.c_max * self.volume / (self.outer_area * SECONDS_PER_HOUR)

    def _eps_ch(self):
        return elasticity.chemical_strain(self.eps_a, self.eps_c, self.axis, self.active)

    def _stress_ufl(self):
        return elasticity.stress(elasticity.strain(self.u) - self._eps_ch(), self.axis, self.k)

    def _build_forms(self) -> None:
        cfg = self.cfg
        c, v = ufl.TrialFunction(self.V), ufl.TestFunction(self.V)
        D = diffusion.diffusivity(self.d_perp, self.d_par, self.axis)
        stress_term = None
        if cfg.loading.stress_assisted:
            factor = cfg.loading.partial_molar_volume / (GAS_CONSTANT * cfg.loading.temperature)
            stress_term = (dolfinx.fem.Constant(self.mesh, factor), self.sigma_h)
        a_c, L_c = diffusion.backward_euler_forms(c, v, self.c_old, self.dt, D,
                                                  self.ds(OUTER_SURFACE), self.flux, stress_term)
        self.a_c, self.L_c = dolfinx.fem.form(a_c), dolfinx.fem.form(L_c)
        self.bcs_c = []
        if cfg.loading.mode == "potentiostatic":
            dofs = dolfinx.fem.locate_dofs_topological(
                self.V, 2, self.domain.facet_tags.find(OUTER_SURFACE))
            value = dolfinx.fem.Constant(self.mesh, cfg.loading.surface_x * self.c_max)
            self.bcs_c = [dolfinx.fem.dirichletbc(value, dofs, self.V)]
        self.A_c = dolfinx.fem.petsc.create_matrix(self.a_c)
        self.b_c = dolfinx.fem.petsc.create_vector(self.V)
        self.ksp_c = LinearSolver(self.comm, self.A_c, dict(cfg.solver.diffusion), "diffusion")
        self._assembled_dt = None
        self._transport_bcs_changed(cfg.loading.surface_x * self.c_max)
        self.phase = "potentiostatic" if cfg.loading.mode == "potentiostatic" else "galvanostatic"

        u, w = ufl.TrialFunction(self.W), ufl.TestFunction(self.W)
        a_u, L_u = elasticity.equilibrium_forms(u, w, self.axis, self.k, self._eps_ch())
        self.a_u, self.L_u = dolfinx.fem.form(a_u), dolfinx.fem.form(L_u)
        t0 = time.perf_counter()
        self.A_u = dolfinx.fem.petsc.assemble_matrix(self.a_u)
        self.A_u.assemble()
        self.timings["assembly"] += time.perf_counter() - t0
        self.nullspace = rigid_body_modes(self.W)
        self.A_u.setNullSpace(self.nullspace)
        self.A_u.setNearNullSpace(self.nullspace)
        self.b_u = dolfinx.fem.petsc.create_vector(self.W)
        self.ksp_u = LinearSolver(self.comm, self.A_u, dict(cfg.solver.elasticity), "elasticity")
        # cohesive interfaces exist where the mesh was cut open along them
        self.cracks = self.equilibrium = None
        if getattr(self.domain, "interfaces", None) is not None:
            from nmcfem.cracks import ParticleCracks

            self.cracks = ParticleCracks(self.W, self.V, self.domain, cfg)
            self.equilibrium = self.cracks.equilibrium(self.A_u, self.nullspace)

        self._total_li = dolfinx.fem.form(self.c * ufl.dx)
        self._surface_x = dolfinx.fem.form(self.x * self.ds(OUTER_SURFACE))
        # Li fraction just under the shell: the core side of the shell/core interface
        interfaces = getattr(self.domain, "interfaces", None)
        if interfaces is not None and np.any(interfaces.facet_tag == SHELL_CORE):
            # the open shell/core interface: its core-side faces are boundary facets
            under, x_under = self.ds(SHELL_CORE), self.x
        else:
            dS = ufl.Measure("dS", domain=self.mesh, subdomain_data=self.domain.facet_tags)
            under, x_under = dS(SHELL_CORE), ufl.avg(self.x)
        self._interface_area = self._integrate(dolfinx.fem.Constant(self.mesh, 1.0) * under)
        self._interface_x = dolfinx.fem.form(x_under * under)
        outer_dofs = dolfinx.fem.locate_dofs_topological(
            self.V, 2, self.domain.facet_tags.find(OUTER_SURFACE))
        self._outer_dofs_all = outer_dofs
        self._outer_dofs = outer_dofs[outer_dofs < self.V.dofmap.index_map.size_local]

    def clamp_surface(self, limit: float, tol: float, charge: bool) -> int:
        """Hold surface nodes that reached the limit at it (local CC -> CV); return how many
        nodes were newly clamped (collective).

        A surface point follows the constant current until its Li fraction reaches ``limit``
        (the analogue of the voltage cut-off) and is then held there, so the total current
        falls smoothly as more of the surface reaches the limit.

        Parameters
        ----------
        limit: surface Li fraction of the hold.
        tol: nodes within this distance (in x) of the limit are clamped.
        charge: True for delithiation (limit from above), False for lithiation.
        """
        new = self._surface_beyond(limit + tol if charge else limit - tol, charge)
        if len(new):
            for f in (self.c, self.c_old):
                f.x.array[new] = limit * self.c_max  # a jump of at most tol
            self._update_x()
        return self._hold(new, limit)

    def hold_overshoot(self, limit: float, tol: float, charge: bool) -> int:
        """Undo a trial step in which free surface nodes went more than ``tol`` past the limit
        and hold those nodes at the limit from the start of the step (collective).

        The CV hold is an inequality (surface x stays on its side of the limit); redoing the
        step with the violating nodes held is one active-set iteration of it. Unlike locating
        each node's crossing in time, the step length is kept: the hold spreads over the
        surface node by node, and located crossings would cut every step to the time between
        two of them. Returns how many nodes were newly held.

        Parameters
        ----------
        limit: surface Li fraction of the hold.
        tol: nodes further than this (in x) past the limit are held.
        charge: True for delithiation (limit from above), False for lithiation.
        """
        new = self._surface_beyond(limit - tol if charge else limit + tol, charge)
        self.reject()
        return self._hold(new, limit)

    def _surface_beyond(self, bound: float, charge: bool) -> np.ndarray:
        """Free outer-surface DOFs (local, with ghosts) whose Li fraction is past ``bound``."""
        x = self.x.x.array
        outer = self._outer_dofs_all
        reached = outer[(x[outer] <= bound) if charge else (x[outer] >= bound)]
        return np.setdiff1d(reached, self.clamped)

    def _hold(self, new: np.ndarray, limit: float) -> int:
        """Add ``new`` DOFs to the surface held at ``limit`` (Dirichlet, no current there);
        return the global number of newly held DOFs (collective)."""
        count = self.comm.allreduce(int(np.sum(new < self.V.dofmap.index_map.size_local)),
                                    op=MPI.SUM)
        if count == 0:
            return 0
        self.clamped = np.union1d(self.clamped, new).astype(np.int32)
        self.flux.x.array[self.clamped] = 0.0
        value = dolfinx.fem.Constant(self.mesh, limit * self.c_max)
        self.bcs_c = [dolfinx.fem.dirichletbc(value, self.clamped, self.V)]
        self._transport_bcs_changed(limit * self.c_max)
        self.phase = "hold"
        return count

    def _transport_bcs_changed(self, value: float) -> None:
        """Reassemble the transport operator with new Dirichlet conditions (all at ``value``,
        mol/m^3); keep their global DOFs for the interface conductances (collective)."""
        self._assembled_dt = None
        imap = self.V.dofmap.index_map
        local = np.concatenate([bc.dof_indices()[0] for bc in self.bcs_c]) if self.bcs_c \
            else np.zeros(0, dtype=np.int32)
        glob = imap.local_to_global(local.astype(np.int32))
        self._bc_global = np.unique(np.concatenate(self.comm.allgather(glob))).astype(np.int64)
        self._bc_value = value

    def _share_current_with_cracks(self) -> None:
        """Galvanostatic current shared by the outer surface and the crack faces open to the
        electrolyte: the same current density everywhere, the same total current."""
        exposed = self.cracks.exposed_area if self.cracks is not None else 0.0
        j = self.flux_value * self.outer_area / (self.outer_area + exposed)
        self.flux.x.array[:] = j
        self.flux.x.array[self.clamped] = 0.0
        self.crack_flux = j if exposed > 0 else 0.0

    def surface_range(self, free_only: bool = False) -> tuple[float, float]:
        """Smallest and largest Li fraction on the outer surface (collective).

        Parameters
        ----------
        free_only: only over surface nodes not clamped at the limit.
        """
        dofs = self._outer_dofs
        if free_only and len(self.clamped):
            dofs = np.setdiff1d(dofs, self.clamped)
        xs = self.x.x.array[dofs]
        return -self._max_over(-xs), self._max_over(xs)

    def _gb_geometry(self) -> None:
        """Owned grain-boundary facets: unit normals and the two adjacent cells."""
        mesh = self.mesh
        mesh.topology.create_connectivity(2, 3)
        ft = self.domain.facet_tags
        facets = ft.indices[ft.values >= GB_OFFSET]
        facets = facets[facets < mesh.topology.index_map(2).size_local]
        f2c = mesh.topology.connectivity(2, 3)
        cells = np.array([f2c.links(f) for f in facets], dtype=np.int32).reshape(-1, 2)
        xyz = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 2, facets)] \
            if len(facets) else np.zeros((0, 3, 3))
        normal = np.cross(xyz[:, 1] - xyz[:, 0], xyz[:, 2] - xyz[:, 0]) if len(facets) \
            else np.zeros((0, 3))
        norm = np.linalg.norm(normal, axis=1)[:, None] if len(facets) else np.ones((0, 1))
        self._gb_cells, self._gb_normals = cells, normal / norm

    def _integrate(self, expr) -> float:
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(dolfinx.fem.form(expr)),
                                   op=MPI.SUM)

    # --- stepping --------------------------------------------------------------------------

    def _update_x(self) -> None:
        self.x.x.array[:] = self.c.x.array / self.c_max
        ea, ec = chemical_strain_components(self.cfg.materials.grain.chemical_strain,
                                            self.x.x.array)
        self.eps_a.x.array[:] = ea
        self.eps_c.x.array[:] = ec

    def solve_diffusion(self, dt: float) -> int:
        """Backward-Euler Li transport step of length dt (s); returns Krylov iterations."""
        t0 = time.perf_counter()
        cracks = self.cracks
        if self._assembled_dt != dt or (cracks is not None and cracks.transport_changed):
            self.dt.value = dt
            self.A_c.zeroEntries()
            # Dirichlet rows get a diagonal of the size of the others (a nodal volume / dt), not
            # 1: a 1e18-fold outlier breaks the AMG smoothers' eigenvalue estimates
            self._bc_diag = self.volume / self.V.dofmap.index_map.size_global / dt
            dolfinx.fem.petsc.assemble_matrix(self.A_c, self.a_c, bcs=self.bcs_c,
                                              diag=self._bc_diag)
            self.A_c.assemble()
            self.ksp_c.set_operator(self.A_c if cracks is None else
                                    cracks.transport_operator(self.A_c, self._bc_global))
            self._assembled_dt = dt
        with self.b_c.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b_c, self.L_c)
        if self.bcs_c:
            dolfinx.fem.petsc.apply_lifting(self.b_c, [self.a_c], [self.bcs_c])
        self.b_c.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        if cracks is not None:
            cracks.add_transport_rhs(self.b_c, self._bc_global, self._bc_value, self.crack_flux)
        if self.bcs_c:
            dolfinx.fem.petsc.set_bc(self.b_c, self.bcs_c, alpha=self._bc_diag)
        t1 = time.perf_counter()
        its = self.ksp_c.solve(self.b_c, self.c.x.petsc_vec)
        self.c.x.scatter_forward()
        self.timings["assembly"] += t1 - t0
        self.timings["solve"] += time.perf_counter() - t1
        self._update_x()
        return its

    def solve_elasticity(self) -> int:
        """Quasi-static equilibrium for the current chemical strain; returns Krylov iterations."""
        t0 = time.perf_counter()
        with self.b_u.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b_u, self.L_u)
        self.b_u.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        # The load is self-equilibrated; remove round-off so CG sees a consistent system.
        self.nullspace.remove(self.b_u)
        t1 = time.perf_counter()
        if self.equilibrium is not None:
            info = self.equilibrium.solve(self.b_u, self.u, self.last.get("dt", 0.0))
            its = info["krylov_its"]
            self.last["newton_its"] = info["newton_its"]
        else:
            its = self.ksp_u.solve(self.b_u, self.u.x.petsc_vec)
            # Fix the rigid-body part: the displacement orthogonal to all rigid modes.
            self.nullspace.remove(self.u.x.petsc_vec)
            self.u.x.scatter_forward()
        t2 = time.perf_counter()
        self.stress.interpolate(self._stress_expr)
        self.timings["assembly"] += (t1 - t0) + (time.perf_counter() - t2)
        self.timings["solve"] += t2 - t1
        if self.cfg.loading.stress_assisted:
            self._update_nodal_hydrostatic()
        return its

    def _update_nodal_hydrostatic(self) -> None:
        """Nodal hydrostatic stress (Pa): lumped L2 projection of the cell values onto P1."""
        if not hasattr(self, "_sh_cell"):
            v = ufl.TestFunction(self.V)
            self._sh_cell = dolfinx.fem.Function(self.Q0)
            self._lumped = dolfinx.fem.petsc.assemble_vector(dolfinx.fem.form(v * ufl.dx))
            self._lumped.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
            self._sh_form = dolfinx.fem.form(self._sh_cell * v * ufl.dx)
            self._sh_vec = dolfinx.fem.petsc.create_vector(self.V)
        sig = self.stress.x.array.reshape(-1, 9)
        self._sh_cell.x.array[:] = (sig[:, 0] + sig[:, 4] + sig[:, 8]) / 3.0
        with self._sh_vec.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self._sh_vec, self._sh_form)
        self._sh_vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.sigma_h.x.petsc_vec.pointwiseDivide(self._sh_vec, self._lumped)
        self.sigma_h.x.scatter_forward()

    def step(self, dt: float, mechanics: bool = True) -> dict[str, Any]:
        """One staggered step of length dt (s): c, then u. Call accept() or reject() after.

        The step's ``dx_max`` is the largest change of the Li fraction in the grains, where it
        drives the chemical strain. The shell's transport is linear and strain-free: a shell
        patch cut off from the core by a debonded interface drains linearly in time (exact
        under backward Euler) until its surface is held, and counted here it set 0.2 s steps
        for the whole particle once the shell/core interface cracked (measured on the
        default particle at 0.8 um interface elements).

        Parameters
        ----------
        dt: step length in s.
        mechanics: also solve for the displacement (False: transport only).
        """
        its_c = self.solve_diffusion(dt)
        dofs = self._grain_dofs
        dx_local = np.max(np.abs(self.c.x.array[dofs] - self.c_old.x.array[dofs]),
                          initial=0.0) / self.c_max
        # the step's record exists before the mechanics, which reads dt and adds Newton counts
        self.last = {"ksp_its_diffusion": its_c, "ksp_its_elasticity": 0,
                     "dx_max": self.comm.allreduce(dx_local, op=MPI.MAX), "dt": dt}
        if mechanics:
            self.last["ksp_its_elasticity"] = self.solve_elasticity()
        return self.last

    def accept(self) -> None:
        """Commit the last step: it becomes the previous state of the next one."""
        self.t += self.last["dt"]
        self.c_old.x.array[:] = self.c.x.array
        self.u_old.x.array[:] = self.u.x.array
        if self.cracks is not None and self.cracks.accept():
            self._share_current_with_cracks()

    def damage_growth(self) -> float:
        """Largest interface damage increase of the trial step over the committed state."""
        return self.cracks.interfaces.damage_growth() if self.cracks is not None else 0.0

    def reject(self) -> None:
        """Undo the last step (after a failure or a too-large change)."""
        self.c.x.array[:] = self.c_old.x.array
        self.u.x.array[:] = self.u_old.x.array
        self._update_x()
        if self.cracks is not None:
            self.cracks.reject()

    # --- results ---------------------------------------------------------------------------

    def mean_x(self) -> float:
        """Volume-averaged Li fraction."""
        return self.total_li() / (self.c_max * self.volume)

    def total_li(self) -> float:
        """Total Li in the particle (mol)."""
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(self._total_li), op=MPI.SUM)

    def _max_over(self, values: np.ndarray) -> float:
        return self.comm.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX)

    def diagnostics(self) -> dict[str, float]:
        """Time-series quantities with units in the keys (collective, same on all ranks)."""
        comm = self.comm
        n_cells = self.mesh.topology.index_map(3).size_local
        sig = self.stress.x.array.reshape(-1, 3, 3)[:n_cells]
        principal = np.linalg.eigvalsh(0.5 * (sig + sig.transpose(0, 2, 1)))[:, -1]
        region = self.cell_region[:n_cells]
        dev = sig - np.einsum("n,ij->nij", np.trace(sig, axis1=1, axis2=2) / 3.0, np.eye(3))
        vm = np.sqrt(1.5 * np.einsum("nij,nij->n", dev, dev))
        xs = self.x.x.array[self._outer_dofs]
        gb_sig = 0.5 * (self.stress.x.array.reshape(-1, 3, 3)[self._gb_cells[:, 0]]
                        + self.stress.x.array.reshape(-1, 3, 3)[self._gb_cells[:, 1]]) \
            if len(self._gb_cells) else np.zeros((0, 3, 3))
        tn = np.einsum("ni,nij,nj->n", self._gb_normals, gb_sig, self._gb_normals)
        surf = comm.allreduce(dolfinx.fem.assemble_scalar(self._surface_x), op=MPI.SUM)
        total = self.total_li()
        return {
            "time [s]": self.t,
            "mean_x [-]": total / (self.c_max * self.volume),
            "surface_x_mean [-]": surf / self.outer_area,
            "surface_x_min [-]": -self._max_over(-xs),
            "surface_x_max [-]": self._max_over(xs),
            "under_shell_x_mean [-]": (comm.allreduce(dolfinx.fem.assemble_scalar(
                self._interface_x), op=MPI.SUM) / self._interface_area
                if self._interface_area > 0 else surf / self.outer_area),
            "total_li [mol]": total,
            "max_principal_stress_grains [Pa]": self._max_over(principal[region != SHELL]),
            "max_principal_stress_shell [Pa]": self._max_over(principal[region == SHELL]),
            "von_mises_max [Pa]": self._max_over(vm),
            "max_gb_normal_traction [Pa]": self._max_over(tn),
            "min_gb_normal_traction [Pa]": -self._max_over(-tn),
            **(self.cracks.diagnostics() if self.cracks is not None else {}),
        }

    def output_fields(self) -> dict[str, dolfinx.fem.Function]:
        """Fields for ParaView: c, x, u (P1) and stress, von Mises, hydrostatic, grain id (DG0)."""
        if not hasattr(self, "_vm"):
            self._vm = dolfinx.fem.Function(self.Q0, name="von_mises")
            self._sh = dolfinx.fem.Function(self.Q0, name="hydrostatic_stress")
        sig = self.stress.x.array.reshape(-1, 3, 3)
        tr = np.trace(sig, axis1=1, axis2=2)
        dev = sig - np.einsum("n,ij->nij", tr / 3.0, np.eye(3))
        self._vm.x.array[:] = np.sqrt(1.5 * np.einsum("nij,nij->n", dev, dev))
        self._sh.x.array[:] = tr / 3.0
        return {"c": self.c, "x": self.x, "u": self.u, "stress": self.stress,
                "von_mises": self._vm, "hydrostatic_stress": self._sh, "grain_id": self.grain_id}

    def checkpoint_fields(self) -> dict[str, dolfinx.fem.Function]:
        """Fields that define the state (for checkpoint/restart)."""
        return {"c": self.c, "u": self.u}

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        """State kept outside the fields (interface history), identical on every rank."""
        return self.cracks.interfaces.state() if self.cracks is not None else {}

    def restore(self, t: float, arrays: dict[str, np.ndarray] | None = None) -> None:
        """Adopt restored c and u (from a checkpoint) at time t (s) as the committed state,
        with the interface history in ``arrays``."""
        self.t = t
        self.c_old.x.array[:] = self.c.x.array
        self.u_old.x.array[:] = self.u.x.array
        self._update_x()
        self.stress.interpolate(self._stress_expr)
        if self.cracks is not None:
            self.cracks.restore(arrays or {})
            self._share_current_with_cracks()

    def unknowns(self) -> dict[str, int]:
        """Global numbers of unknowns of the two sub-problems."""
        im_v, im_w = self.V.dofmap.index_map, self.W.dofmap.index_map
        return {"diffusion": im_v.size_global * self.V.dofmap.index_map_bs,
                "elasticity": im_w.size_global * self.W.dofmap.index_map_bs}

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.ksp_c.destroy()
        self.ksp_u.destroy()
        if self.cracks is not None:
            self.equilibrium.destroy()
            self.cracks.destroy()
        for obj in (self.A_c, self.A_u, self.b_c, self.b_u):
            obj.destroy()
