"""Checkpoints are independent of the number of ranks (run serially and under mpiexec -n 2)."""

import numpy as np
from mpi4py import MPI

import dolfinx
import dolfinx.fem as fem

from nmcfem.checkpoint import load_checkpoint, save_checkpoint


def _fields(comm):
    mesh = dolfinx.mesh.create_unit_cube(comm, 4, 3, 5, cell_type=dolfinx.mesh.CellType.tetrahedron)
    c = fem.Function(fem.functionspace(mesh, ("Lagrange", 1)))
    u = fem.Function(fem.functionspace(mesh, ("Lagrange", 1, (3,))))
    d = fem.Function(fem.functionspace(mesh, ("DG", 0)))
    return mesh, {"c": c, "u": u, "d": d}


def _fill(fields):
    fields["c"].interpolate(lambda x: 1 + x[0] + 2 * x[1] + 3 * x[2])
    fields["u"].interpolate(lambda x: np.vstack([x[1], -x[0], x[2] ** 2]))
    fields["d"].interpolate(lambda x: np.sin(7 * x[0]) + x[1] * x[2])


def test_checkpoint_written_on_one_rank_reads_on_any(tmp_path):
    world = MPI.COMM_WORLD
    folder = world.bcast(str(tmp_path) if world.rank == 0 else None, root=0)
    path = f"{folder}/ck.npz"
    if world.rank == 0:  # written by a one-rank run
        _, ref = _fields(MPI.COMM_SELF)
        _fill(ref)
        save_checkpoint(path, ref, {"time [s]": 12.5, "step": 3}, {"hist": np.arange(4.0)},
                        MPI.COMM_SELF)
    world.barrier()
    _, got = _fields(world)
    state, arrays = load_checkpoint(path, got)
    _, want = _fields(world)
    _fill(want)
    for name in got:
        assert np.allclose(got[name].x.array, want[name].x.array, atol=1e-14), name
    assert state == {"time [s]": 12.5, "step": 3}
    assert np.array_equal(arrays["hist"], np.arange(4.0))
    # round trip on the current number of ranks
    path2 = f"{folder}/ck2.npz"
    save_checkpoint(path2, want, {"t": 1.0}, None, world)
    _, again = _fields(world)
    load_checkpoint(path2, again)
    for name in again:
        assert np.allclose(again[name].x.array, want[name].x.array, rtol=0, atol=1e-13), name
