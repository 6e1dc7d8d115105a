"""Checkpoints that do not depend on the number of ranks.

Vertex (P1) fields are stored by the mesh's *input* vertex index and cell (DG0) fields by the
original cell index, both fixed by the cached mesh file; so a checkpoint written on N ranks can
be read on M ranks. Rank 0 writes one ``.npz`` atomically; every rank reads it on restart.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from mpi4py import MPI

import dolfinx

from nmcfem.atomic import atomic_save_npz
from nmcfem.errors import CheckpointError

CHECKPOINT = "checkpoint.npz"


def _input_index_of_dofs(V: dolfinx.fem.FunctionSpace) -> np.ndarray:
    """Input vertex index of every local (owned + ghost) P1 DOF block."""
    mesh = V.mesh
    dofs = V.dofmap.list
    geom = mesh.geometry.dofmaps[0]
    if dofs.shape != geom.shape:
        raise CheckpointError("checkpoint: only degree-1 Lagrange fields on a linear mesh are "
                              "supported")
    n_local = V.dofmap.index_map.size_local + V.dofmap.index_map.num_ghosts
    out = np.full(n_local, -1, dtype=np.int64)
    out[dofs.reshape(-1)] = mesh.geometry.input_global_indices[geom.reshape(-1)]
    return out


def _cell_input_index(mesh: dolfinx.mesh.Mesh) -> np.ndarray:
    tdim = mesh.topology.dim
    n = mesh.topology.index_map(tdim).size_local + mesh.topology.index_map(tdim).num_ghosts
    return np.asarray(mesh.topology.original_cell_index[:n], dtype=np.int64)


def is_cellwise(f: dolfinx.fem.Function) -> bool:
    """Whether ``f`` is a cell-wise (DG0) field rather than a vertex (P1) one."""
    return f.function_space.ufl_element().embedded_superdegree == 0


def gather_field(f: dolfinx.fem.Function, comm: MPI.Comm) -> np.ndarray | None:
    """Values of ``f`` ordered by input vertex (P1) or original cell (DG0) index, on rank 0."""
    V = f.function_space
    bs = V.dofmap.index_map_bs
    n_owned = V.dofmap.index_map.size_local
    if is_cellwise(f):
        # DG0: one DOF block per cell, in the cell's own place
        cells = np.arange(V.mesh.topology.index_map(V.mesh.topology.dim).size_local,
                          dtype=np.int32)
        keys = _cell_input_index(V.mesh)[cells]
        dofs = V.dofmap.list[cells, 0]
    else:
        dofs = np.arange(n_owned, dtype=np.int32)
        keys = _input_index_of_dofs(V)[dofs]
    values = f.x.array.reshape(-1, bs)[dofs]
    parts = comm.gather((keys, values), root=0)
    if comm.rank != 0:
        return None
    keys = np.concatenate([p[0] for p in parts])
    values = np.concatenate([p[1] for p in parts])
    out = np.zeros((int(keys.max()) + 1 if len(keys) else 0, bs))
    out[keys] = values
    return out


def scatter_field(f: dolfinx.fem.Function, data: np.ndarray) -> None:
    """Set ``f`` (owned and ghost DOFs) from an array ordered as :func:`gather_field` writes it."""
    V = f.function_space
    bs = V.dofmap.index_map_bs
    if is_cellwise(f):
        cells = np.arange(len(V.dofmap.list), dtype=np.int32)
        keys = _cell_input_index(V.mesh)[cells]
        dofs = V.dofmap.list[cells, 0]
    else:
        keys = _input_index_of_dofs(V)
        dofs = np.arange(len(keys), dtype=np.int32)
    if len(keys) and keys.max() >= len(data):
        raise CheckpointError("checkpoint does not match this mesh (it has fewer entries than "
                              "the mesh needs): restart with the config that wrote it")
    f.x.array.reshape(-1, bs)[dofs] = data[keys]


def save_checkpoint(path: str | Path, fields: dict[str, dolfinx.fem.Function],
                    state: dict[str, Any], arrays: dict[str, np.ndarray] | None,
                    comm: MPI.Comm) -> None:
    """Write fields, scalar state and extra arrays to one checkpoint file (collective).

    Parameters
    ----------
    path: checkpoint file (``.npz``).
    fields: P1 or DG0 Functions by name.
    state: JSON-able scalars (time in s, step size in s, step count, ...).
    arrays: further arrays already identical on every rank or gathered on rank 0 (e.g. interface
        history keyed by interface element), saved as given from rank 0.
    comm: communicator of the mesh.
    """
    gathered = {f"field:{k}": gather_field(f, comm) for k, f in fields.items()}
    if comm.rank == 0:
        import json

        extra = {f"array:{k}": np.asarray(v) for k, v in (arrays or {}).items()}
        atomic_save_npz(path, state=np.array(json.dumps(state)), **gathered, **extra)
    comm.barrier()


def load_checkpoint(path: str | Path, fields: dict[str, dolfinx.fem.Function]
                    ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Restore ``fields`` in place from a checkpoint; return its scalar state and extra arrays.

    Parameters
    ----------
    path: checkpoint file written by :func:`save_checkpoint`.
    fields: Functions to fill, by the names used when saving.
    """
    import json

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no checkpoint at '{path}': the run folder has none (was "
                              f"output.checkpoint_every > 0?)")
    with np.load(path) as data:
        names = set(data.files)
        for name, f in fields.items():
            key = f"field:{name}"
            if key not in names:
                raise CheckpointError(f"checkpoint '{path}' has no field '{name}'")
            scatter_field(f, data[key])
            f.x.scatter_forward()
        state = json.loads(str(data["state"]))
        arrays = {k.split(":", 1)[1]: data[k] for k in names if k.startswith("array:")}
    return state, arrays
