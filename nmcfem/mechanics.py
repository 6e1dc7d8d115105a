"""Quasi-static chemo-elasticity of a particle: the displacement for the current Li field, linear
(bonded grains) or with cohesive interfaces (cracks) behind one :meth:`MechanicsProblem.solve`.

The weak form lives in :mod:`nmcfem.physics.elasticity`. The particle is free: the load is
self-equilibrated, the six rigid-body modes are the operator's null space and are removed from
the solution.
"""

from __future__ import annotations

import time
from typing import Any

from mpi4py import MPI
from petsc4py import PETSc

import dolfinx
import dolfinx.fem.petsc
import ufl

from nmcfem.cohesive.step_solver import CohesiveEquilibrium
from nmcfem.config import Config
from nmcfem.crystal import chemical_strain_components
from nmcfem.materials import MaterialFields
from nmcfem.physics import elasticity
from nmcfem.solvers import LinearSolver, RigidBodyModes, solve_options


class MechanicsProblem:
    """Displacement u (m) and stress (Pa) of the particle for the Li fraction field x.

    Parameters
    ----------
    domain: ParticleDomain (mesh).
    cfg: configuration (chemical strain, ``solver``).
    materials: the elastic fields.
    W: P1 vector space of the displacement.
    x: Li fraction (P1 Function) that drives the chemical strain.
    cracks: the cohesive interfaces of a cut mesh (:class:`nmcfem.cohesive.particle.
        ParticleCracks`), or None.
    sigma_h: P1 Function that receives the nodal hydrostatic stress (Pa) after every solve,
        for the stress-assisted flux, or None.
    linear: linear-algebra path, "direct" or "iterative" (:func:`nmcfem.solvers.linear_path`).
    """

    def __init__(self, domain: Any, cfg: Config, materials: MaterialFields,
                 W: dolfinx.fem.FunctionSpace, x: dolfinx.fem.Function, cracks: Any = None,
                 sigma_h: dolfinx.fem.Function | None = None, linear: str = "iterative"):
        mesh = domain.mesh
        self.comm, self.cfg, self.x, self.cracks = mesh.comm, cfg, x, cracks
        self.timings = {"assembly": 0.0, "solve": 0.0}
        V = x.function_space
        self.W = W
        T0 = dolfinx.fem.functionspace(mesh, ("DG", 0, (3, 3)))
        self.u = dolfinx.fem.Function(self.W, name="u")
        self.u_old = dolfinx.fem.Function(self.W)
        self.eps_a = dolfinx.fem.Function(V, name="eps_a")
        self.eps_c = dolfinx.fem.Function(V, name="eps_c")
        self.eps_a_old = dolfinx.fem.Function(V)
        self.eps_c_old = dolfinx.fem.Function(V)
        self.update_strain()
        self._commit_strain()
        n, k = materials.axis, materials.k
        eps_ch = elasticity.chemical_strain(self.eps_a, self.eps_c, n, materials.active)
        eps_ch_old = elasticity.chemical_strain(self.eps_a_old, self.eps_c_old, n,
                                                materials.active)
        # energy bookkeeping: the bulk's stored energy and the chemical strain's work (J)
        self._elastic_energy = dolfinx.fem.form(
            elasticity.elastic_energy_density(self.u, n, k, eps_ch) * ufl.dx)
        self._work_increment = dolfinx.fem.form(elasticity.chemical_work_increment(
            self.u_old, eps_ch_old, self.u, eps_ch, n, k) * ufl.dx)
        self.chemical_work = 0.0  # J, since t = 0
        # the last step's displacement increment (m) and length (s): the next step starts from
        # their linear continuation (a cracking step then needs about one Newton step fewer)
        self.u_increment = dolfinx.fem.Function(self.W, name="u_increment")
        self.last_dt, self._dt = 0.0, 0.0
        self.stress = dolfinx.fem.Function(T0, name="stress")
        self._stress_expr = dolfinx.fem.Expression(
            elasticity.stress(elasticity.strain(self.u) - eps_ch, materials.axis, materials.k),
            T0.element.interpolation_points)
        u, w = ufl.TrialFunction(self.W), ufl.TestFunction(self.W)
        a_u, L_u = elasticity.equilibrium_forms(u, w, materials.axis, materials.k, eps_ch)
        self.a_u, self.L_u = dolfinx.fem.form(a_u), dolfinx.fem.form(L_u)
        t0 = time.perf_counter()
        self.K = dolfinx.fem.petsc.assemble_matrix(self.a_u)
        self.K.assemble()
        self.timings["assembly"] += time.perf_counter() - t0
        self.nullspace = RigidBodyModes(self.W)
        self.K.setNullSpace(self.nullspace.petsc)
        self.K.setNearNullSpace(self.nullspace.petsc)
        self.b = dolfinx.fem.petsc.create_vector(self.W)
        self.ksp = self.equilibrium = None
        if cracks is None:
            self.ksp = LinearSolver(self.comm, self.K,
                                    solve_options(cfg.solver, linear, "elasticity"), "elasticity")
        else:
            self.equilibrium = CohesiveEquilibrium(
                self.K, cracks.interfaces, cfg.solver.interface,
                solve_options(cfg.solver, linear, "cracking"), nullspace=self.nullspace)
        self._hydrostatic = _NodalHydrostatic(self.stress, sigma_h) if sigma_h is not None \
            else None

    def update_strain(self) -> None:
        """Chemical strain components in the crystal frame from the Li fraction x."""
        ea, ec = chemical_strain_components(self.cfg.materials.grain.chemical_strain,
                                            self.x.x.array)
        self.eps_a.x.array[:] = ea
        self.eps_c.x.array[:] = ec

    def restart_point(self) -> None:
        """A checkpoint was written: drop what the solver reuses from earlier steps, as a run
        restarted from it has nothing to reuse."""
        if self.equilibrium is not None:
            self.equilibrium.restart_point()

    def solve(self, dt: float = 0.0) -> dict[str, int]:
        """Equilibrium for the current Li field (step length dt in s, for viscous cohesive
        laws); returns Krylov (and Newton) iterations; raises SolverError."""
        t0 = time.perf_counter()
        self._dt = dt
        self.update_strain()
        with self.b.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.b, self.L_u)
        self.b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        # The load is self-equilibrated; remove round-off so CG sees a consistent system.
        self.nullspace.remove(self.b)
        t1 = time.perf_counter()
        if self.equilibrium is not None and self.last_dt > 0:
            self.u.x.array[:] = self.u_old.x.array + (dt / self.last_dt) * \
                self.u_increment.x.array
        if self.equilibrium is not None:
            res = self.equilibrium.solve(self.b, self.u, dt)
            info = {"ksp_its_elasticity": res["krylov_its"], "interface_its": res["interface_its"],
                    "newton_its": res["newton_its"], "curvature_its": res["curvature_its"],
                    "pc_setups": res["pc_setups"]}
        else:
            info = {"ksp_its_elasticity": self.ksp.solve(self.b, self.u.x.petsc_vec)}
            # Fix the rigid-body part: the displacement orthogonal to all rigid modes.
            self.nullspace.remove(self.u.x.petsc_vec)
            self.u.x.scatter_forward()
        t2 = time.perf_counter()
        self.update_stress()
        self.timings["assembly"] += (t1 - t0) + (time.perf_counter() - t2)
        self.timings["solve"] += t2 - t1
        return info

    def update_stress(self) -> None:
        """Cell stresses (and the nodal hydrostatic stress) of the current u and x."""
        self.stress.interpolate(self._stress_expr)
        if self._hydrostatic is not None:
            self._hydrostatic.update()

    def accept(self) -> None:
        """The trial displacement becomes the previous state of the next step; the chemical
        strain's work over the step is booked (collective)."""
        self.chemical_work += self.comm.allreduce(
            dolfinx.fem.assemble_scalar(self._work_increment), op=MPI.SUM)
        self.u_increment.x.array[:] = self.u.x.array - self.u_old.x.array
        self.last_dt = self._dt
        self.u_old.x.array[:] = self.u.x.array
        self._commit_strain()

    def _commit_strain(self) -> None:
        self.eps_a_old.x.array[:] = self.eps_a.x.array
        self.eps_c_old.x.array[:] = self.eps_c.x.array

    def elastic_energy(self) -> float:
        """Elastic energy stored in the bulk (J; collective)."""
        return self.comm.allreduce(dolfinx.fem.assemble_scalar(self._elastic_energy),
                                   op=MPI.SUM)

    def restore(self, chemical_work: float, last_dt: float) -> None:
        """Adopt a restored displacement, increment and Li field as the committed state, with
        the chemical work so far (J) and the length of the last step (s)."""
        self.update_strain()
        self.u_old.x.array[:] = self.u.x.array
        self._commit_strain()
        self.chemical_work, self.last_dt = chemical_work, last_dt
        self.update_stress()

    def reject(self) -> None:
        """Return to the previous displacement."""
        self.u.x.array[:] = self.u_old.x.array

    def destroy(self) -> None:
        """Free PETSc objects."""
        if self.ksp is not None:
            self.ksp.destroy()
        if self.equilibrium is not None:
            self.equilibrium.destroy()
        self.K.destroy()
        self.b.destroy()
        self.nullspace.destroy()


class _NodalHydrostatic:
    """Nodal hydrostatic stress (Pa): lumped L2 projection of the cell stresses onto P1."""

    def __init__(self, stress: dolfinx.fem.Function, target: dolfinx.fem.Function):
        V = target.function_space
        self.stress, self.target = stress, target
        v = ufl.TestFunction(V)
        Q0 = dolfinx.fem.functionspace(V.mesh, ("DG", 0))
        self.cell = dolfinx.fem.Function(Q0)
        self.lumped = dolfinx.fem.petsc.assemble_vector(dolfinx.fem.form(v * ufl.dx))
        self.lumped.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.form = dolfinx.fem.form(self.cell * v * ufl.dx)
        self.vec = dolfinx.fem.petsc.create_vector(V)

    def update(self) -> None:
        sig = self.stress.x.array.reshape(-1, 9)
        self.cell.x.array[:] = (sig[:, 0] + sig[:, 4] + sig[:, 8]) / 3.0
        with self.vec.localForm() as local:
            local.set(0.0)
        dolfinx.fem.petsc.assemble_vector(self.vec, self.form)
        self.vec.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
        self.target.x.petsc_vec.pointwiseDivide(self.vec, self.lumped)
        self.target.x.scatter_forward()
