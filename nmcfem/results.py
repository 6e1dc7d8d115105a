"""A finished (or interrupted) run loaded back into Python: :func:`load`.

Reads only what the run folder holds (``config.yaml``, ``manifest.json``, ``series.csv``,
``fields/mesh.h5`` with ``fields/step_NNNNNN.h5``, and ``fields/interfaces_NNNNNN.vtu`` of a
cracking run) with NumPy, h5py and meshio: no DOLFINx, no MPI, so a run computed on a cluster
can be studied on a laptop. Arrays are in SI units and in the order of the cached mesh file,
whatever the number of ranks that wrote them.

Example::

    import nmcfem
    run = nmcfem.load("runs/default-1a2b3c4d")
    run.series["mean_x"], run.series.units["mean_x"]      # arrays, "-"
    run.cycles["discharge_capacity"]                      # per cycle (experiments), mAh
    state = run.fields()                                  # last output step
    state["von_mises"].max(), state.units["von_mises"]    # Pa
    cracks = run.interfaces()                             # damage on interface triangles
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

_UNIT = re.compile(r"^(.*?)\s*\[(.*)\]$")
_STEP = re.compile(r"^step_(\d+)\.h5$")
_INTERFACES = re.compile(r"^interfaces_(\d+)\.vtu$")


def split_unit(header: str) -> tuple[str, str]:
    """``"time [s]"`` -> ``("time", "s")``; a header without a unit gets ``"-"``."""
    m = _UNIT.match(header)
    return (m.group(1), m.group(2)) if m else (header, "-")


class Series(Mapping):
    """The run's time series as arrays by column name without the unit (``series["time"]``;
    the full header ``"time [s]"`` works too); ``units[name]`` gives the unit.

    Parameters
    ----------
    path: ``series.csv`` of a run.
    """

    def __init__(self, path: Path):
        with open(path, newline="") as fh:
            reader = csv.reader(fh)
            headers = next(reader, [])
            rows = list(reader)
        self.units: dict[str, str] = {}
        self._columns: dict[str, np.ndarray] = {}
        for j, header in enumerate(headers):
            name, unit = split_unit(header)
            self.units[name] = unit
            self._columns[name] = np.array([_number(r[j]) if j < len(r) else np.nan
                                            for r in rows])

    def __getitem__(self, key: str) -> np.ndarray:
        return self._columns[split_unit(key)[0]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._columns)

    def __len__(self) -> int:
        return len(self._columns)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return np.nan


@dataclass
class FieldState:
    """The particle at one output step: tetrahedral mesh and fields (SI units).

    Attributes
    ----------
    step, time: step number and time (s).
    points: (n, 3) vertex coordinates (m); cells: (m, 4) tetrahedra (vertex indices).
    point_data: fields on vertices: ``c`` (mol/m^3), ``x`` (-), ``u`` (m, (n, 3)).
    cell_data: fields on cells: ``stress`` (Pa, (m, 3, 3)), ``von_mises`` and
        ``hydrostatic_stress`` (Pa), ``grain_id`` (grain 1..N, 0 in the shell).
    units: field name -> unit.
    """

    step: int
    time: float
    points: np.ndarray
    cells: np.ndarray
    point_data: dict[str, np.ndarray] = field(default_factory=dict)
    cell_data: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        if name in self.point_data:
            return self.point_data[name]
        if name in self.cell_data:
            return self.cell_data[name]
        raise KeyError(f"no field '{name}' (fields: "
                       f"{', '.join([*self.point_data, *self.cell_data])})")

    @property
    def grain_id(self) -> np.ndarray:
        """(m,) grain of every cell (1..N), 0 in the shell."""
        return self.cell_data["grain_id"].astype(np.int64)

    def to_pyvista(self) -> Any:
        """The state as a ``pyvista.UnstructuredGrid`` (tensors flattened to 9 components)."""
        import pyvista as pv

        grid = pv.UnstructuredGrid({pv.CellType.TETRA: self.cells}, self.points)
        for name, values in self.point_data.items():
            grid.point_data[name] = values.reshape(len(values), -1).squeeze()
        for name, values in self.cell_data.items():
            grid.cell_data[name] = values.reshape(len(values), -1).squeeze()
        return grid


@dataclass
class InterfaceState:
    """The cohesive interfaces at one output step: one triangle per interface facet.

    Attributes
    ----------
    step, time: step number and time (s).
    points: (3k, 3) triangle corners (m); triangles: (k, 3) indices into points.
    data: per triangle: ``damage`` (-), ``normal_opening`` and ``shear_opening`` (m),
        ``normal_traction`` and ``shear_traction`` (Pa), ``dissipated_energy`` (J/m^2),
        ``family`` (0 grain boundary, 1 shell/core), ``grain_boundary`` (index, -1 shell/core).
    units: name -> unit.
    """

    step: int
    time: float
    points: np.ndarray
    triangles: np.ndarray
    data: dict[str, np.ndarray] = field(default_factory=dict)
    units: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    @property
    def area(self) -> np.ndarray:
        """(k,) triangle areas (m^2)."""
        p = self.points[self.triangles]
        return 0.5 * np.linalg.norm(np.cross(p[:, 1] - p[:, 0], p[:, 2] - p[:, 0]), axis=1)

    def to_pyvista(self) -> Any:
        """The triangles as a ``pyvista.PolyData`` with their data."""
        import pyvista as pv

        faces = np.hstack([np.full((len(self.triangles), 1), 3), self.triangles]).ravel()
        poly = pv.PolyData(self.points, faces)
        for name, values in self.data.items():
            poly.cell_data[name] = values
        return poly


class Run:
    """One run folder, loaded lazily: config, manifest, series, and fields per output step.

    Parameters
    ----------
    path: the run folder (``runs/<name>``).
    """

    def __init__(self, path: str | Path):
        import yaml

        self.path = Path(path)
        if not (self.path / "config.yaml").is_file():
            raise FileNotFoundError(f"'{path}' is not a run folder (no config.yaml): give a "
                                    f"folder that `nmcfem run` wrote, e.g. runs/default-XXXXXXXX")
        self.config: dict[str, Any] = yaml.safe_load((self.path / "config.yaml").read_text())
        manifest = self.path / "manifest.json"
        self.manifest: dict[str, Any] = (json.loads(manifest.read_text())
                                         if manifest.is_file() else {})
        self._series: Series | None = None
        self._mesh: tuple[np.ndarray, np.ndarray] | None = None
        fields = self.path / "fields"
        self._step_files = _numbered(fields, _STEP)
        self._interface_files = _numbered(fields, _INTERFACES)

    def __repr__(self) -> str:
        return (f"Run('{self.path}', status={self.status!r}, {len(self.output_steps)} output "
                f"steps, series of {len(self.series['time']) if self.has_series else 0} rows)")

    @property
    def status(self) -> str:
        """done, failed, interrupted or running (from the manifest)."""
        return self.manifest.get("status", "unknown")

    @property
    def has_series(self) -> bool:
        """Whether the run wrote its time series."""
        return (self.path / "series.csv").is_file()

    @property
    def series(self) -> Series:
        """Time series (arrays by column name, units in ``series.units``)."""
        if self._series is None:
            self._series = Series(self.path / "series.csv")
        return self._series

    @property
    def cycles(self) -> Series:
        """Per-cycle table of an experiment (``cycles.csv``: capacities in mAh, coulombic
        efficiency, energies in mWh, time at the upper cut-off in s, cracked area in m^2, ...)
        as arrays by column name, units in ``cycles.units``."""
        path = self.path / "cycles.csv"
        if not path.is_file():
            raise FileNotFoundError(f"{self.path}: no cycles.csv (written at the end of runs "
                                    f"with experiment.steps)")
        return Series(path)

    @property
    def output_steps(self) -> list[int]:
        """Step numbers with fields, in order."""
        return sorted(self._step_files)

    @property
    def output_times(self) -> np.ndarray:
        """Times (s) of the output steps."""
        import h5py

        out = []
        for step in self.output_steps:
            with h5py.File(self._step_files[step], "r") as h5:
                out.append(float(h5.attrs["time"]))
        return np.array(out)

    def _pick(self, files: dict[int, Path], step: int | None, what: str) -> int:
        if not files:
            raise FileNotFoundError(f"{self.path}: no {what} written (fields/)")
        if step is None or step == -1:
            return max(files)
        if step not in files:
            raise KeyError(f"{self.path}: no {what} at step {step}; output steps: "
                           f"{sorted(files)}")
        return step

    def mesh(self) -> tuple[np.ndarray, np.ndarray]:
        """(points (n, 3) m, tetrahedra (m, 4)) of the particle."""
        import h5py

        if self._mesh is None:
            with h5py.File(self.path / "fields" / "mesh.h5", "r") as h5:
                self._mesh = (h5["points"][...], h5["cells"][...])
        return self._mesh

    def fields(self, step: int | None = None) -> FieldState:
        """The bulk fields at output step ``step`` (None: the last)."""
        import h5py

        step = self._pick(self._step_files, step, "fields")
        points, cells = self.mesh()
        state = FieldState(step, 0.0, points, cells)
        with h5py.File(self._step_files[step], "r") as h5:
            state.time = float(h5.attrs["time"])
            for name, ds in h5.items():
                target = state.cell_data if ds.attrs["location"] == "cell" else state.point_data
                target[name] = ds[...]
                state.units[name] = str(ds.attrs["unit"])
        return state

    def interfaces(self, step: int | None = None) -> InterfaceState | None:
        """The cohesive interface triangles at output step ``step`` (None: the last); None for
        a run without cracks."""
        import meshio

        if not self._interface_files:
            return None
        step = self._pick(self._interface_files, step, "interface output")
        m = meshio.read(self._interface_files[step])
        data, units = {}, {}
        for header, blocks in m.cell_data.items():
            name, unit = split_unit(header)
            data[name], units[name] = np.asarray(blocks[0]), unit
        for name in ("family", "grain_boundary"):
            if name in data:
                data[name] = data[name].astype(np.int64)
        times = {f: t for t, f in pvd_entries(self.path / "fields" / "interfaces.pvd")}
        return InterfaceState(step, times.get(self._interface_files[step].name, np.nan),
                              np.asarray(m.points), np.asarray(m.cells_dict["triangle"]),
                              data, units)


def _numbered(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    if not folder.is_dir():
        return {}
    out = {}
    for f in folder.iterdir():
        m = pattern.match(f.name)
        if m:
            out[int(m.group(1))] = f
    return out


def pvd_entries(path: Path) -> list[tuple[float, str]]:
    """(time s, file name) entries of a ParaView collection file (none if it is absent)."""
    if not path.is_file():
        return []
    return [(float(t), f) for t, f in
            re.findall(r'timestep="([^"]+)" file="([^"]+)"', path.read_text())]


def load(run_dir: str | Path) -> Run:
    """Load a run folder: config, manifest, series and fields (see :class:`Run`).

    Parameters
    ----------
    run_dir: folder written by ``nmcfem run`` (or a sweep case folder).
    """
    return Run(run_dir)
