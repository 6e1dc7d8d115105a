"""Adaptive time stepping through a loading protocol.

The loop asks the protocol (:mod:`nmcfem.protocol`, :mod:`nmcfem.experiment_protocol`) for the
running step's end time and events, and tells it when a step ended; three small policies
(:mod:`nmcfem.stepping`) decide the rest. Step size: the largest change of the grains' Li
fraction per step follows ``time.dx_target``; a step that changes it by more than twice the
target, or whose solve fails, is undone and retried with a step cut by ``time.cutback``, up to
``time.max_retries`` times, before the run stops with a clear message. A new protocol step
starts again from ``time.dt_initial``. Cohesive cracks never shorten a step (crack growth under
a slowly changing Li field is rate-independent; :mod:`nmcfem.cohesive.step_solver` solves it
inside the step, a snap included).

Events (a voltage, current or Li fraction reaching its target) are located to their tolerance
by shortening the step that crossed them (secant on the monitored value). A protocol may
instead redo the step after updating an active set (the flat protocol's surface hold spreading
node by node), which keeps the step length.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nmcfem.config import Config
from nmcfem.errors import SolverError, TimeLoopError
from nmcfem.stepping import CrackGrowthPolicy, EventLocator, StepSizeControl

#: relative tolerance on reaching the end time
END_TOLERANCE = 1e-9

Observer = Callable[[str, Any, dict], None]


def run(problem: Any, cfg: Config, observers: list[Observer] | None = None,
        t_start: float = 0.0, dt_start: float | None = None, step_start: int = 0
        ) -> dict[str, Any]:
    """Advance ``problem`` to the end of its loading protocol; observers see accepted steps.

    Parameters
    ----------
    problem: object with step(dt, mechanics) -> info (with "dx_max"), solve_mechanics(),
        accept(), reject() and ``protocol`` (see :mod:`nmcfem.protocol`).
    cfg: configuration (time stepping section).
    observers: callables observer(event, problem, info) with event "step" or "end".
    t_start, dt_start, step_start: state to continue from (restart), s / s / count.

    Returns a summary: steps, rejected steps (too large a change of x, or a failed solve) and
    failed solves among them, Krylov iterations, wall time (s), end time (s), the reason the
    loop stopped and the time (s) the first hold began (None if none did).
    """
    ts = cfg.time
    observers = observers or []
    sizes, locator, cracks = StepSizeControl.from_config(ts), EventLocator(), CrackGrowthPolicy()
    t = t_start
    dt = min(dt_start or ts.dt_initial, ts.dt_max)
    steps, rejected, failed_solves = step_start, 0, 0
    its = {"ksp_its_diffusion": 0, "ksp_its_elasticity": 0, "interface_its": 0}
    wall0 = time.perf_counter()
    protocol = problem.protocol
    stop_reason = None
    while stop_reason is None:
        t_final = protocol.end_time()
        events = protocol.events()
        if t >= t_final * (1 - END_TOLERANCE) or locator.hits(events):
            # the running step is over before it took a time step (a restart at its end, or a
            # condition already met when it began)
            stop_reason = protocol.step_done(t, locator.hits(events),
                                             t >= t_final * (1 - END_TOLERANCE))
            dt = ts.dt_initial
            continue
        if steps >= ts.max_steps:
            raise TimeLoopError(f"time.max_steps = {ts.max_steps} reached at t = {t:.6g} s: raise "
                                f"time.max_steps or time.dx_target")
        before = {name: value for name, value, _, _ in events}
        dt_try = min(dt, t_final - t)
        failures, hits, shortened = 0, [], False
        locator.reset()
        while True:
            try:
                # transport first: the step size and events depend on it alone, so trial steps
                # that are redone never pay for the mechanics
                info = problem.step(dt_try, mechanics=False)
                change = sizes.measure(info["dx_max"], info.get("current_change", 0.0))
                ok = sizes.acceptable(change, dt_try)
                reason = (f"x changed by {info['dx_max']:.3g} (time.dx_target) and the hold's "
                          f"current by {info.get('current_change', 0.0):.3g} "
                          f"(time.current_change_target): over twice a target")
                if ok and before:
                    events = protocol.events()
                    crossed = locator.crossed(before, events)
                    if crossed and locator.may_refine():
                        redo = protocol.redo_for(crossed)  # reads the trial state
                        problem.reject()
                        if not redo:
                            dt_try = locator.aim(dt_try, crossed)
                            shortened = True
                        continue
                    hits = locator.hits(events)
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
            dt_try = sizes.cut(dt_try)
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
        cracks.accept(steps, info)
        dt = sizes.next(dt_try, dt, change, shortened or failures > 0)
        step_before = (getattr(protocol, "cycle", 1), getattr(protocol, "index", 0))
        stop_reason = protocol.step_done(t, hits, t >= t_final * (1 - END_TOLERANCE))
        if (getattr(protocol, "cycle", 1), getattr(protocol, "index", 0)) != step_before:
            dt = ts.dt_initial  # a new protocol step: its transient starts afresh
        step_info = {**info, "step": steps, "time": t, "rejected": rejected,
                     "failed_solves": failed_solves, "next_dt": dt,
                     "phase": protocol.phase, "events": hits,
                     "completed": getattr(protocol, "completed", None)}
        for obs in observers:
            obs("step", problem, step_info)
    summary = {"steps": steps, "rejected_steps": rejected, "failed_solves": failed_solves,
               "end_time [s]": t,
               "stop_reason": stop_reason, "cv_hold_start [s]": protocol.hold_start,
               "wall_time_loop [s]": time.perf_counter() - wall0, "next_dt [s]": dt,
               "snap_steps": cracks.snaps, **its}
    for obs in observers:
        obs("end", problem, summary)
    return summary
