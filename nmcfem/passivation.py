"""A passivation layer that grows on the particle's outer surface during cycling.

The thickness h (m) lives on the outer-surface vertices (a P1 field, zero elsewhere, so that
checkpoints keep it rank-independently). After every accepted step it grows where the surface
is charged high: h dh/dt = k(T) while U(x_s) >= U_on, i.e. h^2 grows by 2 k t_on, t_on the
part of the step spent above the onset (:func:`parabolic_growth`), with the potential linear in
time over the step. The layer grows on top of the meshed shell. The active
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


def parabolic_growth(h: np.ndarray, rate: float, dt: float, u_start: np.ndarray,
                     u_end: np.ndarray, onset: float) -> np.ndarray:
    """Thickness (m) after a step of the parabolic law h dh/dt = k while U >= U_on.

    h^2 grows by 2 k t_on, t_on the part of the step at or above the onset with the open-circuit
    potential linear in time over the step: all of it where U is above the onset at both ends,
    none where below at both, the part beyond the crossing where the step crosses it. Counting
    whole steps by their end state instead made the layer of a 46-cycle run depend on the step
    size: the 1C charge crosses the onset inside steps of up to 300 s, and the first cycle of
    configs/mutual_modulation.yaml spends ~1130 s above it.

    Parameters
    ----------
    h: thickness at the start of the step (m); rate: k (m^2/s); dt: step length (s);
    u_start, u_end: open-circuit potential at the start and end of the step (V), shaped as h;
    onset: U_on (V).
    """
    above_start, above_end = u_start >= onset, u_end >= onset
    span = np.where(u_end != u_start, u_end - u_start, 1.0)
    crossing = np.clip((u_end - onset) / span, 0.0, 1.0)  # fraction after entering
    fraction = np.where(above_start & above_end, 1.0,
                        np.where(above_end, crossing,
                                 np.where(above_start, 1.0 - crossing, 0.0)))
    return np.sqrt(h * h + 2.0 * rate * dt * fraction)


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
        """Grow the layer over an accepted step of dt (s), for the time the surface's
        open-circuit potential spent at or above the onset (before the transport commits the
        step: its previous state is the step's start). A held surface has its held value from
        the step's start on (a Dirichlet condition jumps there)."""
        tr = self.transport
        ocp, onset = tr.reaction.kinetics.ocp, self.cfg.passivation.onset_voltage
        start = tr.c_old.x.array.copy()
        start[tr.held] = tr.c.x.array[tr.held]
        u_start = ocp(start[self.dofs] / tr.c_max)
        u_end = ocp(tr.x.x.array[self.dofs])
        self.h.x.array[self.dofs] = parabolic_growth(self.h.x.array[self.dofs], self.k, dt,
                                                     u_start, u_end, onset)
        if self.faces is not None:
            self.faces.grow(tr.c_old.x.petsc_vec, tr.c.x.petsc_vec, self.k, dt, onset)

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
