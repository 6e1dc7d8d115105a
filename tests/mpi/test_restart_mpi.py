"""A run interrupted inside the CV hold and continued from its checkpoint equals the
uninterrupted run on 2 ranks too (the protocol state is part of the checkpoint)."""

import csv
from pathlib import Path

import pytest
from mpi4py import MPI

from nmcfem.cli import main
from nmcfem.config import load_config
from nmcfem.runner import run_command
from tests.conftest import interrupt_after_step

OVERRIDES = ["loading.x_end=0.6", "loading.c_rate=3", "output.checkpoint_every=1",
             "analysis.enabled=false"]


def _series(folder):
    with open(folder / "series.csv") as fh:
        return list(csv.DictReader(fh))


def test_restart_inside_the_hold_on_two_ranks(repo, tmp_path, monkeypatch):
    world = MPI.COMM_WORLD
    root = Path(world.bcast(str(tmp_path) if world.rank == 0 else None, root=0))
    extra = [f"output.mesh_cache={root / 'meshes'}", *OVERRIDES]
    cfg = load_config(repo / "configs" / "quick.yaml", extra)
    run_command(cfg, "quick", str(root / "full"), comm=world)
    rows = _series(root / "full")
    limit = cfg.loading.surface_x_min
    held = next(int(r["step"]) for r in rows if float(r["surface_x_min [-]"]) <= limit + 1e-9)
    undo = interrupt_after_step(monkeypatch, held + 2)
    with pytest.raises(KeyboardInterrupt):
        run_command(cfg, "quick", str(root / "part"), comm=world)
    undo()
    assert main(["run", str(repo / "configs" / "quick.yaml"), "--restart", str(root / "part"),
                 *[a for o in extra for a in ("--set", o)]]) == 0
    b = _series(root / "part")
    assert len(b) == len(rows)
    for ra, rb in zip(rows, b):
        for key in ("time [s]", "mean_x [-]", "surface_x_min [-]", "total_li [mol]"):
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10, abs=1e-14), key


EXPERIMENT = ["experiment.steps=['Charge at 3C until 4.3 V', 'Hold at 4.3 V until C/5', "
              "'Rest for 5 minutes', 'Discharge at 3C until 3.7 V']", "experiment.cycles=2",
              "output.checkpoint_every=1", "analysis.enabled=false", "output.pictures=false",
              "passivation.enabled=true", "passivation.rate_constant=1e-22"]


def test_experiment_restart_in_a_hold_and_at_a_cycle_boundary_on_two_ranks(repo, tmp_path,
                                                                            monkeypatch):
    world = MPI.COMM_WORLD
    root = Path(world.bcast(str(tmp_path) if world.rank == 0 else None, root=0))
    extra = [f"output.mesh_cache={root / 'meshes'}", *EXPERIMENT]
    cfg = load_config(repo / "configs" / "quick.yaml", extra)
    run_command(cfg, "quick", str(root / "full"), comm=world, quiet=True)
    rows = _series(root / "full")
    in_hold = [int(r["step"]) for r in rows if r["protocol_step"] == "2"][2]
    boundary = next(int(r["step"]) for r in rows if r["cycle"] == "2") - 1
    for name, step in (("hold", in_hold), ("boundary", boundary)):
        undo = interrupt_after_step(monkeypatch, step)
        with pytest.raises(KeyboardInterrupt):
            run_command(cfg, "quick", str(root / name), comm=world, quiet=True)
        undo()
        assert main(["run", str(repo / "configs" / "quick.yaml"), "--restart", str(root / name),
                     *[a for o in extra for a in ("--set", o)]]) == 0
        b = _series(root / name)
        assert len(b) == len(rows)
        for ra, rb in zip(rows, b):
            for key in ("time [s]", "mean_x [-]", "total_li [mol]", "voltage [V]", "current [A]",
                        "capacity [mAh]", "cycle", "protocol_step",
                        "passivation_thickness_mean [m]", "capacity_lost [mAh]"):
                assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10,
                                                       abs=1e-20), (name, key)
