"""An experiment's protocol in a run: which step and cycle is running, the boundary condition it
sets on the particle surface, when it ends, and what it has passed.

Each step sets the surface when it begins: a constant current (the particle potential V is the
unknown under Butler-Volmer kinetics; a uniform flux otherwise), a constant voltage (the current
follows), a rest (zero net current) or a held surface Li fraction. A step ends at its duration,
at a mean-x target under constant current (an exactly known time: the current fixes d(mean x)/dt)
or at an event located by the time loop: a voltage, a current, a mean or surface Li fraction.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import dolfinx

from nmcfem.config import Config
from nmcfem.experiment import (
    CC,
    CHARGE,
    CURRENT,
    CV,
    MEAN_X,
    SURFACE,
    SURFACE_X,
    VOLTAGE,
    Step,
    parse_steps,
)
from nmcfem.physics.electrochemistry import FARADAY
from nmcfem.protocol import COULOMB_PER_MAH, Ledger
from nmcfem.transport import TransportProblem


def _saturation_band(tol: float, full: bool = False) -> tuple[float, float]:
    """(target, tolerance) of the event "the reacting face reached full" (or empty): the band
    [1 - 1.1 tol, 1 - 0.9 tol] (or [0.9 tol, 1.1 tol]) just short of the bound, as the value
    decreasing towards the target (-x for full).

    The face stops at the bound (a layer's outer face sits at full), so a band around the bound
    would be met by any step that lands after the face saturated, up to a whole step late: the
    46-cycle run ended discharges 126 s (3.5 % of the capacity) apart depending on where a step
    fell. Short of the bound, a step that saturates the face has gone past the band, and the
    time loop locates the arrival. The face approaches full slowly (x 0.988 -> 0.998 in the
    last minute of configs/full_cycle.yaml's 1C discharge), so the band is narrow: with a
    half-width of tol / 2 the discharge capacity at time.dt_max = 120 s and 30 s differed by
    0.8 %, with tol / 10 by 0.14 %.

    Parameters
    ----------
    tol: loading.cutoff_tolerance, in Li fraction [-].
    full: the event at x = 1 (else at x = 0).
    """
    return (-(1.0 - tol), 0.1 * tol) if full else (tol, 0.1 * tol)


class ExperimentProtocol:
    """The steps of ``experiment.steps`` repeated ``experiment.cycles`` times.

    Parameters
    ----------
    cfg: configuration (``experiment``, ``electrochemistry``, ``loading.cutoff_tolerance``).
    transport: the Li transport problem whose surface is loaded.
    exposed_area: callable giving the crack-face area open to the electrolyte (m^2).
    cracked_area: callable giving the fully cracked interface area (m^2).
    """

    def __init__(self, cfg: Config, transport: TransportProblem,
                 exposed_area: Callable[[], float] = lambda: 0.0,
                 cracked_area: Callable[[], float] = lambda: 0.0):
        self.cfg, self.transport = cfg, transport
        self.exposed_area, self.cracked_area = exposed_area, cracked_area
        self.steps: list[Step] = parse_steps(cfg.experiment.steps)
        self.ledger = Ledger(transport)
        self.index, self.cycle = 0, 1  # running step (0-based) and cycle (1-based)
        self.step_start = 0.0  # s
        self.start_mean_x = transport.mean_x()
        self.hold_start: float | None = None  # s: when the first constant-voltage hold began
        self.first_discharge: float | None = None  # C: discharge capacity of cycle 1
        self.cycle_discharge = 0.0  # C: discharge charge so far in this cycle
        self.completed: tuple[int, int] | None = None  # (cycle, step) that ended last step
        self.label = (1, 1)  # (step, cycle) that ran the last accepted time step (1-based)
        #: 1 on held surface nodes (a P1 field, so checkpoints store it rank-independently)
        self.held = dolfinx.fem.Function(transport.V, name="held")
        self.begin(0.0)

    # --- the running step ------------------------------------------------------------------

    @property
    def step(self) -> Step:
        """The running step."""
        return self.steps[self.index]

    @property
    def phase(self) -> str:
        """Kind of the running step (cc, cv, rest, surface)."""
        return self.step.kind

    def _amperes(self, rate) -> float:
        tr = self.transport
        area = tr.reaction.area if tr.butler_volmer else tr.outer_area
        return rate.amperes(tr.one_c_current, area)

    def begin(self, t: float) -> None:
        """Set the running step's surface condition, from time t (s) (collective)."""
        tr, step = self.transport, self.step
        self.step_start, self.start_mean_x = t, tr.mean_x()
        self._release_hold()
        if step.kind == SURFACE:
            tr.reaction_active = False
            self.held.x.array[tr.outer_dofs_all] = 1.0
            tr.hold(tr.outer_dofs_all, step.surface_x * tr.c_max)
            return
        current = 0.0
        if step.kind == CC:
            sign = 1.0 if step.direction == CHARGE else -1.0
            current = sign * self._amperes(step.rate)
        if step.kind == CV and self.hold_start is None:
            self.hold_start = t
        if tr.butler_volmer:
            tr.reaction_active = True
            if step.kind == CV:
                tr.reaction.set_voltage(step.voltage)
            else:
                tr.reaction.set_current(current)
        else:
            tr.reaction_active = False
            tr.set_uniform_current(current, self.exposed_area())

    def _release_hold(self) -> None:
        tr = self.transport
        if len(tr.held):
            self.held.x.array[:] = 0.0
            tr.hold(np.zeros(0, dtype=np.int32), 0.0)

    # --- what the time loop asks -----------------------------------------------------------

    def end_time(self) -> float:
        """Time (s) at which the running step ends by its duration, or (constant current to a
        mean Li fraction) by the exactly known time the current takes."""
        step = self.step
        end = self.step_start + step.duration if step.duration is not None else float("inf")
        if step.kind == CC:
            tr = self.transport
            for cond in step.until:
                if cond.quantity == MEAN_X:
                    current = self._amperes(step.rate)
                    seconds = abs(self.start_mean_x - cond.value) * tr.c_max * tr.volume \
                        * FARADAY / current
                    end = min(end, self.step_start + seconds)
        return end

    def events(self) -> list[tuple[str, float, float, float]]:
        """The running step's end conditions as (name, value, target, tolerance), the value
        decreasing towards the target (collective)."""
        tr, step, ex = self.transport, self.step, self.cfg.experiment
        tol_x = self.cfg.loading.cutoff_tolerance
        rising = step.direction == CHARGE if step.kind == CC else None
        out = []
        for cond in step.until:
            if cond.quantity == VOLTAGE:
                sign = -1.0 if step.direction == CHARGE else 1.0
                out.append(("voltage", sign * tr.voltage, sign * cond.value,
                            ex.voltage_tolerance))
            elif cond.quantity == CURRENT:
                target = self._amperes(cond.rate)
                out.append(("current", abs(tr.current), target, ex.current_tolerance * target))
            elif cond.quantity == MEAN_X and step.kind != CC:
                sign = 1.0 if self.start_mean_x > cond.value else -1.0
                out.append(("mean x", sign * tr.mean_x(), sign * cond.value, tol_x))
            elif cond.quantity == SURFACE_X:
                lo, hi = tr.surface_range()
                charging = rising if rising is not None else lo > cond.value
                out.append(("surface x", lo, cond.value, tol_x) if charging
                           else ("surface x", -hi, -cond.value, tol_x))
        if step.kind == CC and tr.butler_volmer:
            # the fit's OCP stays finite at x = 0 and 1, so nothing else would stop a constant
            # current from over-filling or over-emptying the surface: the step ends there (the
            # reacting face: on a passivation layer its outer side)
            lo, hi = tr.reacting_surface_range()
            out.append(("surface empty", lo, *_saturation_band(tol_x)) if rising
                       else ("surface full", -hi, *_saturation_band(tol_x, full=True)))
        return out

    def redo_for(self, crossed: dict[str, float]) -> bool:
        """Crossed events are located in time (no active set)."""
        return False

    def step_done(self, t: float, hits: list[str], at_end: bool) -> str | None:
        """End the running step if it ended at t (s) (its duration or an event) and begin the
        next; the reason the experiment is over, or None (collective)."""
        self.completed = None
        if not (at_end or hits):
            return self._terminated()
        self.completed = (self.cycle, self.index + 1)
        self.index += 1
        if self.index == len(self.steps):
            reason = self._cycle_done()
            if reason:
                return reason
            self.index, self.cycle = 0, self.cycle + 1
            if self.cycle > self.cfg.experiment.cycles:
                self.index, self.cycle = len(self.steps) - 1, self.cycle - 1
                return f"experiment done ({self.cfg.experiment.cycles} cycle(s))"
        self.begin(t)
        return self._terminated()

    def _cycle_done(self) -> str | None:
        """Global termination on capacity at the end of a cycle."""
        fraction = self.cfg.experiment.stop_capacity_fraction
        if self.cycle == 1:
            self.first_discharge = self.cycle_discharge
        elif fraction is not None and self.first_discharge and \
                self.cycle_discharge < fraction * self.first_discharge:
            return (f"discharge capacity of cycle {self.cycle} "
                    f"({self.cycle_discharge / COULOMB_PER_MAH:.4g} mAh) below "
                    f"experiment.stop_capacity_fraction = {fraction} of cycle 1's")
        self.cycle_discharge = 0.0
        return None

    def _terminated(self) -> str | None:
        limit = self.cfg.experiment.stop_cracked_area
        if limit is not None and self.cracked_area() > limit:
            return (f"cracked area {self.cracked_area():.4g} m^2 above "
                    f"experiment.stop_cracked_area = {limit} m^2")
        return None

    def progress(self, t: float) -> float:
        """Fraction of the experiment done at time t (s), 0..1, counted in steps."""
        per_cycle = len(self.steps)
        done = (self.cycle - 1) * per_cycle + self.index
        return min(1.0, done / (per_cycle * self.cfg.experiment.cycles))

    def accept(self, dt: float) -> None:
        """Book the accepted step of length dt (s), under the step and cycle that ran it."""
        self.ledger.accept(dt)
        self.label = (self.index + 1, self.cycle)
        if self.transport.current < 0:
            self.cycle_discharge -= self.transport.current * dt

    def current_change(self) -> float:
        """Relative change of the current over the trial step, against the last accepted one, in
        a constant-voltage step (which ends at a current, so its decay sets the step), else 0.
        The hold's first step is exempt: the current jumps where a step begins."""
        last = self.ledger.current
        if self.step.kind != CV or self.label != (self.index + 1, self.cycle) or last == 0.0:
            return 0.0
        return abs(self.transport.current - last) / abs(last)

    def row(self) -> dict[str, float]:
        """Series quantities of the last accepted step: voltage, current, capacity, and the
        experiment step and cycle that ran it."""
        step, cycle = self.label
        return {**self.ledger.row(), "protocol_step": step, "cycle": cycle}

    # --- state -----------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """JSON-able protocol state for checkpoints (held nodes are the ``held`` field)."""
        return {"step index": self.index, "cycle": self.cycle, "step_start [s]": self.step_start,
                "start_mean_x [-]": self.start_mean_x, "hold_start [s]": self.hold_start,
                "first_discharge [C]": self.first_discharge,
                "cycle_discharge [C]": self.cycle_discharge, "label": list(self.label),
                **self.ledger.state()}

    def restore(self, state: dict[str, Any]) -> None:
        """Adopt a checkpointed state (after the fields)."""
        self.index, self.cycle = int(state["step index"]), int(state["cycle"])
        self.begin(float(state["step_start [s]"]))
        self.start_mean_x = float(state["start_mean_x [-]"])
        self.hold_start = state.get("hold_start [s]")
        self.first_discharge = state.get("first_discharge [C]")
        self.cycle_discharge = float(state.get("cycle_discharge [C]", 0.0))
        self.label = tuple(state.get("label", self.label))
        self.ledger.restore(state)
