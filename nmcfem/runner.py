"""Orchestration of one run: config -> mesh -> problem -> time loop -> outputs -> analysis.

Each stage passes a plain object to the next; this module only wires them, times them and
records the outcome in the run's manifest (``running`` -> ``done``, ``failed`` or
``interrupted``).
"""

from __future__ import annotations

import math
import signal
import time
import traceback
from pathlib import Path
from typing import Any

from mpi4py import MPI

from nmcfem import NmcfemError
from nmcfem.config import Config, section_hash
from nmcfem.parallel import log


def run_folder_path(cfg: Config, config_name: str, output_dir: str | None = None) -> Path:
    """Folder of a run: ``output.directory/<output.name or config-name-hash>``.

    Parameters
    ----------
    cfg: resolved configuration (its hash names the folder unless output.name is set).
    config_name: stem of the config file.
    output_dir: explicit folder (overrides the above).
    """
    if output_dir:
        return Path(output_dir)
    name = cfg.output.name or f"{config_name}-{section_hash(cfg, 8)}"
    return Path(cfg.output.directory) / name


def load_domain(cfg: Config, comm: MPI.Comm = MPI.COMM_WORLD, say=None):
    """Build or reuse the cached particle mesh of ``cfg.geometry`` and distribute it."""
    from nmcfem.mesh import load_particle

    coh = cfg.cohesive
    return load_particle(cfg.geometry, comm=comm, cache_dir=cfg.output.mesh_cache,
                         log=say if say is not None else (lambda m: log(m, comm)),
                         cut=(coh.enabled and coh.grain_boundary.enabled,
                              coh.enabled and coh.shell_interface.enabled))


def format_stats(stats: dict[str, Any]) -> str:
    """Mesh statistics as aligned ``key : value`` lines."""
    width = max((len(k) for k in stats), default=0)
    lines = []
    for key, val in stats.items():
        text = f"{val:.6g}" if isinstance(val, float) else str(val)
        lines.append(f"  {key:<{width}} : {text}")
    return "\n".join(lines)


def mesh_command(cfg: Config, comm: MPI.Comm = MPI.COMM_WORLD) -> Any:
    """``nmcfem mesh``: build or reuse the mesh and print where it is and its statistics."""
    t0 = time.perf_counter()
    domain = load_domain(cfg, comm)
    log(f"mesh ready in {time.perf_counter() - t0:.1f} s: {domain.cache_path} "
        f"(mesh.xdmf for ParaView, mesh.msh for gmsh)\n{format_stats(domain.stats)}", comm)
    return domain


def run_command(cfg: Config, config_name: str, output_dir: str | None = None,
                comm: MPI.Comm = MPI.COMM_WORLD, quiet: bool = False,
                restart: str | None = None) -> str:
    """``nmcfem run``: simulate, write outputs, analyse; return the final status ("done").

    Parameters
    ----------
    cfg: resolved configuration.
    config_name: name of the config (names the run folder).
    output_dir: explicit run folder.
    comm: communicator of the run (a sub-communicator inside sweeps).
    quiet: print only errors (sweeps print their own progress).
    restart: run folder whose checkpoint to continue from (results go to the same folder).
    """
    from nmcfem.checkpoint import CHECKPOINT
    from nmcfem.outputs import RunFolder
    from nmcfem.progress import Progress

    if restart is not None:
        output_dir = restart
    folder = RunFolder(run_folder_path(cfg, config_name, output_dir), cfg, comm,
                       resume=restart is not None)
    progress = Progress(folder.path, comm, quiet=quiet)
    say = progress.say
    say(f"nmcfem run '{config_name}' on {comm.size} rank(s) -> {folder.path}")
    folder.write_manifest("running")
    previous = None
    try:
        t0 = time.perf_counter()
        domain = load_domain(cfg, comm, say)
        previous = _stop_on_sigterm()
        folder.add_timing("mesh", time.perf_counter() - t0)
        folder.write_manifest("running", mesh={"cache": str(domain.cache_path), **domain.stats})
        say(f"mesh: {domain.cache_path} ({domain.stats['n_cells']} cells, "
            f"{domain.stats['n_vertices']} vertices, {domain.n_grains} grains, "
            f"{domain.stats['n_grain_boundaries']} grain boundaries)")
        from nmcfem.simulation import simulate

        checkpoint = folder.path / CHECKPOINT if restart is not None else None
        summary = simulate(cfg, domain, folder, comm, say, restart_from=checkpoint,
                           progress=progress)
        if cfg.output.pictures:
            t0 = time.perf_counter()
            summary["pictures"] = render_pictures(folder.path, comm, say)
            folder.add_timing("pictures", time.perf_counter() - t0)
        if cfg.analysis.enabled:
            t0 = time.perf_counter()
            summary["analysis"] = run_analysis(folder.path, cfg, comm, say)
            folder.add_timing("analysis", time.perf_counter() - t0)
    except NmcfemError as exc:
        folder.write_manifest("failed", error=str(exc))
        say(f"run FAILED: {exc}\n  what was written so far is kept in {folder.path}")
        raise
    except KeyboardInterrupt as exc:  # Ctrl-C, SIGTERM (batch time limit)
        hint = (f"; continue it with --restart {folder.path}" if cfg.output.checkpoint_every
                else "")
        folder.write_manifest("interrupted", error=f"interrupted ({exc or 'Ctrl-C'}){hint}")
        raise
    except BaseException as exc:  # bugs: the manifest must never say "running" or "done"
        folder.write_manifest("failed", error=f"{type(exc).__name__}: {exc}",
                              traceback=traceback.format_exc())
        raise
    finally:
        folder.close()
        progress.close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    folder.write_manifest("done", summary=summary, **{"peak_memory [MiB]": peak_memory(comm)})
    say(summary_text(summary, folder.path))
    return "done"


def peak_memory(comm: MPI.Comm) -> float:
    """Peak resident memory of the run summed over its ranks (MiB; collective)."""
    import resource

    return comm.allreduce(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, op=MPI.SUM) / 1024.0


def _stop_on_sigterm():
    """Make SIGTERM (a batch system's time limit) stop a run at the end of the current step, so
    its manifest says "interrupted" (sweeps re-run it) instead of "running"; return the previous
    handler (None where handlers cannot be set: not the main thread).

    PETSc (when it initialises) and gmsh (when it meshes) install handlers of their own, so this
    is called after both.
    """
    import threading

    from petsc4py import PETSc  # noqa: F401 - initialised first, so its handler is replaced

    from nmcfem.simulation import _stop_signals, request_stop

    if threading.current_thread() is not threading.main_thread():
        return None
    _stop_signals.clear()
    return signal.signal(signal.SIGTERM, request_stop)


#: config sections a restart may change: how the equations are solved, not which ones
RESTART_MAY_CHANGE = ("solver.",)


def check_restart(cfg: Config, run_dir: str) -> None:
    """Refuse a restart whose config differs from the one the run folder was started with,
    except in RESTART_MAY_CHANGE (e.g. a direct solver for a run whose Krylov solves struggle;
    the restarted run then agrees with an uninterrupted one to the solver tolerances)."""
    from nmcfem.checkpoint import CHECKPOINT
    from nmcfem.config import from_dict, read_yaml, to_dict
    from nmcfem.errors import ConfigError
    from nmcfem.outputs import CONFIG_COPY

    path = Path(run_dir)
    if not (path / CHECKPOINT).is_file():
        raise ConfigError(f"--restart {run_dir}: no {CHECKPOINT} there; runs write checkpoints "
                          f"when output.checkpoint_every > 0")
    old = _flat(to_dict(from_dict(read_yaml(path / CONFIG_COPY))))
    new = _flat(to_dict(cfg))
    diff = [k for k in sorted(set(old) | set(new)) if old.get(k) != new.get(k)
            and not k.startswith(RESTART_MAY_CHANGE)]
    if diff:
        raise ConfigError(f"--restart {run_dir}: the config differs from the run's "
                          f"({', '.join(diff[:5])}); restart with the same config and --set values")


def _flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else k
        out.update(_flat(v, key) if isinstance(v, dict) else {key: v})
    return out


def _efficiency(value: float) -> str:
    """A coulombic efficiency for the summary: 'n/a' for a cycle without a discharge (NaN)."""
    return "n/a" if math.isnan(value) else f"{value:.6f}"


def summary_text(summary: dict[str, Any], path: Path) -> str:
    """Short end-of-run report for the terminal."""
    final = summary.get("final", {})
    lines = [f"done: {summary.get('steps')} steps ({summary.get('rejected_steps')} rejected) to "
             f"t = {summary.get('end_time [s]', 0.0):.1f} s"]
    for key in ("voltage [V]", "capacity [mAh]", "mean_x [-]", "surface_x_mean [-]",
                "surface_x_min [-]",
                "peak_max_principal_stress_grains [Pa]", "peak_max_gb_normal_traction [Pa]",
                "cracked_area_full [m^2]", "cracked_area_partial [m^2]", "dissipated_energy [J]",
                "n_cracked_grain_boundaries"):
        if key in final:
            lines.append(f"  {key:40s} {final[key]:.4g}")
    if "cycles" in summary:
        lines.append(f"  {'cycles (charge / discharge capacity [mAh], coulombic efficiency)':s}")
        rows = summary["cycles"]
        for c in (rows if len(rows) <= 4 else [*rows[:2], *rows[-2:]]):
            lines.append(f"    cycle {c['cycle']:>4}  {c['charge_capacity [mAh]']:.4g} / "
                         f"{c['discharge_capacity [mAh]']:.4g}  "
                         + _efficiency(c['coulombic_efficiency [-]']))
    lines.append(f"results in {path}/: manifest.json, series.csv, fields/ (*.bp for ParaView, "
                 f"*.h5 for nmcfem.load), analysis_snapshot.npz"
                 + (", cycles.csv, figures/" if "cycles" in summary else "")
                 + (", pictures/" if "pictures" in summary else "")
                 + (", analysis/" if "analysis" in summary else ""))
    return "\n".join(lines)


def render_pictures(run_dir: Path, comm: MPI.Comm, say) -> list[str]:
    """3D pictures of the particle at the end of a run, rendered on rank 0; return the file
    names. A machine that cannot render (no EGL/OSMesa, no VTK) gets a warning, not a failed
    run: the results are complete without the pictures."""
    from nmcfem.parallel import run_on_root

    def work() -> tuple[list[str], str]:
        try:
            from nmcfem.pictures import render_run

            return [p.name for p in render_run(run_dir)], ""
        except Exception as exc:  # VTK reports missing graphics as plain errors
            return [], f"{type(exc).__name__}: {exc}"

    names, error = run_on_root(work, comm)
    if error:
        say(f"WARNING: no pictures ({error}); the results are complete. Render them later on "
            f"another machine with `nmcfem plot {run_dir}`, or set output.pictures: false")
    else:
        say(f"pictures: {Path(run_dir) / 'pictures'} ({', '.join(names)})")
    return names


def run_analysis(run_dir: Path, cfg: Config, comm: MPI.Comm, say) -> dict[str, Any]:
    """Analyse a finished run on rank 0 (errors reach every rank); return the metric summary."""
    from nmcfem.parallel import run_on_root

    def work() -> dict[str, Any]:
        from nmcfem.analysis.pipeline import analyze_run

        return analyze_run(run_dir, cfg.analysis, measured=list(cfg.analysis.measured) or None)

    metrics = run_on_root(work, comm)
    say(f"analysis: {Path(run_dir) / 'analysis'} (metrics.json"
        + (", figures)" if cfg.analysis.figures else ")"))
    return metrics


def analyze_command(run_dir: str, measured: list[str] | None, view: list[float] | None,
                    overrides: list[str], out: str | None,
                    snapshot: str = "analysis_snapshot.npz") -> int:
    """``nmcfem analyze``: analyse a finished run (its end, or the ``snapshot`` of a chosen
    experiment step) against measured maps (rank 0 works)."""
    from nmcfem.config import apply_overrides, from_dict, read_yaml
    from nmcfem.errors import ConfigError
    from nmcfem.outputs import CONFIG_COPY
    from nmcfem.parallel import run_on_root

    run_path = Path(run_dir)
    if not (run_path / CONFIG_COPY).is_file():
        raise ConfigError(f"'{run_dir}' is not a run folder (no {CONFIG_COPY}): give the folder "
                          f"a `run` wrote, e.g. runs/default-XXXXXXXX")
    extra = list(overrides)
    if view is not None:
        extra.append(f"analysis.view_direction={list(view)}")
    cfg = from_dict(apply_overrides(read_yaml(run_path / CONFIG_COPY), extra))

    def work() -> dict[str, Any]:
        from nmcfem.analysis.pipeline import analyze_run

        return analyze_run(run_path, cfg.analysis, measured=measured or list(cfg.analysis.measured)
                           or None, out_dir=out, snapshot=snapshot)

    run_on_root(work)
    log(f"analysis written to {out or run_path / 'analysis'}")
    return 0
