"""Run-folder outputs: atomic files, the time-series CSV, the manifest and ParaView fields.

Files are written by rank 0 (small files) or collectively (field files); every small file is
written to a temporary name in the same folder and moved into place with ``os.replace``, so a
reader (or a resumed sweep) never sees a half-written result. The manifest is written last: a
run is complete only when its manifest says ``"status": "done"``.
"""

from __future__ import annotations

import csv
import io
import platform
import socket
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

from nmcfem import __version__
from nmcfem.atomic import atomic_write_json, atomic_write_text
from nmcfem.config import Config, to_dict
from nmcfem.field_archive import FieldArchive

MANIFEST = "manifest.json"
SERIES = "series.csv"
CONFIG_COPY = "config.yaml"
SNAPSHOT = "analysis_snapshot.npz"


def software_versions() -> dict[str, str]:
    """Versions of nmcfem and of the numerical stack, for the manifest."""
    versions = {"nmcfem": __version__, "python": sys.version.split()[0]}
    for name in ("dolfinx", "basix", "ufl", "ffcx", "petsc4py", "mpi4py", "gmsh", "numpy"):
        try:
            module = __import__(name)
            versions[name] = str(getattr(module, "__version__", "unknown"))
        except ImportError:
            continue
    try:
        from petsc4py import PETSc

        versions["petsc"] = ".".join(str(v) for v in PETSc.Sys.getVersion())
    except ImportError:
        pass
    versions["mpi"] = MPI.Get_library_version().splitlines()[0].strip()
    return versions


class RunFolder:
    """One run's output folder: series CSV, manifest, fields and snapshot; rank-0 file writes.

    Parameters
    ----------
    path: folder of this run (created).
    cfg: resolved configuration (copied into the folder).
    comm: communicator of the run.
    resume: continue an existing folder (restart): keep its series rows.
    """

    def __init__(self, path: str | Path, cfg: Config, comm: MPI.Comm = MPI.COMM_WORLD,
                 resume: bool = False):
        self.path = Path(path)
        self.cfg = cfg
        self.comm = comm
        self.rows: list[dict[str, Any]] = []
        self._columns: list[str] = []  # CSV columns of the series, in order of appearance
        self._lines: list[str] = []  # formatted CSV lines of self.rows (rank 0)
        self.timings: dict[str, float] = {}
        self.info: dict[str, Any] = {}
        self._writers: list[Any] = []
        self.archive = FieldArchive(self.path / "fields", comm)
        self._started = time.time()
        if resume:
            self.rows = comm.bcast(_read_series(self.path / SERIES) if self.root else None, root=0)
        if self.root:
            self.path.mkdir(parents=True, exist_ok=True)
            import yaml

            atomic_write_text(self.path / CONFIG_COPY,
                              yaml.safe_dump(to_dict(cfg), sort_keys=False))
        comm.barrier()

    @property
    def root(self) -> bool:
        """True on the rank that writes small files."""
        return self.comm.rank == 0

    def add_timing(self, phase: str, seconds: float) -> None:
        """Accumulate wall time ``seconds`` (s) spent in ``phase``."""
        self.timings[phase] = self.timings.get(phase, 0.0) + seconds

    def append_row(self, row: dict[str, Any]) -> None:
        """Append one time-series row (keys carry units, e.g. ``time [s]``) and rewrite the CSV
        (atomically; the rows already written are formatted once, so that a run of thousands of
        steps does not spend its time re-formatting its history)."""
        self.rows.append(dict(row))
        if not self.root:
            return
        new = [k for k in row if k not in self._columns]
        if new or len(self._lines) != len(self.rows) - 1:
            self._columns = []  # a new column (or a truncated series): format every row again
            for r in self.rows:
                self._columns.extend(k for k in r if k not in self._columns)
            self._lines = [self._csv_line(r) for r in self.rows[:-1]]
        self._lines.append(self._csv_line(row))
        header = self._csv_line({k: k for k in self._columns})
        atomic_write_text(self.path / SERIES, header + "".join(self._lines))

    def _csv_line(self, row: dict[str, Any]) -> str:
        """One CSV line of ``row`` in the series' columns."""
        buf = io.StringIO()
        csv.DictWriter(buf, fieldnames=self._columns, lineterminator="\n").writerow(
            {k: _csv_value(v) for k, v in row.items()})
        return buf.getvalue()

    def truncate_series(self, t: float) -> None:
        """Drop series rows after time ``t`` (s), e.g. those computed after a checkpoint."""
        self.rows = [r for r in self.rows if float(r.get("time [s]", 0.0)) <= t * (1 + 1e-12)]
        self._lines = []

    def write_manifest(self, status: str, **extra: Any) -> None:
        """Write ``manifest.json`` (config, versions, ranks, timings, status) atomically.

        Parameters
        ----------
        status: "running", "done", "failed" or "interrupted".
        extra: further entries (e.g. ``error``, ``summary``, ``mesh``).
        """
        self.info.update(extra)
        if not self.root:
            return
        manifest = {
            "status": status,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(self._started)),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "wall_time [s]": time.time() - self._started,
            "ranks": self.comm.size,
            "host": socket.gethostname(),
            "platform": platform.platform(),
            "versions": software_versions(),
            "timings [s]": self.timings,
            **self.info,
            "config": to_dict(self.cfg),
        }
        atomic_write_json(self.path / MANIFEST, manifest)

    def write_fields(self, functions: dict[str, Any], units: dict[str, str], t: float,
                     step: int) -> None:
        """Write dolfinx Functions at time ``t`` (s) of step ``step``, collectively: for
        ParaView (VTX or XDMF) and for :func:`nmcfem.load` (HDF5, rank-independent order).

        VTX (ADIOS2) needs one element type per file, so functions are grouped by element;
        XDMF is used when configured or when ADIOS2 is absent. ``units``: name -> SI unit.
        """
        import dolfinx.io

        self.archive.write(functions, units, t, step)

        if not self._writers:
            fmt = self.cfg.output.field_format
            if fmt == "vtx" and not dolfinx.io.has_adios2:
                fmt = "xdmf"
            groups: dict[str, list[Any]] = {}
            for name, f in functions.items():
                f.name = name
                groups.setdefault(_element_key(f), []).append(f)
            folder = self.path / "fields"
            if self.root:
                folder.mkdir(exist_ok=True)
            self.comm.barrier()
            for key, funcs in groups.items():
                if fmt == "vtx":
                    w = dolfinx.io.VTXWriter(self.comm, str(folder / f"{key}.bp"), funcs,
                                             engine="BP4")
                    self._writers.append(("vtx", w, funcs))
                else:
                    w = dolfinx.io.XDMFFile(self.comm, str(folder / f"{key}.xdmf"), "w")
                    w.write_mesh(funcs[0].function_space.mesh)
                    self._writers.append(("xdmf", w, funcs))
        for kind, w, funcs in self._writers:
            if kind == "vtx":
                w.write(t)
            else:
                for f in funcs:
                    w.write_function(f, t)

    def close(self) -> None:
        """Close field writers (collective)."""
        for _, w, _ in self._writers:
            w.close()
        self._writers = []


def _element_key(f: Any) -> str:
    el = f.function_space.ufl_element()
    degree = el.embedded_superdegree
    family = "dg" if el.discontinuous or degree == 0 else "p"
    # Scalar and vector functions of one family share a file; tensors go apart.
    tensor = "_tensor" if len(f.function_space.value_shape) > 1 else ""
    return f"{family}{degree}{tensor}"


def _read_series(path: Path) -> list[dict[str, Any]]:
    """Rows of a series CSV with numbers parsed back to float/int."""
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            parsed: dict[str, Any] = {}
            for key, val in row.items():
                try:
                    parsed[key] = int(val)
                except ValueError:
                    try:
                        parsed[key] = float(val)
                    except ValueError:
                        parsed[key] = val
            rows.append(parsed)
    return rows


def _csv_value(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    return v
