"""Parameter sweeps: expand a sweep file into cases, run them (concurrently on MPI
sub-communicators), resume after interruption, and summarise.

Sweep file (YAML)::

    base: ../quick.yaml            # config file, relative to the sweep file (or `config:` inline)
    set:                           # overrides applied to every case (dotted keys)
      loading.x_end: 0.5
    grid:                          # cartesian product of the listed values
      geometry.shell_thickness: [0.0, 1.0e-8, 5.0e-8]
      loading.c_rate: [0.5, 2.0]
    zip:                           # paired lists (equal lengths), combined with the grid
      cohesive.grain_boundary.strength: [1.0e8, 2.0e8]
      cohesive.grain_boundary.toughness: [0.5, 1.0]
    cases:                         # explicit cases (each a mapping of dotted keys), appended
      - {geometry.texture: radial}
    directory: sweeps/shell-x-rate # case folders and summary, relative to the working directory
                                   # (default: sweeps/<sweep file name>)

Each case runs in ``DIRECTORY/cases/<hash of its resolved config>``; a case is done only when
its manifest says so (written last, atomically), so a re-run skips done cases and redoes the
rest from scratch. A failing case is recorded with its reason and the sweep goes on.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpi4py import MPI

from nmcfem.atomic import atomic_write, atomic_write_text
from nmcfem.config import Config, apply_overrides, from_dict, read_yaml, section_hash
from nmcfem.errors import ConfigError, NmcfemError, SweepError
from nmcfem.outputs import MANIFEST
from nmcfem.parallel import log

SWEEP_KEYS = ("base", "config", "set", "grid", "zip", "cases", "directory")
SUMMARY_CSV = "summary.csv"
CASES_DIR = "cases"


@dataclass(frozen=True)
class Case:
    """One case of a sweep: its swept values, resolved config and folder."""

    index: int
    values: dict[str, Any]
    config: Config
    folder: Path

    @property
    def label(self) -> str:
        """Short human-readable description of the swept values."""
        return ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}"
                         for k, v in self.values.items()) or "base"


@dataclass(frozen=True)
class Sweep:
    """A validated sweep: every case resolved before the first one runs."""

    path: Path
    directory: Path
    axes: list[str]
    cases: list[Case]


def _as_override(key: str, value: Any) -> str:
    return f"{key}={json.dumps(value)}"


def _expand(spec: dict, where: str) -> list[dict[str, Any]]:
    grid = spec.get("grid") or {}
    zipped = spec.get("zip") or {}
    explicit = spec.get("cases") or []
    for name, part in (("grid", grid), ("zip", zipped)):
        if not isinstance(part, dict):
            raise SweepError(f"{where}: '{name}' must map dotted keys to lists of values")
        for key, vals in part.items():
            if not isinstance(vals, list) or not vals:
                raise SweepError(f"{where}: {name}.{key} must be a non-empty list of values, "
                                 f"got {vals!r}")
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        raise SweepError(f"{where}: the 'zip' lists must have equal lengths, got "
                         + ", ".join(f"{k}: {len(v)}" for k, v in zipped.items()))
    grid_rows = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    zip_rows = [dict(zip(zipped, combo)) for combo in zip(*zipped.values())] or [{}]
    rows = [{**g, **z} for g in grid_rows for z in zip_rows] if (grid or zipped) else []
    if not isinstance(explicit, list) or any(not isinstance(c, dict) for c in explicit):
        raise SweepError(f"{where}: 'cases' must be a list of mappings of dotted keys")
    rows += [dict(c) for c in explicit]
    return rows or [{}]


def _get_dotted(obj: Any, key: str) -> Any:
    for part in key.split("."):
        obj = getattr(obj, part)
    return obj


def load_sweep(path: str | Path, overrides: list[str] | None = None) -> Sweep:
    """Read and validate a sweep file; every case's config is checked before anything runs.

    Parameters
    ----------
    path: sweep YAML file.
    overrides: ``--set`` overrides applied to every case (after the file's ``set``).
    """
    path = Path(path)
    spec = read_yaml(path)
    where = f"sweep file '{path}'"
    for key in spec:
        if key not in SWEEP_KEYS:
            import difflib

            close = difflib.get_close_matches(str(key), SWEEP_KEYS, n=1)
            hint = (f"did you mean '{close[0]}'?" if close
                    else f"known keys: {', '.join(SWEEP_KEYS)}")
            raise SweepError(f"{where}: unknown key '{key}': {hint}")
    if "base" in spec and "config" in spec:
        raise SweepError(f"{where}: give either 'base' (a config file) or 'config' (inline)")
    if "base" in spec:
        base_data = read_yaml(path.parent / str(spec["base"]))
    else:
        base_data = spec.get("config") or {}
    common = spec.get("set") or {}
    if not isinstance(common, dict):
        raise SweepError(f"{where}: 'set' must map dotted keys to values")
    base_data = apply_overrides(base_data, [_as_override(k, v) for k, v in common.items()])
    base_data = apply_overrides(base_data, overrides)
    directory = Path(spec.get("directory") or Path("sweeps") / path.stem)

    rows = _expand(spec, where)
    axes: list[str] = []
    for row in rows:
        axes.extend(k for k in row if k not in axes)
    cases = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        data = apply_overrides(base_data, [_as_override(k, v) for k, v in row.items()])
        try:
            cfg = from_dict(data)
        except ConfigError as exc:
            label = ", ".join(f"{k}={v}" for k, v in row.items()) or "base"
            raise SweepError(f"{where}: case {i} ({label}): {exc}") from None
        digest = section_hash(cfg, 12)
        if digest in seen:
            raise SweepError(f"{where}: case {i} repeats case {seen[digest]} (same resolved "
                             f"config); remove the duplicate")
        seen[digest] = i
        # Record the values as the schema typed them (YAML reads 1.0e8 as a string).
        typed = {k: _get_dotted(cfg, k) for k in row}
        cases.append(Case(i, typed, cfg, directory / CASES_DIR / digest))
    return Sweep(path, directory, axes, cases)


def case_status(case: Case) -> str:
    """Status of a case from its manifest: done, failed, interrupted, running (killed) or
    pending."""
    manifest = case.folder / MANIFEST
    if not manifest.is_file():
        return "pending"
    try:
        return str(json.loads(manifest.read_text()).get("status", "pending"))
    except (OSError, json.JSONDecodeError):
        return "pending"


def _split(comm: MPI.Comm, ranks_per_case: int) -> tuple[MPI.Comm, int, int]:
    if comm.size % ranks_per_case:
        raise SweepError(f"--ranks-per-case {ranks_per_case} does not divide the {comm.size} MPI "
                         f"ranks: choose a divisor of {comm.size}")
    groups = comm.size // ranks_per_case
    color = comm.rank // ranks_per_case
    return comm.Split(color, comm.rank), color, groups


def run_sweep(sweep: Sweep, ranks_per_case: int = 1, retry_failed: bool = False,
              only: list[int] | None = None, comm: MPI.Comm = MPI.COMM_WORLD) -> list[dict]:
    """Run the pending cases of ``sweep``, ``comm.size // ranks_per_case`` at a time.

    Parameters
    ----------
    sweep: validated sweep.
    ranks_per_case: MPI ranks that run one case together.
    retry_failed: also re-run cases whose manifest says failed.
    only: case indices to run (e.g. one SLURM array task); None = all.
    comm: world communicator of the sweep.

    Returns the summary rows (rank 0; others get an empty list).
    """
    from nmcfem.runner import run_command

    subcomm, group, groups = _split(comm, ranks_per_case)
    selected = [c for c in sweep.cases if only is None or c.index in only]
    todo_states = {"pending", "running", "interrupted"} | \
        ({"failed"} if retry_failed else set())
    # Every rank decides from the same file state: read it once on rank 0 and broadcast.
    states = comm.bcast([case_status(c) for c in selected] if comm.rank == 0 else None, root=0)
    todo = [c for c, s in zip(selected, states) if s in todo_states]
    log(f"sweep {sweep.path}: {len(sweep.cases)} cases, {len(selected) - len(todo)} already "
        f"finished, {len(todo)} to run, {groups} at a time x {ranks_per_case} rank(s) "
        f"-> {sweep.directory}", comm)
    t_start = time.perf_counter()
    for k, case in enumerate(todo):
        if k % groups != group:
            continue
        if subcomm.rank == 0 and case.folder.exists():
            shutil.rmtree(case.folder)  # leftovers of an interrupted attempt are not results
        subcomm.barrier()
        t0 = time.perf_counter()
        try:
            status = run_command(case.config, f"case{case.index}", str(case.folder),
                                 comm=subcomm, quiet=True)
        except NmcfemError as exc:
            status = f"failed ({exc})"
        if subcomm.rank == 0:
            done = sum(case_status(c) == "done" for c in sweep.cases)
            print(f"[sweep {done}/{len(sweep.cases)} done] case {case.index} ({case.label}): "
                  f"{status} in {time.perf_counter() - t0:.1f} s", flush=True)
    comm.barrier()
    rows: list[dict] = []
    if comm.rank == 0:
        rows = write_summary(sweep)
        log(f"sweep finished in {time.perf_counter() - t_start:.1f} s: "
            f"{sum(r['status'] == 'done' for r in rows)}/{len(rows)} done; summary "
            f"{sweep.directory / SUMMARY_CSV}", comm)
    subcomm.Free()
    return rows


def _flatten(prefix: str, obj: Any, out: dict[str, Any]) -> None:
    """Flatten nested mappings into ``out`` with dotted keys."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out[prefix] = obj


def summary_rows(sweep: Sweep) -> list[dict[str, Any]]:
    """One row per case: swept inputs, status, wall time and the run's key outputs."""
    rows = []
    for case in sweep.cases:
        row: dict[str, Any] = {"case": case.index, "folder": case.folder.name}
        row.update(case.values)
        manifest_path = case.folder / MANIFEST
        manifest: dict[str, Any] = {}
        if manifest_path.is_file():
            try:
                manifest = json.loads(manifest_path.read_text())
            except json.JSONDecodeError:
                manifest = {}
        row["status"] = manifest.get("status", "pending")
        row["wall_time [s]"] = manifest.get("wall_time [s]")
        row["error"] = manifest.get("error", "")
        outputs: dict[str, Any] = {}
        summary = manifest.get("summary") or {}
        _flatten("", summary.get("final", {}), outputs)
        for key, val in outputs.items():
            if isinstance(val, (int, float, str, bool)) or val is None:
                row[key] = val
        rows.append(row)
    return rows


def write_summary(sweep: Sweep) -> list[dict[str, Any]]:
    """Write ``summary.csv`` (and ``summary.parquet`` where pyarrow exists) and a figure."""
    rows = summary_rows(sweep)
    columns: list[str] = []
    for r in rows:
        columns.extend(k for k in r if k not in columns)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    atomic_write_text(sweep.directory / SUMMARY_CSV, buf.getvalue())
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), str(sweep.directory / "summary.parquet"))
    except ImportError:
        pass
    _summary_figure(sweep, rows)
    return rows


def _summary_figure(sweep: Sweep, rows: list[dict[str, Any]]) -> None:
    numeric_axes = [a for a in sweep.axes
                    if all(isinstance(r.get(a), (int, float)) for r in rows)]
    done = [r for r in rows if r["status"] == "done"]
    outputs = [k for k in (done[0] if done else {})
               if k not in sweep.axes and isinstance(done[0][k], (int, float))
               and not isinstance(done[0][k], bool) and k not in ("case",)]
    if not numeric_axes or not outputs:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    outputs = outputs[:6]
    fig, axs = plt.subplots(len(outputs), len(numeric_axes), squeeze=False,
                            figsize=(4 * len(numeric_axes), 2.6 * len(outputs)))
    for j, axis in enumerate(numeric_axes):
        for i, out in enumerate(outputs):
            ax = axs[i][j]
            ax.plot([r[axis] for r in done], [r[out] for r in done], "o")
            ax.set_xlabel(axis)
            ax.set_ylabel(out, fontsize=7)
    fig.tight_layout()
    atomic_write(sweep.directory / "summary.png", lambda tmp: fig.savefig(tmp, dpi=110))
    plt.close(fig)


def dry_run(sweep: Sweep) -> str:
    """Text listing every case with its swept values, folder and current status."""
    lines = [f"sweep {sweep.path}: {len(sweep.cases)} cases -> {sweep.directory}"]
    for c in sweep.cases:
        lines.append(f"  case {c.index:3d} [{case_status(c):7s}] {c.folder.name}  {c.label}")
    return "\n".join(lines)


SLURM_TEMPLATE = """#!/bin/bash
# SLURM batch script generated by `nmcfem sweep {sweep} --slurm`: one allocation of
# {ntasks} MPI tasks running {groups} cases at a time with {rpc} rank(s) each. Re-submitting it
# resumes the sweep (finished cases are skipped).
#SBATCH --job-name=nmcfem-sweep
#SBATCH --ntasks={ntasks}
#SBATCH --time={walltime}
#SBATCH --output={directory}/slurm-%j.out
set -euo pipefail
cd {workdir}
# NMCFEM_LAUNCHER lets the same script run off-cluster, e.g. NMCFEM_LAUNCHER="mpiexec -n {ntasks}".
${{NMCFEM_LAUNCHER:-srun}} {python} {entry} sweep {sweep} --ranks-per-case {rpc}{only}
"""


def slurm_script(sweep: Sweep, ntasks: int, ranks_per_case: int, walltime: str,
                 python: str, entry: str, workdir: str, only: list[int] | None = None) -> str:
    """Text of a SLURM batch script that runs ``sweep`` in one allocation of ``ntasks`` ranks.

    Parameters
    ----------
    sweep: validated sweep; ntasks: MPI tasks; ranks_per_case: ranks per case;
    walltime: SLURM time limit; python, entry, workdir: interpreter, run_sim.py, folder;
    only: case indices to run (None: all).
    """
    if ntasks % ranks_per_case:
        raise SweepError(f"--ntasks {ntasks} is not a multiple of --ranks-per-case "
                         f"{ranks_per_case}")
    return SLURM_TEMPLATE.format(sweep=sweep.path, ntasks=ntasks, groups=ntasks // ranks_per_case,
                                 rpc=ranks_per_case, walltime=walltime, python=python,
                                 entry=entry, workdir=workdir, directory=sweep.directory,
                                 only=(" --only " + " ".join(map(str, only))) if only else "")
