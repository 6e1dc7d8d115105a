"""The flat one-step loading protocol (``experiment.steps: null``) and what every protocol
shares: the ledger of charge and energy passed, and the time loop's interface.

Galvanostatic (CC): a constant current density until the mean Li fraction reaches ``x_end`` — a
known time, since the current fixes d(mean x)/dt — or until the surface reaches its limit
(``surface_x_min`` on charge, ``surface_x_max`` on discharge: the analogue of a voltage
cut-off). There the run either stops (``cv_hold: false``) or holds each surface point that
reaches the limit at it (local CV, phase "hold") while the rest keeps its current, until the
mean reaches ``x_end``. Potentiostatic: a fixed surface Li fraction until ``t_end``.

A protocol offers the time loop: ``end_time()``, ``events()`` as (name, value, target,
tolerance) with the value decreasing towards the target, ``redo_for(crossed)`` (an active-set
update that redoes the trial step), ``step_done(t, hits, at_end)`` (advance; a reason string
when the protocol is over), ``progress(t)``, ``accept(dt)``, ``row()``, ``state()`` and
``restore(state)``. The protocol's state is part of every checkpoint, so a restart inside a
hold continues exactly where the run stopped.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from mpi4py import MPI

import dolfinx

from nmcfem.config import Config
from nmcfem.transport import SECONDS_PER_HOUR, TransportProblem

GALVANOSTATIC, HOLD, POTENTIOSTATIC = "galvanostatic", "hold", "potentiostatic"
#: coulombs per mAh
COULOMB_PER_MAH = 3.6


class Ledger:
    """Charge (C) and energy (J) passed through the particle's surface, positive on charge.

    Each accepted backward-Euler step adds its own current times its length, so the charge
    equals F times the Li removed to the tolerance of the solves.
    """

    def __init__(self, transport: TransportProblem):
        self.transport = transport
        self.charge = 0.0  # C
        self.energy = 0.0  # J
        self.voltage = transport.voltage  # V: of the last accepted step
        self.current = 0.0  # A: of the last accepted step

    def accept(self, dt: float) -> None:
        """Book the accepted step of length dt (s)."""
        tr = self.transport
        self.voltage, self.current = tr.voltage, tr.current
        self.charge += tr.current * dt
        self.energy += tr.voltage * tr.current * dt

    def row(self) -> dict[str, float]:
        """Electrical series quantities of the last accepted step (units in the keys)."""
        return {"voltage [V]": self.voltage, "current [A]": self.current,
                "capacity [mAh]": self.charge / COULOMB_PER_MAH,
                "energy [J]": self.energy}

    def state(self) -> dict[str, Any]:
        """JSON-able state: the ledger, the last step's voltage and current, and the solver's
        present potential (the next step's start)."""
        return {"charge [C]": self.charge, "energy [J]": self.energy,
                "voltage [V]": self.voltage, "current [A]": self.current,
                "potential [V]": self.transport.voltage}

    def restore(self, state: dict[str, Any]) -> None:
        """Adopt a checkpointed state."""
        self.charge = float(state.get("charge [C]", 0.0))
        self.energy = float(state.get("energy [J]", 0.0))
        tr = self.transport
        self.voltage = float(state.get("voltage [V]", self.voltage))
        self.current = tr.current = float(state.get("current [A]", 0.0))
        if "potential [V]" in state:
            tr.reaction.V.value = float(state["potential [V]"])
            tr.reaction.accept()


class ChargeProtocol:
    """One CC(-CV) segment or a potentiostatic surface, acting on the transport's surface.

    Parameters
    ----------
    cfg: configuration (``loading`` section).
    transport: the Li transport problem whose surface is loaded.
    """

    def __init__(self, cfg: Config, transport: TransportProblem):
        self.cfg, self.transport = cfg, transport
        self.ledger = Ledger(transport)
        ld = cfg.loading
        self.charge = ld.direction == "charge"
        self.limit = ld.surface_x_min if self.charge else ld.surface_x_max
        self.tol = ld.cutoff_tolerance
        self.hold_start: float | None = None  # s: when the surface was first held
        #: 1 on held surface nodes (a P1 field, so checkpoints store it rank-independently)
        self.held = dolfinx.fem.Function(transport.V, name="held")
        if ld.mode == POTENTIOSTATIC:
            self.phase = POTENTIOSTATIC
            self._hold(transport.outer_dofs_all, ld.surface_x)
        else:
            self.phase = GALVANOSTATIC

    # --- what the time loop asks -----------------------------------------------------------

    def end_time(self) -> float:
        """Final time (s) of the current phase: galvanostatic x_end time, or ``loading.t_end``."""
        ld = self.cfg.loading
        t_end = ld.t_end if ld.t_end is not None else float("inf")
        if self.phase == GALVANOSTATIC:
            # mean x changes at exactly c_rate/3600 per second: the flux integrates to that rate
            t_end = min(t_end, abs(ld.x_initial - ld.x_end) * SECONDS_PER_HOUR / ld.c_rate)
        return t_end

    def progress(self, t: float) -> float:
        """Fraction of the protocol done at time t (s), 0..1: the Li passed over the Li to pass
        (galvanostatic, CC and CV alike) or the time over ``loading.t_end`` (potentiostatic)."""
        ld = self.cfg.loading
        if self.phase == POTENTIOSTATIC or ld.x_initial == ld.x_end:
            return min(1.0, t / ld.t_end) if ld.t_end else 0.0
        done = (ld.x_initial - self.transport.mean_x()) / (ld.x_initial - ld.x_end)
        if ld.t_end:
            done = max(done, t / ld.t_end)
        return float(min(1.0, max(0.0, done)))

    def events(self) -> list[tuple[str, float, float, float]]:
        """Events of the current phase as (name, value, target, tolerance), oriented so that
        the value decreases towards the target: the free surface reaching its limit, and (once
        part of the surface is held) the mean Li fraction reaching x_end."""
        if self.phase == POTENTIOSTATIC:
            return []
        lo, hi = self.transport.surface_range(exclude=self.transport.held)
        events = [("surface limit", lo, self.limit, self.tol) if self.charge
                  else ("surface limit", -hi, -self.limit, self.tol)]
        if self.phase == HOLD:
            sign = 1.0 if self.charge else -1.0
            events.append(("x_end", sign * self.transport.mean_x(),
                           sign * self.cfg.loading.x_end, self.tol))
        return events

    def redo_for(self, crossed: dict[str, float]) -> bool:
        """During the hold, surface nodes that the trial step took past the limit are held and
        the step is redone (True); any other crossing is located in time (False)."""
        if self.phase == HOLD and "x_end" not in crossed:
            self.hold_overshoot()
            return True
        return False

    def step_done(self, t: float, hits: list[str], at_end: bool) -> str | None:
        """React to the events hit by the step that ended at t (s); the reason the protocol is
        over, or None."""
        ld = self.cfg.loading
        if at_end:
            return "x_end reached" if self.end_time() < (ld.t_end or float("inf")) else "t_end"
        if "x_end" in hits:
            return "x_end reached (surface partly held at its limit)"
        if "surface limit" in hits:
            if not ld.cv_hold:
                return "surface limit reached (cv_hold off)"
            self.clamp_surface(t)
        return None

    def accept(self, dt: float) -> None:
        """Book the accepted step of length dt (s)."""
        self.ledger.accept(dt)

    def current_change(self) -> float:
        """0: no phase of this protocol ends at a current (the step size follows x alone)."""
        return 0.0

    def row(self) -> dict[str, float]:
        """Series quantities of the protocol: voltage, current, capacity, step and cycle."""
        return {**self.ledger.row(), "protocol_step": 1, "cycle": 1}

    def clamp_surface(self, t: float) -> int:
        """Hold the surface nodes that reached the limit (within the tolerance) at it, from now
        on (local CC -> CV); return how many were newly held (collective).

        A surface point follows the constant current until its Li fraction reaches the limit
        (the analogue of the voltage cut-off) and is then held there, so the total current falls
        smoothly as more of the surface reaches the limit.

        Parameters
        ----------
        t: time (s), recorded as the start of the hold when it is the first.
        """
        tr = self.transport
        new = self._surface_beyond(self.limit + self.tol if self.charge
                                   else self.limit - self.tol)
        if len(new):
            for f in (tr.c, tr.c_old):
                f.x.array[new] = self.limit * tr.c_max  # a jump of at most tol
            tr.update_x()
        count = self._hold(new, self.limit)
        if count and self.hold_start is None:
            self.hold_start = t
        return count

    def hold_overshoot(self) -> int:
        """Hold the free surface nodes that the trial step took more than the tolerance past
        the limit, from the start of the step; return how many (collective). The caller redoes
        the step.

        The CV hold is an inequality (surface x stays on its side of the limit); redoing the
        step with the violating nodes held is one active-set iteration of it. Unlike locating
        each node's crossing in time, the step length is kept: the hold spreads over the
        surface node by node, and located crossings would cut every step to the time between
        two of them.
        """
        return self._hold(self._surface_beyond(self.limit - self.tol if self.charge
                                               else self.limit + self.tol), self.limit)

    # --- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-able protocol state for checkpoints (the held nodes are the ``held`` field)."""
        return {"phase": self.phase, "hold_start [s]": self.hold_start, **self.ledger.state()}

    def restore(self, state: dict[str, Any]) -> None:
        """Adopt a checkpointed state; ``held`` must already hold the checkpointed field."""
        self.phase = state.get("phase", self.phase)
        self.hold_start = state.get("hold_start [s]")
        self.ledger.restore(state)
        dofs = np.flatnonzero(self.held.x.array > 0.5).astype(np.int32)
        value = self.cfg.loading.surface_x if self.phase == POTENTIOSTATIC else self.limit
        self.transport.hold(dofs, value * self.transport.c_max)

    # --- helpers ---------------------------------------------------------------------------

    def _surface_beyond(self, bound: float) -> np.ndarray:
        """Free outer-surface DOFs (local, with ghosts) whose Li fraction is past ``bound``."""
        x = self.transport.x.x.array
        outer = self.transport.outer_dofs_all
        reached = outer[(x[outer] <= bound) if self.charge else (x[outer] >= bound)]
        return np.setdiff1d(reached, self.transport.held)

    def _hold(self, new: np.ndarray, value: float) -> int:
        """Add ``new`` DOFs to the held surface at Li fraction ``value``; return the global
        number of newly held DOFs (collective)."""
        tr = self.transport
        count = tr.comm.allreduce(int(np.sum(new < tr.V.dofmap.index_map.size_local)),
                                  op=MPI.SUM)
        if count == 0:
            return 0
        held = np.union1d(tr.held, new).astype(np.int32)
        self.held.x.array[held] = 1.0
        tr.hold(held, value * tr.c_max)
        if self.phase == GALVANOSTATIC:
            self.phase = HOLD
        return count
