"""Adaptive time stepping with CC-CV charge control.

Step size: the largest change of the grains' Li fraction per step follows ``time.dx_target``
(the shell's linear, strain-free transport does not limit it: ``ChemoMechanicsProblem.step``);
after an accepted step dt is scaled by min(growth, 0.9 dx_target / dx_max); a step whose change
exceeds twice the target, or whose solve fails, is undone and retried with a step cut by
``time.cutback``, up to ``time.max_retries`` times, before the run stops with a clear message.

The loading protocol (:mod:`nmcfem.protocol`) gives the end time and the events of its
current phase, and holds the surface where it reaches its limit.

Cohesive cracks never shorten a step: crack growth under a slowly changing Li field is
rate-independent, and each step solves the equilibrium together with the irreversible damage at
its Li field (:mod:`nmcfem.cohesive.step_solver`), a snap included. Only a solve that fails
cuts the step.

Events (the surface reaching its limit, x_end during the hold) are located to
``cutoff_tolerance`` in x by shortening the step that crossed them (secant on the monitored
value). Once the hold has begun, free surface nodes that a step takes more than
``cutoff_tolerance`` past the limit are held from the start of the step and the step is redone
at the same length (an active-set iteration), so the hold's spreading over the surface does not
cut the steps.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nmcfem.config import Config
from nmcfem.errors import SolverError, TimeLoopError
from nmcfem.protocol import HOLD

#: a step may overshoot the x-change target by this factor before it is redone
REJECT_FACTOR = 2.0
#: safety factor of the step-size update
SAFETY = 0.9
#: relative tolerance on reaching the end time
END_TOLERANCE = 1e-9
#: shortened steps aimed at an event at most this many times per step
MAX_EVENT_REFINEMENTS = 30
#: a secant estimate is kept inside this fraction of the step (robust to curvature)
SECANT_BOUNDS = (0.05, 0.95)

Observer = Callable[[str, Any, dict], None]


def run(problem: Any, cfg: Config, observers: list[Observer] | None = None,
        t_start: float = 0.0, dt_start: float | None = None, step_start: int = 0
        ) -> dict[str, Any]:
    """Advance ``problem`` to the end of the loading protocol; observers see accepted steps.

    Parameters
    ----------
    problem: object with step(dt, mechanics) -> info (with "dx_max"), solve_mechanics(),
        accept(), reject() and ``protocol`` (end_time(), events(), clamp_surface(t),
        hold_overshoot(), phase, hold_start).
    cfg: configuration (time stepping and loading sections).
    observers: callables observer(event, problem, info) with event "step" or "end".
    t_start, dt_start, step_start: state to continue from (restart), s / s / count.

    Returns a summary: steps, rejected steps (too large a change of x, or a failed solve) and
    failed solves among them, Krylov iterations, wall time (s), end time (s),
    the reason the loop stopped and the time (s) the CV hold began (None if it did not).
    """
    ts, ld = cfg.time, cfg.loading
    observers = observers or []
    t = t_start
    dt = min(dt_start or ts.dt_initial, ts.dt_max)
    steps, rejected, failed_solves = step_start, 0, 0
    its = {"ksp_its_diffusion": 0, "ksp_its_elasticity": 0, "interface_its": 0}
    snaps = 0
    wall0 = time.perf_counter()
    stop_reason = "end time"
    tol = ld.cutoff_tolerance
    protocol = problem.protocol
    finished = False
    while not finished:
        t_final = protocol.end_time()
        if t >= t_final * (1 - END_TOLERANCE):
            stop_reason = "x_end reached" if t_final < (ld.t_end or float("inf")) else "t_end"
            break
        if steps >= ts.max_steps:
            raise TimeLoopError(f"time.max_steps = {ts.max_steps} reached at t = {t:.6g} s: raise "
                                f"time.max_steps or time.dx_target")
        before = {name: value for name, value, _ in protocol.events()}
        dt_try = min(dt, t_final - t)
        failures, refinements, hits, shortened = 0, 0, [], False
        while True:
            try:
                # transport first: the step size and events depend on it alone, so trial steps
                # that are redone never pay for the mechanics
                info = problem.step(dt_try, mechanics=False)
                ok = info["dx_max"] <= REJECT_FACTOR * ts.dx_target or dt_try <= ts.dt_min
                reason = f"x changed by {info['dx_max']:.3g} > {REJECT_FACTOR} x time.dx_target"
                if ok and before:
                    events = protocol.events()
                    crossed = {n: (before[n] - target) / max(before[n] - value, 1e-300)
                               for n, value, target in events if value < target - tol}
                    if crossed and refinements < MAX_EVENT_REFINEMENTS:
                        refinements += 1
                        if protocol.phase == HOLD and "x_end" not in crossed:
                            # the hold spreading over the surface: hold the overshooting
                            # nodes and redo the step (active set), no event location
                            protocol.hold_overshoot()
                            problem.reject()
                            continue
                        # an event was overshot: aim the step at the first one (secant)
                        problem.reject()
                        dt_try *= min(max(min(crossed.values()), SECANT_BOUNDS[0]),
                                      SECANT_BOUNDS[1])
                        shortened = True
                        continue
                    hits = [n for n, value, target in events if value <= target + tol]
                if ok:
                    problem.solve_mechanics()
            except SolverError as exc:
                ok, reason, info = False, str(exc), {}
                failed_solves += 1
            if ok:
                break
            problem.reject()
            rejected += 1
            failures += 1
            dt_try *= ts.cutback
            if failures > ts.max_retries:
                raise TimeLoopError(f"step at t = {t:.6g} s failed {failures} times (last: "
                                    f"{reason}); results up to t = {t:.6g} s are kept. Raise "
                                    f"time.max_retries or lower time.dx_target")
            if dt_try < ts.dt_min:
                raise TimeLoopError(f"step at t = {t:.6g} s failed ({reason}) and the step size "
                                    f"fell below time.dt_min = {ts.dt_min} s")
        problem.accept()
        t += dt_try
        steps += 1
        for key in its:
            its[key] += int(info.get(key, 0))
        snaps += bool(info.get("snap", False))
        growth = ts.growth if info["dx_max"] <= 0 else \
            min(ts.growth, SAFETY * ts.dx_target / info["dx_max"])
        # a step shortened only to land on the end time does not shrink the next one
        base = dt_try if (failures or shortened) else max(dt_try, dt)
        dt = min(ts.dt_max, max(ts.dt_min, base * growth))
        if "surface limit" in hits:
            if ld.cv_hold:
                protocol.clamp_surface(t)
            else:
                stop_reason, finished = "surface limit reached (cv_hold off)", True
        if "x_end" in hits:
            stop_reason, finished = "x_end reached (surface partly held at its limit)", True
        step_info = {**info, "step": steps, "time": t, "rejected": rejected,
                     "failed_solves": failed_solves, "next_dt": dt,
                     "phase": protocol.phase, "events": hits}
        for obs in observers:
            obs("step", problem, step_info)
    summary = {"steps": steps, "rejected_steps": rejected, "failed_solves": failed_solves,
               "end_time [s]": t,
               "stop_reason": stop_reason, "cv_hold_start [s]": protocol.hold_start,
               "wall_time_loop [s]": time.perf_counter() - wall0, "next_dt [s]": dt,
               "snap_steps": snaps, **its}
    for obs in observers:
        obs("end", problem, summary)
    return summary
