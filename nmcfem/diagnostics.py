"""What a particle reports: the time-series row of the current state (Li, surface, stresses,
grain-boundary tractions, cracks) and the fields written for ParaView.

Every key carries its unit and has one meaning; every value is the same on every rank.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

import dolfinx
import ufl

from nmcfem.geometry import GB_OFFSET, OUTER_SURFACE, SHELL, SHELL_CORE, tet_volumes
from nmcfem.materials import MaterialFields
from nmcfem.mechanics import MechanicsProblem
from nmcfem.transport import TransportProblem

#: SI unit of every output field (:meth:`Diagnostics.output_fields`)
FIELD_UNITS = {"c": "mol/m^3", "x": "-", "u": "m", "stress": "Pa", "von_mises": "Pa",
               "hydrostatic_stress": "Pa", "grain_id": "-", "passivation_thickness": "m"}


#: volume fraction of the grains above the reported stress percentile: the pointwise maximum sits
#: at re-entrant grain corners, where the elastic stress is singular and grows with refinement
STRESS_PERCENTILE_FRACTION = 0.01


def volume_quantile(values: np.ndarray, volumes: np.ndarray, fraction: float) -> float:
    """The value exceeded in ``fraction`` of the total volume of the cells (same units as
    ``values``; ``volumes`` in m^3, one per value); NaN where there are none."""
    if not len(values):
        return float("nan")
    order = np.lexsort((volumes, values))  # ties broken by volume: the same on any ranks
    below = np.cumsum(volumes[order])
    k = int(np.searchsorted(below, (1.0 - fraction) * below[-1]))
    return float(values[order][min(k, len(values) - 1)])


def _von_mises(sig: np.ndarray) -> np.ndarray:
    """(n,) von Mises stress of (n,3,3) stresses (Pa)."""
    dev = sig - np.einsum("n,ij->nij", np.trace(sig, axis1=1, axis2=2) / 3.0, np.eye(3))
    return np.sqrt(1.5 * np.einsum("nij,nij->n", dev, dev))


class Diagnostics:
    """Series rows and output fields of a particle's transport, mechanics and cracks.

    Parameters
    ----------
    domain: ParticleDomain (facet tags of the grain boundaries and the shell/core interface).
    materials, transport, mechanics: the particle's sub-problems.
    cracks: ParticleCracks of a cut mesh, or None.
    """

    def __init__(self, domain: Any, materials: MaterialFields, transport: TransportProblem,
                 mechanics: MechanicsProblem, cracks: Any = None):
        self.materials, self.transport, self.mechanics, self.cracks = \
            materials, transport, mechanics, cracks
        mesh = self.mesh = domain.mesh
        self.comm = mesh.comm
        ds = transport.ds
        self._surface_x = dolfinx.fem.form(transport.x * ds(OUTER_SURFACE))
        # Li fraction just under the shell: the core side of the shell/core interface
        interfaces = getattr(domain, "interfaces", None)
        if interfaces is not None and np.any(interfaces.facet_tag == SHELL_CORE):
            # the open shell/core interface: its core-side faces are boundary facets
            under, x_under = ds(SHELL_CORE), transport.x
        else:
            dS = ufl.Measure("dS", domain=mesh, subdomain_data=domain.facet_tags)
            under, x_under = dS(SHELL_CORE), ufl.avg(transport.x)
        one = dolfinx.fem.Constant(mesh, 1.0)
        self._interface_area = self._sum(dolfinx.fem.assemble_scalar(dolfinx.fem.form(
            one * under)))
        self._interface_x = dolfinx.fem.form(x_under * under)
        self._gb_cells, self._gb_normals = self._bonded_grain_boundaries(domain)
        self.n_gb_facets = self.comm.allreduce(len(self._gb_cells), op=MPI.SUM)
        # the grains' cell volumes of all ranks, in rank order: the stress quantile of every
        # row gathers the cell stresses in the same order
        n_cells = mesh.topology.index_map(3).size_local
        self._grains = materials.cell_region[:n_cells] != SHELL
        volumes = tet_volumes(mesh.geometry.x, mesh.geometry.dofmaps[0][:n_cells])
        self._grain_volumes = np.concatenate(self.comm.allgather(volumes[self._grains]))
        Q0 = materials.grain_id.function_space
        self._vm = dolfinx.fem.Function(Q0, name="von_mises")
        self._sh = dolfinx.fem.Function(Q0, name="hydrostatic_stress")

    def _bonded_grain_boundaries(self, domain: Any) -> tuple[np.ndarray, np.ndarray]:
        """Owned grain-boundary facets of the mesh (bonded, not cut open): the two adjacent
        cells and the unit normal of each."""
        mesh = self.mesh
        mesh.topology.create_connectivity(2, 3)
        ft = domain.facet_tags
        facets = ft.indices[ft.values >= GB_OFFSET]
        facets = facets[facets < mesh.topology.index_map(2).size_local]
        if not len(facets):
            return np.zeros((0, 2), dtype=np.int32), np.zeros((0, 3))
        f2c = mesh.topology.connectivity(2, 3)
        cells = np.array([f2c.links(f) for f in facets], dtype=np.int32).reshape(-1, 2)
        xyz = mesh.geometry.x[dolfinx.mesh.entities_to_geometry(mesh, 2, facets)]
        normal = np.cross(xyz[:, 1] - xyz[:, 0], xyz[:, 2] - xyz[:, 0])
        return cells, normal / np.linalg.norm(normal, axis=1)[:, None]

    def _sum(self, value: float) -> float:
        return self.comm.allreduce(value, op=MPI.SUM)

    def _max(self, values: np.ndarray) -> float:
        return self.comm.allreduce(float(np.max(values, initial=-np.inf)), op=MPI.MAX)

    def gb_normal_traction(self) -> tuple[float, float]:
        """Largest and smallest normal traction across grain boundaries (Pa): from the
        cohesive law where they are cohesive, else from the bulk stress of the cells on both
        sides; NaN for a particle without grain boundaries (collective)."""
        tn = self.cracks.gb_normal_tractions() if self.cracks is not None else None
        if tn is not None:  # identical on every rank
            return float(np.max(tn, initial=0.0)), float(np.min(tn, initial=0.0))
        if self.n_gb_facets == 0:
            return float("nan"), float("nan")
        sig = self.mechanics.stress.x.array.reshape(-1, 3, 3)
        gb_sig = 0.5 * (sig[self._gb_cells[:, 0]] + sig[self._gb_cells[:, 1]])
        n = self._gb_normals
        tn = np.einsum("ni,nij,nj->n", n, gb_sig, n)
        return self._max(tn), -self._max(-tn)

    def energies(self) -> dict[str, float]:
        """Energy bookkeeping of the committed state (J; collective): the work of the chemical
        strain, the bulk's elastic energy, the interfaces' stored energy and dissipation
        D(kappa), and the balance residual W_ch - E_bulk - E_interface - D, which is zero up to
        solver tolerances while cracks grow stably and grows by the energy an unstable crack
        advance (a snap) releases beyond what the interfaces dissipate."""
        w_ch = self.mechanics.chemical_work
        bulk = self.mechanics.elastic_energy()
        stored = dissipated = 0.0
        if self.cracks is not None:
            stats = self.cracks.energies()
            stored = stats["interface_stored_energy [J]"]
            dissipated = stats["dissipated_energy [J]"]
        return {"chemical_work [J]": w_ch, "elastic_energy_bulk [J]": bulk,
                "interface_stored_energy [J]": stored, "dissipated_energy [J]": dissipated,
                "energy_balance_residual [J]": w_ch - bulk - stored - dissipated}

    def row(self, t: float, energies: dict[str, float] | None = None) -> dict[str, float]:
        """Time-series quantities at time t (s), units in the keys (collective); ``energies``:
        :meth:`energies` of this state where the caller has them already."""
        tr = self.transport
        n_cells = self.mesh.topology.index_map(3).size_local
        sig = self.mechanics.stress.x.array.reshape(-1, 3, 3)[:n_cells]
        principal = np.linalg.eigvalsh(0.5 * (sig + sig.transpose(0, 2, 1)))[:, -1]
        xs = tr.x.x.array[tr.outer_dofs]
        surf = self._sum(dolfinx.fem.assemble_scalar(self._surface_x))
        total = tr.total_li()
        tn_max, tn_min = self.gb_normal_traction()
        under = (self._sum(dolfinx.fem.assemble_scalar(self._interface_x)) / self._interface_area
                 if self._interface_area > 0 else surf / tr.outer_area)
        return {
            "time [s]": t,
            "mean_x [-]": total / (tr.c_max * tr.volume),
            "surface_x_mean [-]": surf / tr.outer_area,
            "surface_x_min [-]": -self._max(-xs),
            "surface_x_max [-]": self._max(xs),
            "under_shell_x_mean [-]": under,
            "total_li [mol]": total,
            "max_principal_stress_grains [Pa]": self._max(principal[self._grains]),
            "p99_principal_stress_grains [Pa]": volume_quantile(
                np.concatenate(self.comm.allgather(principal[self._grains])),
                self._grain_volumes, STRESS_PERCENTILE_FRACTION),
            "max_principal_stress_shell [Pa]": self._max(principal[~self._grains]),
            "von_mises_max [Pa]": self._max(_von_mises(sig)),
            "max_gb_normal_traction [Pa]": tn_max,
            "min_gb_normal_traction [Pa]": tn_min,
            **(self.cracks.diagnostics() if self.cracks is not None else {}),
            **(energies if energies is not None else self.energies()),
        }

    def output_fields(self) -> dict[str, dolfinx.fem.Function]:
        """Fields for ParaView: c, x, u (P1) and stress, von Mises, hydrostatic, grain id (DG0);
        the passivation thickness (P1, on the outer surface) where a layer grows."""
        sig = self.mechanics.stress.x.array.reshape(-1, 3, 3)
        self._vm.x.array[:] = _von_mises(sig)
        self._sh.x.array[:] = np.trace(sig, axis1=1, axis2=2) / 3.0
        fields = {"c": self.transport.c, "x": self.transport.x, "u": self.mechanics.u,
                  "stress": self.mechanics.stress, "von_mises": self._vm,
                  "hydrostatic_stress": self._sh, "grain_id": self.materials.grain_id}
        if self.transport.film is not None:
            fields["passivation_thickness"] = self.transport.film
        return fields
