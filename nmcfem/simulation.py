"""One simulation on a distributed particle: problem + time loop + outputs + snapshot.

The observers here turn accepted steps into the run folder's records: a time-series row per
step, ParaView fields every ``output.fields_every`` steps and at the end, and checkpoints
every ``output.checkpoint_every`` steps (for ``--restart``).
"""

from __future__ import annotations

import math
import signal
import time
from pathlib import Path
from typing import Any

from mpi4py import MPI

from nmcfem import timeloop
from nmcfem.checkpoint import CHECKPOINT, load_checkpoint, save_checkpoint
from nmcfem.config import Config, to_dict
from nmcfem.cycling import CYCLES, cycle_table, voltage_figures, write_cycles
from nmcfem.diagnostics import FIELD_UNITS
from nmcfem.orientations import grain_rotations
from nmcfem.outputs import SNAPSHOT
from nmcfem.problem import ChemoMechanicsProblem
from nmcfem.snapshot import write_analysis_snapshot

#: signals received (names); the run stops at the end of the step it arrives in
_stop_signals: list[str] = []


def request_stop(signum: int, frame) -> None:
    """Signal handler: ask the run to stop after the current step (a signal raised inside a
    PETSc callback would surface as a PETSc error, and the run would look failed)."""
    _stop_signals.append(signal.Signals(signum).name)


class RunRecorder:
    """Observer writing series rows, fields and checkpoints of accepted steps.

    Parameters
    ----------
    cfg: configuration.
    folder: RunFolder of the run.
    progress: Progress reporter (or None: no step progress).
    """

    def __init__(self, cfg: Config, folder: Any, progress: Any = None,
                 at_step_end: Any = None):
        self.cfg, self.folder, self.progress = cfg, folder, progress
        #: callable(problem, time step, cycle, step): the outputs at an experiment step's end
        self.at_step_end = at_step_end
        self.final: dict[str, Any] = {}
        self.peaks: dict[str, float] = {}

    def record(self, problem: Any, info: dict) -> dict[str, Any]:
        """Diagnostics of the current state plus step information, appended to the series."""
        row = problem.row()
        row.update({"dt [s]": info.get("dt", 0.0), "dx_max [-]": info.get("dx_max", 0.0),
                    "step": info.get("step", 0),
                    "ksp_its_diffusion": info.get("ksp_its_diffusion", 0),
                    "ksp_its_elasticity": info.get("ksp_its_elasticity", 0),
                    "rejected_steps": info.get("rejected", 0),
                    "failed_solves": info.get("failed_solves", 0)})
        if problem.cracks is not None:
            row.update({"interface_its": info.get("interface_its", 0),
                        "newton_its": info.get("newton_its", 0),
                        "curvature_its": info.get("curvature_its", 0),
                        "pc_setups": info.get("pc_setups", 0),
                        "snap": int(info.get("snap", False))})
        self.folder.append_row(row)
        for key, value in row.items():
            if (key.startswith("max_") or key.startswith("von_mises")) and math.isfinite(value):
                self.peaks[f"peak_{key}"] = max(self.peaks.get(f"peak_{key}", -float("inf")),
                                                value)
        self.final = row
        return row

    def __call__(self, event: str, problem: Any, info: dict) -> None:
        """Record an accepted step ("step"): series row, fields, checkpoint, progress."""
        out = self.cfg.output
        if event == "step":
            row = self.record(problem, info)
            step = info["step"]
            t0 = time.perf_counter()
            if step % out.fields_every == 0:
                write_fields(self.folder, problem, step)
            completed = info.get("completed")
            if completed and list(completed) in out.at_step_ends and self.at_step_end:
                self.at_step_end(problem, step, *completed)
            if out.checkpoint_every and step % out.checkpoint_every == 0:
                write_checkpoint(self.folder.path, problem, info, self.folder.comm)
            self.folder.add_timing("output", time.perf_counter() - t0)
            # collective, so every rank stops at the same step
            if self.folder.comm.allreduce(bool(_stop_signals), op=MPI.LOR):
                raise KeyboardInterrupt(f"signal {(_stop_signals or ['on another rank'])[0]}")
            if self.progress is not None:
                self.progress.step(step, problem.protocol.progress(problem.t), problem.t,
                                   info.get("dt", 0.0), row)


def write_fields(folder: Any, problem: Any, step: int) -> None:
    """ParaView fields of the bulk (collective) and, with cracks, of the interfaces (rank 0)."""
    folder.write_fields(problem.diagnostics.output_fields(), FIELD_UNITS, problem.t, step)
    if problem.cracks is not None and folder.root:
        problem.cracks.write_vtu(folder.path / "fields", problem.t, step)


def write_checkpoint(run_dir: Path, problem: Any, info: dict, comm: MPI.Comm) -> None:
    """Checkpoint the committed state and stepping information (collective)."""
    state = {"time [s]": problem.t, "step": info["step"], "next_dt [s]": info.get("next_dt"),
             "dt [s]": info.get("dt"), **problem.checkpoint_state()}
    save_checkpoint(Path(run_dir) / CHECKPOINT, problem.checkpoint_fields(), state,
                    problem.checkpoint_arrays(), comm)
    problem.restart_point()


def simulate(cfg: Config, domain: Any, folder: Any, comm: MPI.Comm, say,
             restart_from: Path | None = None, progress: Any = None) -> dict[str, Any]:
    """Run the simulation of ``cfg`` on ``domain``, writing into ``folder``; return a summary.

    Parameters
    ----------
    cfg: configuration.
    domain: ParticleDomain.
    folder: RunFolder.
    comm: communicator of the run.
    say: progress printer (rank 0).
    restart_from: checkpoint file to continue from (None: start at t = 0).
    progress: Progress reporter of the steps (None: none).
    """
    t0 = time.perf_counter()
    rotations = grain_rotations(cfg.geometry, domain.grain_centroids)
    problem = ChemoMechanicsProblem(domain, cfg, rotations)
    folder.add_timing("setup", time.perf_counter() - t0)
    if cfg.experiment.steps is None:
        loading = (f"surface flux {problem.transport.flux_value:.4g} mol/m^2/s; ends at t = "
                   f"{problem.protocol.end_time():.1f} s")
    else:
        steps = "; ".join(s.text for s in problem.protocol.steps)
        loading = (f"experiment ({cfg.electrochemistry.kinetics}): {steps}"
                   + (f"; x {cfg.experiment.cycles} cycles" if cfg.experiment.cycles > 1 else "")
                   + f"; 1C = {problem.transport.one_c_current:.4g} A")
    say(f"problem: {problem.unknowns()['diffusion']} Li unknowns, "
        f"{problem.unknowns()['elasticity']} displacement unknowns; {loading}")
    def at_step_end(problem: Any, number: int, cycle: int, step: int) -> None:
        """Fields and an analysis snapshot at the end of experiment step ``step`` of ``cycle``
        (time step ``number``)."""
        if number % cfg.output.fields_every:
            write_fields(folder, problem, number)
        snapshot(folder.path / f"analysis_snapshot_cycle{cycle:04d}_step{step:02d}.npz", problem)
        say(f"wrote fields and the analysis snapshot at the end of cycle {cycle}, step {step}")

    def snapshot(path: Path, problem: Any) -> None:
        write_analysis_snapshot(path, domain, problem.x, problem.t,
                                list(cfg.output.snapshot_depths),
                                {"config": to_dict(cfg), "time [s]": problem.t}, comm,
                                facets=problem.cracks.facet_snapshot() if problem.cracks else None,
                                layer=problem.transport.film)

    recorder = RunRecorder(cfg, folder, progress, at_step_end)
    start = {"t_start": 0.0, "dt_start": None, "step_start": 0}
    if restart_from is not None:
        state, arrays = load_checkpoint(restart_from, problem.checkpoint_fields())
        problem.restore(state["time [s]"], arrays, state)
        folder.truncate_series(problem.t)
        start = {"t_start": state["time [s]"], "dt_start": state.get("next_dt [s]"),
                 "step_start": state["step"]}
        say(f"restarted from {restart_from} at t = {problem.t:.1f} s (step {state['step']})")
    else:
        problem.solve_mechanics()
        recorder.record(problem, {"dt": 0.0, "step": 0})
        write_fields(folder, problem, 0)

    summary = timeloop.run(problem, cfg, [recorder], **start)
    t_out = time.perf_counter()
    if summary["steps"] % cfg.output.fields_every:
        write_fields(folder, problem, summary["steps"])
    snapshot(folder.path / SNAPSHOT, problem)
    if cfg.experiment.steps is not None:
        table = cycle_table(folder.rows, problem.protocol.steps)  # the same on every rank
        summary["cycles"] = table
        if folder.root:
            write_cycles(folder.path / CYCLES, table)
            if cfg.analysis.figures:
                voltage_figures(folder.rows, problem.protocol.steps, folder.path / "figures")
    folder.add_timing("output", time.perf_counter() - t_out)
    for phase, seconds in problem.timings.items():
        folder.add_timing(phase, seconds)
    summary.update({"unknowns": problem.unknowns(), "final": {**recorder.final,
                                                              **recorder.peaks}})
    problem.destroy()
    return summary
