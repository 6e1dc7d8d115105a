"""A whole quick run (fields, snapshot, analysis) under MPI gives the serial run's results."""

import csv
import json

import numpy as np
import pytest
from mpi4py import MPI

from nmcfem.config import load_config
from nmcfem.runner import run_command


def test_quick_run_folder_matches_a_serial_run(repo, tmp_path):
    world = MPI.COMM_WORLD
    base = world.bcast(str(tmp_path) if world.rank == 0 else None, root=0)
    cfg = load_config(repo / "configs" / "quick.yaml", [f"output.mesh_cache={base}/meshes",
                                                       "analysis.figures=false",
                                                       "loading.x_end=0.9"])
    assert run_command(cfg, "quick", f"{base}/world", comm=world, quiet=True) == "done"
    if world.rank == 0:
        run_command(cfg, "quick", f"{base}/self", comm=MPI.COMM_SELF, quiet=True)
    world.barrier()
    if world.rank != 0:
        return
    for name in ("world", "self"):
        assert json.loads(open(f"{base}/{name}/manifest.json").read())["status"] == "done"
    a = np.load(f"{base}/world/analysis_snapshot.npz")
    b = np.load(f"{base}/self/analysis_snapshot.npz")
    assert np.allclose(a["surface_points"], b["surface_points"])
    assert np.allclose(a["x_profile"], b["x_profile"], rtol=1e-7, atol=1e-9)
    assert np.array_equal(a["in_shell"], b["in_shell"])
    ma = json.loads(open(f"{base}/world/analysis/metrics.json").read())
    mb = json.loads(open(f"{base}/self/analysis/metrics.json").read())
    assert ma["simulated_surface_valence"]["mean"] == pytest.approx(
        mb["simulated_surface_valence"]["mean"], rel=1e-7)
    ra = list(csv.DictReader(open(f"{base}/world/series.csv")))
    rb = list(csv.DictReader(open(f"{base}/self/series.csv")))
    assert len(ra) == len(rb)
    assert float(ra[-1]["mean_x [-]"]) == pytest.approx(float(rb[-1]["mean_x [-]"]), rel=1e-9)
