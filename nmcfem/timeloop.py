"""Adaptive time stepping of a problem with ``step(dt)``, ``accept()`` and ``reject()``.

The step size follows the largest change of the Li fraction per step (``time.dx_target``):
after an accepted step dt is scaled by min(growth, 0.9 dx_target / dx_max); a step whose
change exceeds twice the target, or whose solve fails, is undone and retried with a step cut by
``time.cutback``, up to ``time.max_retries`` times before the run stops with a clear message.
The last step is shortened to land exactly on the end time — for galvanostatic loading the
cut-off mean x is reached at a known time, since the applied current fixes dx/dt.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from nmcfem import NmcfemError
from nmcfem.config import Config
from nmcfem.problem import SECONDS_PER_HOUR, SolverError

#: a step may overshoot the x-change target by this factor before it is redone
REJECT_FACTOR = 2.0
#: safety factor of the step-size update
SAFETY = 0.9
#: relative tolerance on reaching the end time
END_TOLERANCE = 1e-9

Observer = Callable[[str, Any, dict], None]


class TimeLoopError(NmcfemError):
    """The time loop could not advance (retry budget spent, step size below dt_min)."""


def end_time(problem: Any, cfg: Config) -> float:
    """Final time (s): the galvanostatic cut-off time or ``loading.t_end``, whichever is first."""
    ld = cfg.loading
    t_end = ld.t_end if ld.t_end is not None else float("inf")
    if ld.mode == "galvanostatic":
        # mean x changes at exactly c_rate/3600 per second: the flux integrates to that rate
        t_cut = abs(ld.x_initial - ld.x_end) * SECONDS_PER_HOUR / ld.c_rate
        t_end = min(t_end, t_cut)
    return t_end


def run(problem: Any, cfg: Config, observers: list[Observer] | None = None,
        t_start: float = 0.0, dt_start: float | None = None, step_start: int = 0
        ) -> dict[str, Any]:
    """Advance ``problem`` to the end time; call observers after each accepted step.

    Parameters
    ----------
    problem: object with step(dt) -> info (with "dx_max"), accept(), reject().
    cfg: configuration (time stepping and loading sections).
    observers: callables observer(event, problem, info) with event "step" or "end".
    t_start, dt_start, step_start: state to continue from (restart), s / s / count.

    Returns a summary: steps, rejected steps, Krylov iterations, wall time (s), end time (s).
    """
    ts = cfg.time
    observers = observers or []
    t_final = end_time(problem, cfg)
    t = t_start
    dt = min(dt_start or ts.dt_initial, ts.dt_max)
    steps, rejected = step_start, 0
    its = {"ksp_its_diffusion": 0, "ksp_its_elasticity": 0}
    wall0 = time.perf_counter()
    while t < t_final * (1 - END_TOLERANCE):
        if steps >= ts.max_steps:
            raise TimeLoopError(f"time.max_steps = {ts.max_steps} reached at t = {t:.6g} s before "
                                f"the end at {t_final:.6g} s: raise time.max_steps or "
                                f"time.dx_target")
        dt_try = min(dt, t_final - t)
        for attempt in range(ts.max_retries + 1):
            try:
                info = problem.step(dt_try)
                ok = info["dx_max"] <= REJECT_FACTOR * ts.dx_target or dt_try <= ts.dt_min
                reason = f"x changed by {info['dx_max']:.3g} > {REJECT_FACTOR} x time.dx_target"
            except SolverError as exc:
                ok, reason, info = False, str(exc), {}
            if ok:
                break
            problem.reject()
            rejected += 1
            dt_try *= ts.cutback
            if dt_try < ts.dt_min:
                raise TimeLoopError(f"step at t = {t:.6g} s failed ({reason}) and the step size "
                                    f"fell below time.dt_min = {ts.dt_min} s")
        else:
            raise TimeLoopError(f"step at t = {t:.6g} s failed {ts.max_retries + 1} times "
                                f"(last: {reason}); results up to t = {t:.6g} s are kept. "
                                f"Raise time.max_retries or lower time.dx_target")
        problem.accept()
        t += dt_try
        steps += 1
        for key in its:
            its[key] += int(info.get(key, 0))
        growth = ts.growth if info["dx_max"] <= 0 else \
            min(ts.growth, SAFETY * ts.dx_target / info["dx_max"])
        # a step shortened only to hit the end time does not shrink the next one
        dt = min(ts.dt_max, max(ts.dt_min, max(dt_try, min(dt, dt_try)) * growth))
        step_info = {**info, "step": steps, "time": t, "rejected": rejected, "next_dt": dt}
        for obs in observers:
            obs("step", problem, step_info)
    summary = {"steps": steps, "rejected_steps": rejected, "end_time [s]": t,
               "wall_time_loop [s]": time.perf_counter() - wall0, "next_dt [s]": dt, **its}
    for obs in observers:
        obs("end", problem, summary)
    return summary
