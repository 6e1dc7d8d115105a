"""The time loop's policies, each small and testable on a cheap fake problem: the step size,
the location of events in time, and the handling of crack growth.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: a step may overshoot the x-change target by this factor before it is redone
REJECT_FACTOR = 2.0
#: safety factor of the step-size update
SAFETY = 0.9
#: shortened steps aimed at an event at most this many times per step
MAX_EVENT_REFINEMENTS = 30
#: a secant estimate is kept inside this fraction of the step (robust to curvature)
SECANT_BOUNDS = (0.05, 0.95)

Event = tuple[str, float, float, float]  # name, value, target, tolerance


@dataclass
class StepSizeControl:
    """Step size from transport accuracy: the largest change of the grains' Li fraction per
    step follows ``dx_target``, and in a constant-voltage step the relative change of the
    current follows ``current_change_target``.

    Parameters (``time`` section): dx_target [-], growth [-], cutback [-], dt_min [s],
    dt_max [s], dt_initial [s], current_change_target [-].
    """

    dx_target: float
    growth: float
    cutback: float
    dt_min: float
    dt_max: float
    dt_initial: float
    current_change_target: float

    @classmethod
    def from_config(cls, ts) -> StepSizeControl:
        """The policy of a ``time`` config section."""
        return cls(ts.dx_target, ts.growth, ts.cutback, ts.dt_min, ts.dt_max, ts.dt_initial,
                   ts.current_change_target)

    def measure(self, dx_max: float, current_change: float = 0.0) -> float:
        """A trial step's change in units of x [-]: the larger of dx_max and the relative change
        of the current scaled so that ``current_change_target`` counts as ``dx_target``."""
        return max(dx_max, self.dx_target * current_change / self.current_change_target)

    def acceptable(self, dx_max: float, dt: float) -> bool:
        """Whether a trial step of length dt (s) that changed x by dx_max may be kept."""
        return dx_max <= REJECT_FACTOR * self.dx_target or dt <= self.dt_min

    def cut(self, dt: float) -> float:
        """The shorter step (s) after a failed or rejected one."""
        return dt * self.cutback

    def next(self, dt_taken: float, dt_planned: float, dx_max: float, shortened: bool) -> float:
        """The next step (s) after an accepted step of dt_taken (s) with change dx_max.

        A step shortened only to land on the end time grows from the planned step dt_planned
        (s); one ``shortened`` (aimed at an event, or cut after a failure) grows from its own
        length, since its dx_max says nothing about the planned step."""
        growth = self.growth if dx_max <= 0 else min(self.growth,
                                                     SAFETY * self.dx_target / dx_max)
        base = dt_taken if shortened else max(dt_taken, dt_planned)
        return min(self.dt_max, max(self.dt_min, base * growth))


@dataclass
class EventLocator:
    """Locates events (a monitored value reaching its target) by shortening the step that
    crossed them, with a secant estimate of the crossing."""

    max_refinements: int = MAX_EVENT_REFINEMENTS
    refinements: int = 0

    def reset(self) -> None:
        """A new step begins."""
        self.refinements = 0

    @staticmethod
    def crossed(before: dict[str, float], events: list[Event]) -> dict[str, float]:
        """Events the trial step went past by more than their tolerance, with the secant
        fraction of the step at which each was reached."""
        return {n: (before[n] - target) / max(before[n] - value, 1e-300)
                for n, value, target, tol in events if n in before and value < target - tol}

    def may_refine(self) -> bool:
        """Whether the step may be shortened once more (counts the refinement)."""
        if self.refinements >= self.max_refinements:
            return False
        self.refinements += 1
        return True

    @staticmethod
    def aim(dt: float, crossed: dict[str, float]) -> float:
        """The step (s) aimed at the first crossed event."""
        fraction = min(crossed.values())
        return dt * min(max(fraction, SECANT_BOUNDS[0]), SECANT_BOUNDS[1])

    @staticmethod
    def hits(events: list[Event]) -> list[str]:
        """Events reached within their tolerance."""
        return [n for n, value, target, tol in events if value <= target + tol]


@dataclass
class CrackGrowthPolicy:
    """Crack growth never shortens a step: under a slowly changing Li field it is
    rate-independent, and each step solves equilibrium with the irreversible damage at its
    Li field (a snap included). Only a failed solve cuts the step; snaps are counted."""

    snaps: int = 0
    snap_steps: list[int] = field(default_factory=list)

    def accept(self, step: int, info: dict) -> bool:
        """Record an accepted step's crack growth; always keeps the step."""
        if info.get("snap", False):
            self.snaps += 1
            self.snap_steps.append(step)
        return True
