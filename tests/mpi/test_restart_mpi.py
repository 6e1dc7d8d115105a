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


def _full_run(repo, tmp_path, config, overrides):
    """The uninterrupted run on every rank: (folder root, overrides, config, series rows)."""
    world = MPI.COMM_WORLD
    root = Path(world.bcast(str(tmp_path) if world.rank == 0 else None, root=0))
    extra = [f"output.mesh_cache={root / 'meshes'}", *overrides]
    cfg = load_config(repo / "configs" / config, extra)
    run_command(cfg, config, str(root / "full"), comm=world, quiet=True)
    return root, extra, cfg, _series(root / "full")


def _interrupt_and_restart(repo, monkeypatch, config, cfg, extra, folder, step):
    """Run again, stop after ``step``, continue from the checkpoint; the continued series."""
    undo = interrupt_after_step(monkeypatch, step)
    with pytest.raises(KeyboardInterrupt):
        run_command(cfg, config, str(folder), comm=MPI.COMM_WORLD, quiet=True)
    undo()
    assert main(["run", str(repo / "configs" / config), "--restart", str(folder),
                 *[a for o in extra for a in ("--set", o)]]) == 0
    return _series(folder)


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
    root, extra, cfg, rows = _full_run(repo, tmp_path, "quick.yaml", EXPERIMENT)
    in_hold = [int(r["step"]) for r in rows if r["protocol_step"] == "2"][2]
    boundary = next(int(r["step"]) for r in rows if r["cycle"] == "2") - 1
    for name, step in (("hold", in_hold), ("boundary", boundary)):
        b = _interrupt_and_restart(repo, monkeypatch, "quick.yaml", cfg, extra, root / name,
                                   step)
        assert len(b) == len(rows)
        for ra, rb in zip(rows, b):
            for key in ("time [s]", "mean_x [-]", "total_li [mol]", "voltage [V]", "current [A]",
                        "capacity [mAh]", "cycle", "protocol_step",
                        "passivation_thickness_mean [m]", "capacity_lost [mAh]"):
                assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10,
                                                       abs=1e-20), (name, key)


WETTED = ["experiment.steps=['Charge at 2C for 4 minutes', 'Rest for 2 minutes']",
          "cohesive.open_crack_reacts=true", "passivation.enabled=true",
          "passivation.rate_constant=1e-20", "passivation.onset_voltage=3.0",
          "output.checkpoint_every=1", "analysis.enabled=false", "output.pictures=false",
          "solver.interface.rtol=1.0e-11"]
LAYER_KEYS = ("time [s]", "mean_x [-]", "voltage [V]", "current [A]",
              "cracked_area_full [m^2]", "wetted_crack_area [m^2]",
              "crack_layer_thickness_mean [m]", "passivation_thickness_mean [m]",
              "capacity_lost [mAh]")


def test_layers_on_wetted_cracks_restart_and_match_one_rank(repo, tmp_path, monkeypatch):
    """Cracks open to the electrolyte react and grow a layer: a run interrupted after they
    opened continues as the uninterrupted one, and 2 ranks give what 1 rank gives."""
    root, extra, cfg, rows = _full_run(repo, tmp_path, "quick_cracks.yaml", WETTED)
    assert float(rows[-1]["crack_layer_thickness_mean [m]"]) > 0
    # every rank runs the case alone as well
    rank = MPI.COMM_WORLD.rank
    run_command(cfg, "faces", str(root / f"serial{rank}"), comm=MPI.COMM_SELF, quiet=True)
    serial = _series(root / f"serial{rank}")
    assert len(serial) == len(rows)
    for key in LAYER_KEYS:
        assert float(rows[-1][key]) == pytest.approx(float(serial[-1][key]), rel=1e-6), key
    resting = next(int(r["step"]) for r in rows if r["protocol_step"] == "2") + 1
    b = _interrupt_and_restart(repo, monkeypatch, "quick_cracks.yaml", cfg, extra,
                               root / "part", resting)
    assert len(b) == len(rows)
    for ra, rb in zip(rows, b):
        for key in LAYER_KEYS:
            assert float(rb[key]) == pytest.approx(float(ra[key]), rel=1e-10, abs=1e-20), key
