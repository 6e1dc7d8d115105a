"""A passivation layer that grows on the particle's outer surface during cycling.

The thickness h (m) lives on the outer-surface vertices (a P1 field, zero elsewhere, so that
checkpoints keep it rank-independently). After every accepted step it grows where the surface
is charged high: h dh/dt = k(T) while U(x_s) >= U_on, i.e. h^2 grows by 2 k dt — exact for
the parabolic law whatever the step. The layer grows on top of the meshed shell. The active
material it converts is booked as lost sites: c_max per unit volume of layer (mol), so the
capacity lost is F c_max (int h dA + the layers on wetted crack faces); the transport keeps
its sites (the lost capacity is booked beside it, not removed from the Li balance). Crack faces
open to the electrolyte grow their own layer by the same law (:mod:`nmcfem.cohesive.
wetted_faces`).
"""

from __future__ import annotations

import numpy as np
from mpi4py import MPI

import dolfinx

from nmcfem.config import Config
from nmcfem.physics.electrochemistry import FARADAY, GAS_CONSTANT
from nmcfem.protocol import COULOMB_PER_MAH


class PassivationLayer:
    """Thickness of the grown layer on the outer surface and its parabolic growth.

    Parameters
    ----------
    cfg: configuration (``passivation``, ``loading.temperature``, the grain's c_max).
    transport: the Li transport problem (surface DOFs, Li fraction, OCP).
    faces: the wetted crack faces (:class:`nmcfem.cohesive.wetted_faces.WettedCrackFaces`),
        or None without cracks.
    """

    def __init__(self, cfg: Config, transport, faces=None):
        pa = cfg.passivation
        self.cfg, self.transport, self.faces = cfg, transport, faces
        T = cfg.loading.temperature
        self.k = pa.rate_constant * np.exp(-pa.activation_energy / GAS_CONSTANT
                                           * (1.0 / T - 1.0 / pa.reference_temperature))
        self.h = transport.film  # the transport owns it: its reaction reads it
        self.dofs = transport.outer_dofs_all
        self.h.x.array[self.dofs] = pa.initial_thickness
        self._area_h = dolfinx.fem.form(self.h * transport.ds_outer)

    def grow(self, dt: float) -> None:
        """Grow the layer over an accepted step of dt (s), where the surface's open-circuit
        potential is at or above the onset at the end of the step."""
        tr = self.transport
        x = tr.x.x.array[self.dofs]
        above = tr.reaction.kinetics.ocp(x) >= self.cfg.passivation.onset_voltage
        h = self.h.x.array[self.dofs]
        self.h.x.array[self.dofs] = np.where(above, np.sqrt(h * h + 2.0 * self.k * dt), h)
        if self.faces is not None:
            self.faces.grow(tr.c.x.petsc_vec, self.k, dt, self.cfg.passivation.onset_voltage)

    def row(self) -> dict[str, float]:
        """Thickness statistics and the active material converted (collective)."""
        tr = self.transport
        comm = tr.comm
        integral = comm.allreduce(dolfinx.fem.assemble_scalar(self._area_h), op=MPI.SUM)
        owned = self.dofs[self.dofs < tr.V.dofmap.index_map.size_local]
        h_max = comm.allreduce(float(np.max(self.h.x.array[owned], initial=0.0)), op=MPI.MAX)
        faces = self.faces.row() if self.faces is not None else {}
        volume = integral + (self.faces.layer_volume() if self.faces is not None else 0.0)
        lost = tr.c_max * volume  # mol of sites in the converted volume
        return {"passivation_thickness_mean [m]": integral / tr.outer_area,
                "passivation_thickness_max [m]": h_max, **faces,
                "active_material_lost [mol]": lost,
                "capacity_lost [mAh]": lost * FARADAY / COULOMB_PER_MAH}
