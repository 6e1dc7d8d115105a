"""Orchestration of one run: config -> mesh -> problem -> time loop -> outputs -> analysis.

Each stage passes a plain object to the next; this module only wires them, times them and
records the outcome in the run's manifest (``running`` -> ``done`` or ``failed``).
"""

from __future__ import annotations

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


def load_domain(cfg: Config, comm: MPI.Comm = MPI.COMM_WORLD):
    """Build or reuse the cached particle mesh of ``cfg.geometry`` and distribute it."""
    from nmcfem.mesh import load_particle

    return load_particle(cfg.geometry, comm=comm, cache_dir=cfg.output.mesh_cache,
                         log=lambda m: log(m, comm))


def format_stats(stats: dict[str, Any]) -> str:
    """Mesh statistics as aligned ``key: value`` lines."""
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
    log(f"mesh ready in {time.perf_counter() - t0:.1f} s: {domain.cache_path}\n"
        f"{format_stats(domain.stats)}", comm)
    return domain


def run_command(cfg: Config, config_name: str, output_dir: str | None = None,
                comm: MPI.Comm = MPI.COMM_WORLD, quiet: bool = False) -> str:
    """``nmcfem run``: simulate, write outputs, analyse; return the final status.

    Parameters
    ----------
    cfg: resolved configuration.
    config_name: name of the config (names the run folder).
    output_dir: explicit run folder.
    comm: communicator of the run (a sub-communicator inside sweeps).
    quiet: print only the final line (sweeps print their own progress).
    """
    from nmcfem.outputs import RunFolder

    folder = RunFolder(run_folder_path(cfg, config_name, output_dir), cfg, comm)
    log(f"nmcfem run '{config_name}' on {comm.size} rank(s) -> {folder.path}", comm)
    folder.write_manifest("running")
    try:
        summary = _simulate(cfg, folder, comm)
    except NmcfemError as exc:
        folder.write_manifest("failed", error=str(exc))
        log(f"run FAILED: {exc}\n  what was written so far is kept in {folder.path}", comm)
        raise
    except Exception as exc:
        folder.write_manifest("failed", error=f"{type(exc).__name__}: {exc}",
                              traceback=traceback.format_exc())
        raise
    finally:
        folder.close()
    folder.write_manifest("done", summary=summary)
    log(f"done: results in {folder.path} (manifest.json, series.csv, fields/, analysis/)", comm)
    return "done"


def _simulate(cfg: Config, folder: Any, comm: MPI.Comm) -> dict[str, Any]:
    t0 = time.perf_counter()
    domain = load_domain(cfg, comm)
    folder.add_timing("mesh", time.perf_counter() - t0)
    folder.write_manifest("running", mesh={"cache": str(domain.cache_path), **domain.stats})
    log(f"mesh: {domain.cache_path} ({domain.stats.get('n_cells')} cells, "
        f"{domain.n_grains} grains)", comm)
    from nmcfem.simulation import simulate

    return simulate(cfg, domain, folder, comm)


def analyze_command(run_dir: str, measured: list[str] | None, view: list[float] | None,
                    overrides: list[str], out: str | None) -> int:
    """``nmcfem analyze``: analyse a finished run against measured maps (rank 0 works)."""
    from nmcfem.analysis_entry import analyze_folder

    if MPI.COMM_WORLD.rank == 0:
        analyze_folder(run_dir, measured, view, overrides, out)
    MPI.COMM_WORLD.barrier()
    return 0
