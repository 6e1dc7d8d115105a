"""``nmcfem.load`` reads back the solver's fields of a run written on 2 ranks, in the order of
the mesh file (so the same files as on one rank)."""

from pathlib import Path

from mpi4py import MPI

from nmcfem.config import load_config
from nmcfem.runner import run_command
from tests.conftest import REPO, assert_loaded_equals_solver, capture_output_fields


def test_load_returns_the_solvers_fields_written_on_two_ranks(tmp_path, monkeypatch):
    world = MPI.COMM_WORLD
    root = Path(world.bcast(str(tmp_path) if world.rank == 0 else None, root=0))
    cfg = load_config(REPO / "configs" / "quick_cracks.yaml",
                      [f"output.mesh_cache={root / 'meshes'}", "loading.x_end=0.9",
                       "output.fields_every=10", "analysis.enabled=false",
                       "output.pictures=false"])
    captured = capture_output_fields(monkeypatch)
    run_command(cfg, "quick_cracks", str(root / "run"), comm=world, quiet=True)
    parts = world.gather(captured, root=0)
    if world.rank == 0:  # every rank's owned values against the one file
        for part in parts:
            assert_loaded_equals_solver(root / "run", part)
