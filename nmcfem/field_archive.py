"""Bulk fields of a run as HDF5 files that do not depend on the number of ranks, for
:func:`nmcfem.load`.

The VTX files in ``fields/`` serve ParaView, but they need ADIOS2's Python bindings to be read
back; these files need only h5py. Every array is gathered to rank 0 in the order fixed by the
cached mesh file (input vertex index for vertex fields, original cell index for cell fields, as
in checkpoints), so a run on N ranks writes the same files as a run on one.

Layout (SI units, each dataset's ``unit`` attribute says which):

- ``fields/mesh.h5``: ``points`` (n, 3) m, ``cells`` (m, 4) vertex indices of the tetrahedra;
- ``fields/step_NNNNNN.h5`` per output step: attributes ``time`` (s) and ``step``; one dataset
  per field, (n, ...) on vertices or (m, ...) on cells (attribute ``location``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from mpi4py import MPI

import dolfinx

from nmcfem.atomic import atomic_write
from nmcfem.checkpoint import gather_field, is_cellwise

MESH_FILE = "mesh.h5"
STEP_FILE = "step_{:06d}.h5"


def gather_mesh(mesh: dolfinx.mesh.Mesh, comm: MPI.Comm) -> tuple[np.ndarray, np.ndarray] | None:
    """Vertex coordinates (m) by input index and tetrahedra by original cell index, on rank 0
    (collective; None on the other ranks)."""
    geometry = mesh.geometry
    n_nodes = geometry.index_map().size_local
    n_cells = mesh.topology.index_map(mesh.topology.dim).size_local
    node_keys = np.asarray(geometry.input_global_indices[:n_nodes], dtype=np.int64)
    cells = np.asarray(geometry.input_global_indices, dtype=np.int64)[
        geometry.dofmaps[0][:n_cells]]
    cell_keys = np.asarray(mesh.topology.original_cell_index[:n_cells], dtype=np.int64)
    parts = comm.gather((node_keys, geometry.x[:n_nodes], cell_keys, cells), root=0)
    if comm.rank != 0:
        return None
    points = _place([p[0] for p in parts], [p[1] for p in parts])
    tets = _place([p[2] for p in parts], [p[3] for p in parts])
    return points, tets


def _place(keys: list[np.ndarray], values: list[np.ndarray]) -> np.ndarray:
    k, v = np.concatenate(keys), np.concatenate(values)
    out = np.zeros((int(k.max()) + 1,) + v.shape[1:], dtype=v.dtype)
    out[k] = v
    return out


class FieldArchive:
    """Writes ``fields/mesh.h5`` once and ``fields/step_NNNNNN.h5`` per output step (collective;
    rank 0 writes, atomically).

    Parameters
    ----------
    folder: the run's ``fields`` folder.
    comm: communicator of the run.
    """

    def __init__(self, folder: Path, comm: MPI.Comm):
        self.folder, self.comm = Path(folder), comm
        self._mesh_written = False

    def write(self, functions: dict[str, dolfinx.fem.Function], units: dict[str, str],
              t: float, step: int) -> None:
        """Gather and write one output step.

        Parameters
        ----------
        functions: name -> P1 or DG0 Function (scalar, vector or tensor).
        units: name -> SI unit of the field.
        t: time (s); step: step number (names the file).
        """
        import h5py

        if not self._mesh_written:
            mesh = gather_mesh(next(iter(functions.values())).function_space.mesh, self.comm)
            if mesh is not None:
                def write_mesh(tmp: str) -> None:
                    with h5py.File(tmp, "w") as h5:
                        h5.create_dataset("points", data=mesh[0]).attrs["unit"] = "m"
                        h5.create_dataset("cells", data=mesh[1]).attrs["unit"] = "-"
                atomic_write(self.folder / MESH_FILE, write_mesh)
            self._mesh_written = True
        data = {}
        for name, f in functions.items():
            values = gather_field(f, self.comm)
            if values is not None:
                shape = f.function_space.value_shape
                data[name] = (values.reshape((-1, *shape)),
                              "cell" if is_cellwise(f) else "vertex")
        if self.comm.rank != 0:
            return

        def write_step(tmp: str) -> None:
            with h5py.File(tmp, "w") as h5:
                h5.attrs["time"], h5.attrs["step"] = float(t), int(step)
                for name, (values, location) in data.items():
                    ds = h5.create_dataset(name, data=values, compression="gzip",
                                           compression_opts=4, shuffle=True)
                    ds.attrs["unit"], ds.attrs["location"] = units.get(name, "-"), location
        atomic_write(self.folder / STEP_FILE.format(step), write_step)
