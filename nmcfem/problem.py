"""The coupled chemo-mechanics of a particle, composed of one problem per physics.

:class:`ChemoMechanicsProblem` wires the material fields, Li transport, mechanics (linear, or
with cohesive cracks), the loading protocol and the diagnostics together and offers the time
loop a staggered step: c, then u, then accept or reject. It owns no physics of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np

import dolfinx

from nmcfem.cohesive.particle import ParticleCracks
from nmcfem.cohesive.wetted_faces import WettedCrackFaces
from nmcfem.config import Config
from nmcfem.diagnostics import Diagnostics
from nmcfem.experiment_protocol import ExperimentProtocol
from nmcfem.materials import MaterialFields
from nmcfem.mechanics import MechanicsProblem
from nmcfem.passivation import PassivationLayer
from nmcfem.protocol import ChargeProtocol
from nmcfem.solvers import linear_path
from nmcfem.transport import TransportProblem

#: a cracking step whose energy balance residual grows by more than this fraction of the
#: energy it dissipates is an unstable crack advance (a snap)
SNAP_FRACTION = 0.01
#: ... provided that growth also exceeds this fraction of the energy dissipated so far: below it
#: the residual's growth is the equilibrium tolerance's round-off (steps of the constant-voltage
#: hold that dissipate 1e-4 of the total were flagged at solver.interface.rtol = 1e-4)
SNAP_FLOOR = 1e-4


class ChemoMechanicsProblem:
    """Li transport and chemo-elasticity on a particle, advanced by staggered steps.

    Parameters
    ----------
    domain: ParticleDomain (mesh, tags, radius in m; ``interfaces`` when cut for cracks).
    cfg: resolved configuration.
    rotations: (N,3,3) grain rotation matrices (columns a, b, c in the lab frame).
    """

    def __init__(self, domain: Any, cfg: Config, rotations: np.ndarray):
        self.domain, self.cfg = domain, cfg
        self.comm = domain.mesh.comm
        self.t = 0.0
        self.materials = MaterialFields(domain, cfg, rotations)
        V = dolfinx.fem.functionspace(domain.mesh, ("Lagrange", 1))
        W = dolfinx.fem.functionspace(domain.mesh, ("Lagrange", 1, (3,)))
        # cohesive interfaces exist where the mesh was cut open along them
        self.cracks = ParticleCracks(W, V, domain, cfg) \
            if getattr(domain, "interfaces", None) is not None else None
        coupling = self.cracks.transport if self.cracks is not None else None
        # the stress-assisted flux reads the hydrostatic stress that the mechanics writes
        sigma_h = dolfinx.fem.Function(V, name="sigma_h_nodal") \
            if cfg.loading.stress_assisted else None
        self.linear = linear_path(cfg.solver, W.dofmap.index_map.size_global * 3)
        self.transport = TransportProblem(domain, cfg, self.materials, V, sigma_h, coupling,
                                          self.linear)
        self.mechanics = MechanicsProblem(domain, cfg, self.materials, W, self.transport.x,
                                          self.cracks, sigma_h, self.linear)
        if cfg.experiment.steps is None:
            self.protocol = ChargeProtocol(cfg, self.transport)
        else:
            self.protocol = ExperimentProtocol(cfg, self.transport, self._exposed_area,
                                               self._cracked_area)
        if self.cracks is not None and self.cracks.track_wetted:
            pa = cfg.passivation
            self.cracks.transport.faces = WettedCrackFaces(
                self.cracks.transport, self.transport.c_max, self.transport.reaction.kinetics,
                cfg.materials.shell.D_L if pa.enabled and pa.throttles_transport else np.inf,
                reacts=cfg.cohesive.open_crack_reacts and self.transport.butler_volmer)
        self.passivation = PassivationLayer(
            cfg, self.transport, self.cracks.transport.faces if self.cracks is not None else None
        ) if cfg.passivation.enabled else None
        self.diagnostics = Diagnostics(domain, self.materials, self.transport, self.mechanics,
                                       self.cracks)
        self.last: dict[str, Any] = {}
        # energies of the committed state, for the snap flag of the next step
        self._energies = self.diagnostics.energies() if self.cracks is not None else {}

    def _exposed_area(self) -> float:
        """Crack-face area that shares the current (m^2)."""
        return self.cracks.reacting_area if self.cracks is not None else 0.0

    def _cracked_area(self) -> float:
        """Fully cracked interface area (m^2)."""
        if self.cracks is None:
            return 0.0
        return self.cracks.diagnostics()["cracked_area_full [m^2]"]

    # --- the step of the time loop ---------------------------------------------------------

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
        its_c = self.transport.solve(dt)
        # the step's record exists before the mechanics, which reads dt and adds Newton counts
        self.last = {"ksp_its_diffusion": its_c, "ksp_its_elasticity": 0,
                     "dx_max": self.transport.dx_max(), "dt": dt,
                     "current_change": self.protocol.current_change()}
        if mechanics:
            self.solve_mechanics()
        return self.last

    def solve_mechanics(self) -> int:
        """Equilibrium of the trial step's Li field; returns (and records) Krylov iterations."""
        self.last.update(self.mechanics.solve(self.last.get("dt", 0.0)))
        return self.last["ksp_its_elasticity"]

    def accept(self) -> None:
        """Commit the last step: it becomes the previous state of the next one. A step whose
        energy balance residual grew by more than SNAP_FRACTION of the energy it dissipated (and
        by more than SNAP_FLOOR of all dissipation so far) released energy unstably: it is
        flagged as a snap (``last["snap"]``)."""
        self.t += self.last["dt"]
        self.protocol.accept(self.last["dt"])
        if self.passivation is not None:
            self.passivation.grow(self.last["dt"])
        self.transport.accept()
        self.mechanics.accept()
        if self.cracks is not None:
            if self.cracks.accept():
                self.transport.share_current(self.cracks.reacting_area)
            energies = self.diagnostics.energies()
            released = energies["energy_balance_residual [J]"] - self._energies[
                "energy_balance_residual [J]"]
            dissipated = energies["dissipated_energy [J]"] - self._energies["dissipated_energy [J]"]
            self.last["snap"] = bool(dissipated > 0 and released > SNAP_FRACTION * dissipated
                                     and released > SNAP_FLOOR * energies["dissipated_energy [J]"])
            self._energies = energies

    def reject(self) -> None:
        """Undo the last step (after a failure or a too-large change)."""
        self.transport.reject()
        self.mechanics.reject()
        if self.cracks is not None:
            self.cracks.reject()

    # --- state -----------------------------------------------------------------------------

    def checkpoint_fields(self) -> dict[str, dolfinx.fem.Function]:
        """Fields that define the state (for checkpoint/restart)."""
        fields = {"c": self.transport.c, "u": self.mechanics.u, "held": self.protocol.held,
                  "u_increment": self.mechanics.u_increment}
        if self.passivation is not None:
            fields["passivation_thickness"] = self.passivation.h
        return fields

    def checkpoint_arrays(self) -> dict[str, np.ndarray]:
        """State kept outside the fields (interface history), identical on every rank."""
        return self.cracks.state() if self.cracks is not None else {}

    def checkpoint_state(self) -> dict[str, Any]:
        """JSON-able state beside fields and arrays: the protocol's phase and hold start."""
        return {"protocol": self.protocol.state(),
                "chemical_work [J]": self.mechanics.chemical_work,
                "last_dt [s]": self.mechanics.last_dt}

    def restart_point(self) -> None:
        """A checkpoint of the committed state was written: the continued run forgets what its
        solvers reuse from earlier steps, so that it computes what a restart from it does."""
        self.mechanics.restart_point()

    def restore(self, t: float, arrays: dict[str, np.ndarray] | None = None,
                state: dict[str, Any] | None = None) -> None:
        """Adopt restored fields (from a checkpoint) at time t (s) as the committed state, with
        the interface history in ``arrays`` and the protocol state in ``state``."""
        self.t = t
        tr, mech = self.transport, self.mechanics
        tr.accept()
        tr.update_x()
        state = state or {}
        mech.restore(float(state.get("chemical_work [J]", 0.0)),
                     float(state.get("last_dt [s]", 0.0)))
        if state and "protocol" in state:
            self.protocol.restore(state["protocol"])
        if self.cracks is not None:
            self.cracks.restore(arrays or {})
            tr.share_current(self.cracks.reacting_area)
            self._energies = self.diagnostics.energies()

    # --- results ---------------------------------------------------------------------------

    @property
    def x(self) -> dolfinx.fem.Function:
        """Li fraction x = c / c_max (P1)."""
        return self.transport.x

    def mean_x(self) -> float:
        """Volume-averaged Li fraction."""
        return self.transport.mean_x()

    def row(self) -> dict[str, float]:
        """Time-series quantities of the committed state (collective)."""
        return {**self.diagnostics.row(self.t, self._energies or None), **self.protocol.row(),
                **(self.passivation.row() if self.passivation is not None else {})}

    @property
    def timings(self) -> dict[str, float]:
        """Wall time (s) spent in assembly and in solves over both physics, and within the
        solves of cracking steps: the whole step solves ("equilibrium") and, within them,
        interface evaluations, factorisations and Krylov iterations."""
        out = {k: self.transport.timings[k] + self.mechanics.timings[k]
               for k in ("assembly", "solve")}
        eq = self.mechanics.equilibrium
        if eq is not None:
            out.update({f"cracking: {k}": v for k, v in
                        {**eq.timings, **eq.linear.timings}.items()})
        return out

    def unknowns(self) -> dict[str, int]:
        """Global numbers of unknowns of the two sub-problems."""
        im_v, im_w = self.transport.V.dofmap.index_map, self.mechanics.W.dofmap.index_map
        return {"diffusion": im_v.size_global,
                "elasticity": im_w.size_global * self.mechanics.W.dofmap.index_map_bs}

    def destroy(self) -> None:
        """Free PETSc objects."""
        self.transport.destroy()
        self.mechanics.destroy()
        if self.cracks is not None:
            self.cracks.destroy()
